"""Replicas (`ReplicasModel`, one row per replica) and a replica's restore points.

A replica's row says its state, its restore points (how many, the newest one's date and size)
and the job's last run that had its VM; the points table lists every point with its date and
size. A point's size is what its run sent for the VM (`ReplicaRow.point_sizes`): the data the
point added at the DR site.
"""

from __future__ import annotations

from collections.abc import Hashable

from core.model.replicas import RestorePoint
from gui import format as fmt
from gui.models.base import RIGHT, Column, RecordTableModel
from gui.snapshot import ReplicaRow


def _last(row: ReplicaRow) -> str:
    return fmt.when(row.latest.created) if row.latest else "No restore point yet"


def _size_text(size: int | None) -> str:
    return fmt.size(size) if size is not None else "unknown"


def _last_size(row: ReplicaRow) -> int | None:
    return row.point_size(row.latest.number) if row.latest else None


def _last_run(row: ReplicaRow) -> str:
    run = row.last_run
    if run is None:
        return ""
    if run.ended is None:
        return f"{fmt.when(run.started)} (running)"
    return f"{fmt.when(run.started)} ({fmt.status(run.status)})"


def _state(row: ReplicaRow) -> str:
    return str(row.replica.state) + (", test failover up" if row.test_running else "")


class ReplicasModel(RecordTableModel):
    (
        VM,
        REPLICA,
        JOB,
        STATE,
        POINTS,
        LAST_POINT,
        LAST_SIZE,
        LAST_RUN,
        TARGET_HOST,
        TARGET_SERVER,
    ) = range(10)
    columns = (
        Column("VM", lambda r: r.replica.vm_name),
        Column("Replica", lambda r: r.replica.replica_name),
        Column("Job", lambda r: r.replica.job),
        Column("State", _state),
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
        Column(
            "Last point size",
            lambda r: _size_text(_last_size(r)) if r.latest else "",
            sort=lambda r: _last_size(r) or 0,
            align=RIGHT,
            tip="What the run of the newest restore point sent for this VM",
        ),
        Column(
            "Last run",
            _last_run,
            sort=lambda r: r.last_run.started.timestamp() if r.last_run else 0.0,
            tip="The job's newest replication run that processed this VM, and its result",
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
    """The points of one replica, newest first when sorted by number descending. Sizes come
    from the replica's row (`set_replica`); points set alone show their size as unknown."""

    NUMBER, CREATED, SIZE, DISKS, CAPACITY, CBT, SESSION, SNAPSHOT = range(8)

    def __init__(self, parent: object = None) -> None:
        super().__init__(parent)
        self.sizes: dict[tuple[int, int], int | None] = {}
        self.columns = (
            Column("#", lambda p: str(p.number), sort=lambda p: p.number, align=RIGHT),
            Column("Created", lambda p: fmt.when(p.created), sort=lambda p: p.created.timestamp()),
            Column(
                "Size",
                lambda p: _size_text(self.size(p)),
                sort=lambda p: self.size(p) or 0,
                align=RIGHT,
                tip="What the point's run sent for this VM: the data the point added",
            ),
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

    def size(self, point: RestorePoint) -> int | None:
        return self.sizes.get((point.replica_id, point.number))

    def set_replica(self, row: ReplicaRow | None) -> None:
        """The points of `row` with their sizes (None: no replica, no rows)."""
        if row is None:
            self.set_rows([])
            return
        sizes = {
            (p.replica_id, p.number): s for p, s in zip(row.points, row.point_sizes, strict=False)
        }
        changed = sizes != {k: v for k, v in self.sizes.items() if k in sizes}
        self.sizes = sizes
        self.set_rows(row.points)
        if changed:
            for r in range(self.rowCount()):
                self.refresh_row(r)

    def key(self, record: RestorePoint) -> Hashable:
        return (record.replica_id, record.number)
