"""The replica catalog in the database: replicas, restore points and per-disk change IDs.

One replica per (job, source server, VM moref). Restore point numbers grow by one per point and
are never reused, so a point named in a session or a log stays unambiguous after retention has
removed older ones. Removing a point removes its disk rows; removing a replica removes all.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from sqlite_utils import Database

from core.errors import NotFoundError
from core.model.replicas import DiskPoint, Replica, ReplicaState, RestorePoint
from core.store.connection import Connection
from core.store.timefmt import from_db, now, to_db

Row = dict[str, Any]


def _replica(row: Row) -> Replica:
    return Replica(
        id=row["id"],
        job=row["job"],
        source_server=row["source_server"],
        vm_moref=row["vm_moref"],
        vm_name=row["vm_name"],
        replica_name=row["replica_name"],
        target_server=row["target_server"],
        state=ReplicaState(row["state"]),
        created=from_db(row["created_at"]),
        updated=from_db(row["updated_at"]),
        replica_moref=row["replica_moref"],
        target_host_moref=row["target_host_moref"],
        target_host_name=row["target_host_name"],
        guest_addresses=_addresses(row.get("guest_addresses")),
    )


def _addresses(text: str | None) -> tuple[tuple[str, ...], ...] | None:
    if not text:
        return None
    return tuple(tuple(str(a) for a in nic) for nic in json.loads(text))


def _get(db: Database, replica_id: int) -> Row:
    row = next(iter(db.query("SELECT * FROM replicas WHERE id = ?", (replica_id,))), None)
    if row is None:
        raise NotFoundError("replica", replica_id)
    return row


def _find(db: Database, job: str, source_server: str, vm_moref: str) -> Replica | None:
    row = next(
        iter(
            db.query(
                "SELECT * FROM replicas WHERE job = ? AND source_server = ? AND vm_moref = ?",
                (job, source_server, vm_moref),
            )
        ),
        None,
    )
    return None if row is None else _replica(row)


def _point(db: Database, row: Row) -> RestorePoint:
    disks = tuple(
        DiskPoint(d["disk_key"], d["capacity_bytes"], d["change_id"], d["chain"], d["chain_point"])
        for d in db.query(
            "SELECT * FROM point_disks WHERE point_id = ? ORDER BY disk_key", (row["id"],)
        )
    )
    return RestorePoint(
        replica_id=row["replica_id"],
        number=row["number"],
        created=from_db(row["created_at"]),
        disks=disks,
        snapshot_moref=row["snapshot_moref"],
        session_id=row["session_id"],
        changed_bytes=row["changed_bytes"],
        transferred_bytes=row["transferred_bytes"],
    )


class Replicas:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def ensure(
        self,
        job: str,
        source_server: str,
        vm_moref: str,
        vm_name: str,
        replica_name: str,
        target_server: str,
    ) -> Replica:
        """The replica record of a VM in a job, made (state Ready, no points) if new.

        The VM's display name is refreshed: a VM renamed at the source keeps its replica."""
        stamp = to_db(now())
        with self._conn.write() as db:
            db.execute(
                "INSERT INTO replicas (job, source_server, vm_moref, vm_name, replica_name, "
                "target_server, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (job, source_server, vm_moref) "
                "DO UPDATE SET vm_name = excluded.vm_name",
                (
                    job,
                    source_server,
                    vm_moref,
                    vm_name,
                    replica_name,
                    target_server,
                    str(ReplicaState.READY),
                    stamp,
                    stamp,
                ),
            )
            found = _find(db, job, source_server, vm_moref)
            assert found is not None  # just inserted or updated in this transaction
            return found

    def get(self, replica_id: int) -> Replica:
        return _replica(_get(self._conn.db(), replica_id))

    def find(self, job: str, source_server: str, vm_moref: str) -> Replica | None:
        return _find(self._conn.db(), job, source_server, vm_moref)

    def list(self, job: str | None = None, include_permanent: bool = False) -> list[Replica]:
        """Replicas by job and VM name; permanently failed-over ones only when asked."""
        sql = "SELECT * FROM replicas WHERE (:job IS NULL OR job = :job)"
        if not include_permanent:
            sql += " AND state != :permanent"
        rows = self._conn.db().query(
            sql + " ORDER BY job, vm_name, id",
            {"job": job, "permanent": str(ReplicaState.PERMANENT_FAILOVER)},
        )
        return [_replica(r) for r in rows]

    def _update(self, replica_id: int, sets: str, params: Sequence[object]) -> Replica:
        with self._conn.write() as db:
            cur = db.execute(
                f"UPDATE replicas SET {sets}, updated_at = ? WHERE id = ?",
                (*params, to_db(now()), replica_id),
            )
            if cur.rowcount == 0:
                raise NotFoundError("replica", replica_id)
            return _replica(_get(db, replica_id))

    def set_state(self, replica_id: int, state: ReplicaState) -> Replica:
        return self._update(replica_id, "state = ?", (str(ReplicaState(state)),))

    def set_replica_vm(
        self,
        replica_id: int,
        replica_moref: str,
        target_host_moref: str | None,
        target_host_name: str | None,
    ) -> Replica:
        """Record the replica VM the first run created (or that a failback moved)."""
        return self._update(
            replica_id,
            "replica_moref = ?, target_host_moref = ?, target_host_name = ?",
            (replica_moref, target_host_moref, target_host_name),
        )

    def adopt_vm(
        self,
        replica_id: int,
        replica_moref: str,
        replica_name: str,
        target_host_moref: str | None,
        target_host_name: str | None,
    ) -> Replica:
        """Record an existing VM the first run took as the replica (replica mapping): its name
        is the replica's from now on."""
        return self._update(
            replica_id,
            "replica_moref = ?, replica_name = ?, target_host_moref = ?, target_host_name = ?",
            (replica_moref, replica_name, target_host_moref, target_host_name),
        )

    def set_guest_addresses(self, replica_id: int, per_nic: Sequence[Sequence[str]]) -> Replica:
        """Remember the source VM's guest addresses per NIC (what re-IP starts from)."""
        text = json.dumps([list(nic) for nic in per_nic])
        return self._update(replica_id, "guest_addresses = ?", (text,))

    def remove(self, replica_id: int) -> None:
        with self._conn.write() as db:
            if db.execute("DELETE FROM replicas WHERE id = ?", (replica_id,)).rowcount == 0:
                raise NotFoundError("replica", replica_id)

    def add_point(
        self,
        replica_id: int,
        disks: Sequence[DiskPoint],
        *,
        created: dt.datetime | None = None,
        snapshot_moref: str | None = None,
        session_id: int | None = None,
        changed_bytes: int = 0,
        transferred_bytes: int = 0,
    ) -> RestorePoint:
        """The replica's next point; `changed_bytes` and `transferred_bytes`: what the run
        that made it changed and sent for this VM."""
        with self._conn.write() as db:
            _get(db, replica_id)
            last = next(
                iter(
                    db.query(
                        "SELECT COALESCE(MAX(number), 0) AS n FROM restore_points "
                        "WHERE replica_id = ?",
                        (replica_id,),
                    )
                )
            )["n"]
            # Validate before writing: RestorePoint checks the disks and the snapshot moref.
            point = RestorePoint(
                replica_id,
                last + 1,
                created or now(),
                tuple(disks),
                snapshot_moref,
                session_id,
                changed_bytes,
                transferred_bytes,
            )
            cur = db.execute(
                "INSERT INTO restore_points (replica_id, number, created_at, snapshot_moref, "
                "session_id, changed_bytes, transferred_bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    replica_id,
                    point.number,
                    to_db(point.created),
                    snapshot_moref,
                    session_id,
                    point.changed_bytes,
                    point.transferred_bytes,
                ),
            )
            for disk in point.disks:
                db.execute(
                    "INSERT INTO point_disks (point_id, disk_key, capacity_bytes, change_id, "
                    "chain, chain_point) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        cur.lastrowid,
                        disk.disk_key,
                        disk.capacity_bytes,
                        disk.change_id,
                        disk.chain,
                        disk.chain_point,
                    ),
                )
            return point

    def points(self, replica_id: int) -> builtins.list[RestorePoint]:
        """Oldest first."""
        with self._conn.read() as db:
            _get(db, replica_id)
            rows = list(
                db.query(
                    "SELECT * FROM restore_points WHERE replica_id = ? ORDER BY number",
                    (replica_id,),
                )
            )
            return [_point(db, r) for r in rows]

    def latest_point(self, replica_id: int) -> RestorePoint | None:
        points = self.points(replica_id)
        return points[-1] if points else None

    def remove_point(self, replica_id: int, number: int) -> None:
        with self._conn.write() as db:
            cur = db.execute(
                "DELETE FROM restore_points WHERE replica_id = ? AND number = ?",
                (replica_id, number),
            )
            if cur.rowcount == 0:
                raise NotFoundError("restore point", f"{replica_id}/{number}")


