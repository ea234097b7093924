"""The ``--help`` format every command of the project shares."""

from __future__ import annotations

import argparse
import os


class Help(argparse.ArgumentDefaultsHelpFormatter):
    """Show each option's default, except None and on/off flags (their help says what happens)
    and where the help text already gives it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or isinstance(action.default, bool) or "default:" in text or "%(default)" in text:
            return action.help
        return super()._get_help_string(action)


def count(what: str, least: int = 0):
    """An argparse type: an integer of at least ``least``, called ``what`` in its error."""

    def parse(v: str) -> int:
        try:
            n = int(v)
        except ValueError:
            n = least - 1
        if n < least:
            raise argparse.ArgumentTypeError(f"{v!r} is not {what}")
        return n

    return parse


def positive(v: str) -> float:
    """An argparse type: a float over 0 (a frame rate)."""
    try:
        r = float(v)
    except ValueError:
        r = 0.0
    if not r > 0.0 or r == float("inf"):
        raise argparse.ArgumentTypeError(f"{v!r} is not a number over 0")
    return r


def out_folder(what: str = "output folder"):
    """An argparse type: a folder to write into (created later if missing), not an existing file."""

    def parse(v: str) -> str:
        if os.path.exists(v) and not os.path.isdir(v):
            raise argparse.ArgumentTypeError(f"{v!r} is a file; it must be a folder (the {what})")
        return v

    return parse


seed = count("a seed (an integer from 0)")  # every CLI's --seed
