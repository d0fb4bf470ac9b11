"""The `replicadesk` parser: each command registers only its own group, and the groups together
are the whole command (core.cli.main.COMMANDS)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli.main import COMMANDS, _command_of, _parser

ROOT = Path(__file__).resolve().parents[3]


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def test_the_groups_are_the_whole_command_without_overlap() -> None:
    every = _commands(_parser())
    named = [name for names, _ in COMMANDS for name in names]
    assert named == every  # the help lists them in the table's order
    for names, _ in COMMANDS:
        assert _commands(_parser([names[0], "--help"])) == list(names)


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["disk", "replicate", "a", "b"], "disk"),
        (["--db", "x.db", "job", "run", "J"], "job"),
        (["-v", "--db", "disk", "replica", "list"], "replica"),  # a database named "disk"
        (["--version"], ""),
        ([], ""),
    ],
)
def test_command_word(argv: list[str], word: str) -> None:
    assert _command_of(argv) == word


def test_a_mistyped_command_lists_every_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "core", "dsik", "replicate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "invalid choice: 'dsik'" in proc.stderr
    assert "'disk'" in proc.stderr and "'replica'" in proc.stderr


def test_a_command_loads_no_other_commands_module() -> None:
    others = [f"core.cli.{m}" for m in ("job", "jobrun", "history", "failover", "infra", "lab")]
    code = (
        "import sys, core.cli.main as m; m._parser(['disk', 'replicate']);"
        f"bad = [k for k in {others!r} if k in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "core.cli.job" in _loaded_by(["job", "list"])


def _loaded_by(argv: list[str]) -> str:
    code = f"import sys, core.cli.main as m; m._parser({argv!r}); print(sorted(sys.modules))"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    return proc.stdout
