"""Locks across threads and processes: one VM is never processed by two runs at once, and
retention never runs under a job (DOMAIN.md: lock per VM and per replica).

A lock is a row in the `locks` table, keyed by what it protects (`vm_key`, `replica_key`),
holding a random token per lease and the owner process (`core.store.process`). Acquiring is
all-or-nothing inside one `BEGIN IMMEDIATE` transaction, so two processes racing for the same
VM serialize on SQLite's write lock and exactly one wins. A row whose owner process is gone (a
crash, a kill, a reboot) is stale: the next acquirer takes it over. Within one process two
threads with two leases exclude each other too, since each lease has its own token.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from core.errors import LockHeldError
from core.store import process
from core.store.connection import Connection
from core.store.timefmt import from_db, now, to_db


def vm_key(server: str, vm_moref: str) -> str:
    return f"vm:{server}/{vm_moref}"


def replica_key(replica_id: int) -> str:
    return f"replica:{replica_id}"


@dataclass(frozen=True)
class LockHolder:
    key: str
    purpose: str
    owner: process.ProcessId
    acquired: dt.datetime


@dataclass
class Lease:
    """Locks held together; release them with `Locks.release` or by leaving `Locks.hold`."""

    token: str
    keys: tuple[str, ...]
    purpose: str
    released: bool = field(default=False)


class Locks:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def acquire(self, keys: Iterable[str], purpose: str) -> Lease:
        """Take every lock in `keys` or none; LockHeldError names the first one held."""
        wanted = tuple(sorted(set(keys)))
        me = process.current()
        token = secrets.token_hex(16)
        stamp = to_db(now())
        with self._conn.write() as db:
            for key in wanted:
                row = next(iter(db.query("SELECT * FROM locks WHERE key = ?", (key,))), None)
                if row is None:
                    continue
                holder = _holder(row)
                if process.is_alive(holder.owner) is False:
                    db.execute("DELETE FROM locks WHERE key = ?", (key,))
                    continue
                since = f"{holder.acquired:%Y-%m-%d %H:%M:%S} UTC"
                raise LockHeldError(key, f"{holder.purpose}, {holder.owner}, since {since}")
            for key in wanted:
                db.execute(
                    "INSERT INTO locks (key, token, purpose, owner_host, owner_pid, owner_started, "
                    "owner_boot, acquired_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, token, purpose, me.host, me.pid, me.started, me.boot, stamp),
                )
        return Lease(token, wanted, purpose)

    def release(self, lease: Lease) -> None:
        if lease.released:
            return
        with self._conn.write() as db:
            db.execute("DELETE FROM locks WHERE token = ?", (lease.token,))
        lease.released = True

    @contextmanager
    def hold(self, keys: Iterable[str], purpose: str) -> Iterator[Lease]:
        lease = self.acquire(keys, purpose)
        try:
            yield lease
        finally:
            self.release(lease)

    def holders(self) -> list[LockHolder]:
        return [_holder(r) for r in self._conn.db().query("SELECT * FROM locks ORDER BY key")]

    def clear_stale(self) -> list[str]:
        """Remove the locks of dead processes; returns their keys."""
        cleared: list[str] = []
        with self._conn.write() as db:
            for row in list(db.query("SELECT * FROM locks")):
                if process.is_alive(_holder(row).owner) is False:
                    db.execute("DELETE FROM locks WHERE key = ?", (row["key"],))
                    cleared.append(row["key"])
        return cleared


def _holder(row: dict[str, object]) -> LockHolder:
    owner = process.ProcessId(
        str(row["owner_host"]),
        int(str(row["owner_pid"])),
        int(str(row["owner_started"])),
        str(row["owner_boot"]),
    )
    return LockHolder(str(row["key"]), str(row["purpose"]), owner, from_db(str(row["acquired_at"])))
