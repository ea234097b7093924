"""The ``--help`` format every command of the project shares."""

from __future__ import annotations

import argparse


class Help(argparse.ArgumentDefaultsHelpFormatter):
    """Show each option's default, except None and on/off flags (their help says what happens)
    and where the help text already gives it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or isinstance(action.default, bool) or "default:" in text or "%(default)" in text:
            return action.help
        return super()._get_help_string(action)
