"""Source disks that runs attached to proxy VMs (Virtual appliance mode), in the database.

A run records an attach *before* it asks vSphere for it, naming the proxy VM, the SCSI slot the
disk will take and the disk file; once vSphere answers it adds the device key. The record is
forgotten after the detach. So a run that crashed leaves a record, and the next run detaches
exactly the disk in that slot with that file (a slot that was free when the record was written
cannot hold anybody else's disk of that file). A record belongs to a live run while its session
is running in a live process; only records of other runs are stale.
"""

from __future__ import annotations

import builtins
import sqlite3
from dataclasses import dataclass
from typing import Any

from core.errors import JobRunError
from core.store import process
from core.store.connection import Connection
from core.store.timefmt import now, to_db

Row = dict[str, Any]


@dataclass(frozen=True)
class HotAddRecord:
    id: int
    server: str  # the managed server the proxy VM is on
    proxy_vm: str  # moref
    controller_key: int
    unit_number: int
    device_key: int | None  # None: the run ended before vSphere answered the attach
    file: str  # "[ds] folder/disk.vmdk"
    source_vm: str  # moref of the VM whose disk it is
    session_id: int | None


def _record(row: Row) -> HotAddRecord:
    return HotAddRecord(
        id=row["id"],
        server=row["server"],
        proxy_vm=row["proxy_vm"],
        controller_key=row["controller_key"],
        unit_number=row["unit_number"],
        device_key=row["device_key"],
        file=row["file"],
        source_vm=row["source_vm"],
        session_id=row["session_id"],
    )


class HotAddDisks:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def record(
        self,
        server: str,
        proxy_vm: str,
        slot: tuple[int, int],
        file: str,
        source_vm: str,
        session_id: int | None,
    ) -> int:
        """Record an attach about to be made; its record ID."""
        try:
            with self._conn.write() as db:
                cur = db.execute(
                    "INSERT INTO hotadd_disks (server, proxy_vm, controller_key, unit_number, "
                    "file, source_vm, session_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (server, proxy_vm, slot[0], slot[1], file, source_vm, session_id, to_db(now())),
                )
                return int(cur.lastrowid or 0)
        except sqlite3.IntegrityError as e:
            raise JobRunError(
                f"proxy VM {proxy_vm}",
                f"SCSI slot {slot[0]}:{slot[1]} is already recorded for another run's hot-add",
            ) from e

    def set_device(self, record_id: int, device_key: int) -> None:
        with self._conn.write() as db:
            db.execute(
                "UPDATE hotadd_disks SET device_key = ? WHERE id = ?", (device_key, record_id)
            )

    def forget(self, record_id: int) -> None:
        with self._conn.write() as db:
            db.execute("DELETE FROM hotadd_disks WHERE id = ?", (record_id,))

    def of_proxy(self, server: str, proxy_vm: str) -> builtins.list[HotAddRecord]:
        rows = self._conn.db().query(
            "SELECT * FROM hotadd_disks WHERE server = ? AND proxy_vm = ? ORDER BY id",
            (server, proxy_vm),
        )
        return [_record(r) for r in rows]

    def stale(self, server: str, proxy_vm: str) -> builtins.list[HotAddRecord]:
        """Records of runs that are over (their session ended, or its process is gone)."""
        out = []
        db = self._conn.db()
        for rec in self.of_proxy(server, proxy_vm):
            row = next(
                iter(db.query("SELECT * FROM sessions WHERE id = ?", (rec.session_id,))), None
            )
            if row is not None and row["status"] == "running":
                owner = process.ProcessId(
                    row["owner_host"], row["owner_pid"], row["owner_started"], row["owner_boot"]
                )
                if process.is_alive(owner) is not False:
                    continue
            out.append(rec)
        return out
