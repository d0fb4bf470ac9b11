"""What the database-backed subcommands share: where the database is, and opening it.

`--db PATH` (global, before the subcommand) names the database; without it the database is
`$REPLICADESK_HOME/replicadesk.db`, `REPLICADESK_HOME` defaulting to `~/.local/share/replicadesk`.
The secrets key sits beside the database (`<db>.key`, `core.store.secrets`). The store's modules
load only when a command opens it, so `replicadesk --help` and the disk commands stay fast.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.store.store import Store

DB_NAME = "replicadesk.db"


def default_home() -> Path:
    home = os.environ.get("REPLICADESK_HOME")
    return Path(home) if home else Path.home() / ".local" / "share" / "replicadesk"


def default_db() -> Path:
    return default_home() / DB_NAME


def db_path(args: argparse.Namespace) -> Path:
    path: Path | None = getattr(args, "db", None)
    return (path or default_db()).expanduser()


def open_store(args: argparse.Namespace) -> Store:
    from core.store.store import Store

    return Store.open(db_path(args))


def when(value: dt.datetime | None) -> str:
    """A stored time as a person reads it: local time to the second, "-" when none."""
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def size(n: float) -> str:
    """Bytes in binary units, one decimal: "1.5 GiB"."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def table(headers: list[str], rows: list[list[str]]) -> None:
    """Print rows in columns as wide as their widest cell; names are printed as they are."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    for row in [headers, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def db_arg(p: argparse.ArgumentParser) -> None:
    """`--db` after the subcommand too (`replicadesk job list --db x.db`); the global one is
    kept when this one is not given."""
    p.add_argument("--db", type=Path, default=argparse.SUPPRESS, help="the ReplicaDesk database")
