"""Replicas (`ReplicasModel`, one row per replica) and a replica's restore points."""

from __future__ import annotations

from collections.abc import Hashable

from core.model.replicas import RestorePoint
from gui import format as fmt
from gui.models.base import RIGHT, Column, RecordTableModel
from gui.snapshot import ReplicaRow


def _last(row: ReplicaRow) -> str:
    return fmt.when(row.latest.created) if row.latest else "No restore point yet"


class ReplicasModel(RecordTableModel):
    VM, REPLICA, JOB, STATE, POINTS, LAST_POINT, TARGET_HOST, TARGET_SERVER = range(8)
    columns = (
        Column("VM", lambda r: r.replica.vm_name),
        Column("Replica", lambda r: r.replica.replica_name),
        Column("Job", lambda r: r.replica.job),
        Column("State", lambda r: str(r.replica.state)),
        Column(
            "Restore points",
            lambda r: str(len(r.points)),
            sort=lambda r: len(r.points),
            align=RIGHT,
        ),
        Column(
            "Last point",
            _last,
            sort=lambda r: r.latest.created.timestamp() if r.latest else 0.0,
        ),
        Column("Target host", lambda r: r.replica.target_host_name or ""),
        Column("Target server", lambda r: r.replica.target_server),
    )
    status_column = STATE

    def key(self, record: ReplicaRow) -> Hashable:
        return record.replica.id

    def status(self, record: ReplicaRow) -> str | None:
        return record.replica.state


def _capacity(p: RestorePoint) -> int:
    return sum(d.capacity_bytes for d in p.disks)


class RestorePointsModel(RecordTableModel):
    """The points of one replica, newest first when sorted by number descending."""

    NUMBER, CREATED, DISKS, CAPACITY, CBT, SESSION, SNAPSHOT = range(7)
    columns = (
        Column("#", lambda p: str(p.number), sort=lambda p: p.number, align=RIGHT),
        Column("Created", lambda p: fmt.when(p.created), sort=lambda p: p.created.timestamp()),
        Column("Disks", lambda p: str(len(p.disks)), sort=lambda p: len(p.disks), align=RIGHT),
        Column(
            "Disk capacity",
            lambda p: fmt.size(_capacity(p)),
            sort=_capacity,
            align=RIGHT,
            tip="The provisioned size of the replica's disks at this point",
        ),
        Column(
            "Changed block tracking",
            lambda p: "Used" if p.disks and all(d.change_id for d in p.disks) else "Not used",
        ),
        Column(
            "Session",
            lambda p: str(p.session_id) if p.session_id is not None else "",
            sort=lambda p: p.session_id or 0,
            align=RIGHT,
        ),
        Column("Snapshot on the replica", lambda p: p.snapshot_moref or ""),
    )

    def key(self, record: RestorePoint) -> Hashable:
        return (record.replica_id, record.number)
