"""The `replicadesk` command: argument parsing and output for core's services.

Subcommands build the same engine objects the console will; this module only turns arguments
into typed requests and results into text, JSON (`--json`) or a progress bar (on a terminal).
Every `ReplicaDeskError` ends the command with its message and its exit code.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from core import __version__
from core.errors import CancelledError, ReplicaDeskError, UsageError

Handler = Callable[[argparse.Namespace], int]


def _register_job(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from core.cli import job, jobrun

    jobrun.register(job.register(sub))


def _register_history(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from core.cli import failover, history

    failover.register(history.register(sub))


def _module(name: str) -> Callable[[argparse._SubParsersAction], None]:  # type: ignore[type-arg]
    def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        importlib.import_module(f"core.cli.{name}").register(sub)

    return register


# Top-level commands, each with what registers it. A command names its group before anything is
# imported, so `replicadesk disk replicate` loads the engine and not pyVmomi, Qt's registration
# or the lab (a tenth of a second of start-up: engine_bench's floor). Order is the help's order.
COMMANDS: tuple[tuple[tuple[str, ...], Callable[[argparse._SubParsersAction], None]], ...] = (  # type: ignore[type-arg]
    (("disk",), _module("disk")),
    (("mover",), _module("mover")),
    (("lab",), _module("lab")),
    (("demo",), _module("demo")),
    (("server", "proxy", "repo"), _module("infra")),
    (("inventory",), _module("inventory")),
    (("job",), _register_job),
    (("session", "replica"), _register_history),
    (("plan",), _module("plans")),
    (("estimate",), _module("estimate")),
    (("service",), _module("service")),
    (("console",), lambda sub: _register_console(sub)),
)


def _command_of(argv: Sequence[str]) -> str:
    """The command word of `argv` (the first word that is not an option or --db's value)."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word == "--db":
            skip = True
        elif not word.startswith("-"):
            return word
    return ""


def _parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser; with `argv` naming a known command, only that command's group is registered
    (every group otherwise: for the help and for a mistyped command)."""
    from core.cli.context import default_db

    parser = argparse.ArgumentParser(
        prog="replicadesk",
        description="ReplicaDesk: VMware replication and disaster recovery. Replicates VM disks "
        "block by block into restore points and moves the data between sites.",
    )
    parser.add_argument("--version", action="version", version=f"replicadesk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        help=f"the database (default {default_db()}; $REPLICADESK_HOME sets its folder)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    command = _command_of(argv)
    known = any(command in names for names, _ in COMMANDS)
    for names, register in COMMANDS:
        if not known or command in names:
            register(sub)
    return parser


def _register_console(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from core.cli.context import db_arg

    p = sub.add_parser(
        "console",
        help="open the ReplicaDesk console (Qt desktop)",
        description="Open the console on the database. --lab instead starts the built-in lab, "
        "registers it in a new database with a job over several VMs and opens the console on "
        "it (the lab stops when the window closes). --render DIR starts the lab, runs a job and "
        "writes a PNG of every main view to DIR (offscreen).",
    )
    p.add_argument(
        "--lab", action="store_true", help="start the built-in lab and open the console on it"
    )
    p.add_argument(
        "--dir", type=Path, help="with --lab: keep the database in DIR (default: a temporary one)"
    )
    p.add_argument("--render", type=Path, metavar="DIR", help="render every view to DIR")
    p.add_argument(
        "--vms", type=positive_int, default=12, help="VMs in the lab --lab or --render starts"
    )
    db_arg(p)
    p.set_defaults(handler=_cmd_console)


def _cmd_console(args: argparse.Namespace) -> int:
    # Imported here: core never imports Qt; only this command loads the console.
    try:
        from gui.app import console_command
    except ImportError as e:
        if e.name is None or not e.name.startswith(("PySide6", "shiboken6")):
            raise
        raise UsageError(
            "the console needs PySide6, which this installation lacks (a proxy host's does): "
            "pip install 'replicadesk[console]'"
        ) from e

    return console_command(args.db, args.render, args.vms, args.lab, args.dir)


class Cancel:
    """First Ctrl-C (or SIGTERM) cancels the run cleanly; a second one kills."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.message = "\nreplicadesk: cancelling (again to kill)..."
        """What the first signal prints; a long-running service says it is stopping instead."""

    def install(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            if self.event.is_set():
                signal.signal(signum, signal.SIG_DFL)
                signal.raise_signal(signum)
                return
            self.event.set()
            print(self.message, file=sys.stderr)

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)
            signal.signal(signal.SIGTERM, handler)


CANCEL = Cancel()


def emit_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    parser = _parser(words)
    args = parser.parse_args(words)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    CANCEL.install()
    handler: Handler = args.handler
    try:
        return handler(args)
    except CancelledError as e:
        print(f"replicadesk: {e}", file=sys.stderr)
        return e.exit_code
    except ReplicaDeskError as e:
        print(f"replicadesk: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("replicadesk: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): not an error of ours, and nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from e
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_bytes(text: str) -> int:
    """'512K', '4M', '1.5G', '1000' -> bytes (binary units); a clear error otherwise."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1:] if t[-1:] in _UNITS and t[-1:] else ""
    number = t[: -len(unit)] if unit else t
    try:
        value = float(number)
    except ValueError:
        raise UsageError(f"{text!r} is not a size like 512K, 4M or 1G") from None
    if value <= 0:
        raise UsageError(f"{text!r} is not a positive size")
    return int(value * _UNITS[unit])


def host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def require(cond: bool, message: str) -> None:
    if not cond:
        raise UsageError(message)
