"""Every command's --help: it exits 0, says what each option does, and gives each default once."""

from __future__ import annotations

import argparse
import importlib
import re

import pytest

COMMANDS = [
    ("edge.__main__", ["classify"]), ("edge.__main__", ["run"]), ("edge.evaluate", []), ("edge.selftest", []),
    ("edge.deploy", []), ("edge.bundle", []), ("export.__main__", []), ("export.parity", []),
    ("train.__main__", []), ("benchmarks.__main__", []), ("benchmarks.serve_viewers", []),
]


@pytest.mark.parametrize("module,args", COMMANDS, ids=[" ".join([m, *a]) for m, a in COMMANDS])
def test_help(module, args, capsys, monkeypatch):
    main = importlib.import_module(module).main
    added = []
    real_add = argparse._ActionsContainer.add_argument

    def add(self, *a, **k):
        added.append(real_add(self, *a, **k))
        return added[-1]

    monkeypatch.setattr(argparse._ActionsContainer, "add_argument", add)
    with pytest.raises(SystemExit) as e:
        main([*args, "--help"])
    assert e.value.code == 0
    text = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert text.startswith("usage: ")
    assert "(default: None)" not in text and "(default: False)" not in text
    # One default per option: the help text's own "(default: ...)" is not followed by argparse's.
    assert not re.search(r"\(default: [^()]*\) \(default:", text), text
    # Every option says what it does.
    bare = [a.option_strings or a.dest for a in added if not a.help]
    assert added and not bare, f"options with no help: {bare}"