class RunSnapshots:
    """Source snapshots taken by runs: recorded when taken, forgotten once removed.

    A run that crashes leaves its snapshot here, and the next run of the VM removes exactly
    those; a snapshot not listed here is never ours to remove.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, server: str, vm_moref: str, snapshot_moref: str, session_id: int | None) -> None:
        with self._conn.write() as db:
            db.execute(
                "INSERT OR IGNORE INTO run_snapshots (server, vm_moref, snapshot_moref, "
                "session_id, created_at) VALUES (?, ?, ?, ?, ?)",
                (server, vm_moref, snapshot_moref, session_id, to_db(now())),
            )

    def of_vm(self, server: str, vm_moref: str) -> builtins.list[str]:
        rows = self._conn.db().query(
            "SELECT snapshot_moref FROM run_snapshots WHERE server = ? AND vm_moref = ? "
            "ORDER BY created_at",
            (server, vm_moref),
        )
        return [str(r["snapshot_moref"]) for r in rows]

    def forget(self, server: str, vm_moref: str, snapshot_moref: str) -> None:
        with self._conn.write() as db:
            db.execute(
                "DELETE FROM run_snapshots WHERE server = ? AND vm_moref = ? AND "
                "snapshot_moref = ?",
                (server, vm_moref, snapshot_moref),
            )
