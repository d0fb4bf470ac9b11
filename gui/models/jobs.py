"""`JobsModel`: the Jobs view's table, one row per replication job (a `gui.snapshot.JobRow`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable

from core.model.objects import ObjectKind
from gui import format as fmt
from gui.models.base import Column, RecordTableModel
from gui.snapshot import JobRow


def _objects(row: JobRow) -> str:
    objs = row.job.source.objects
    vms = sum(1 for o in objs if o.kind == ObjectKind.VM)
    containers = len(objs) - vms
    parts = []
    if vms:
        parts.append(f"{vms} VM" + ("s" if vms != 1 else ""))
    if containers:
        parts.append(f"{containers} container" + ("s" if containers != 1 else ""))
    return ", ".join(parts) or "none"


def _status(row: JobRow) -> str:
    if row.running is not None:
        return "Running"
    return "Stopped" if row.job.schedule.enabled else "Disabled"


def _next(row: JobRow) -> str:
    return fmt.when(row.next_run) if row.next_run is not None else row.next_text


def _target(row: JobRow) -> str:
    placement = row.job.destination.placement
    return f"{placement.target.name} ({row.job.destination.server})"


def _stamp(value: dt.datetime | None) -> float:
    return value.timestamp() if value is not None else 0.0


class JobsModel(RecordTableModel):
    NAME, OBJECTS, STATUS, LAST_RUN, LAST_RESULT, NEXT_RUN, TARGET, DESCRIPTION = range(8)
    columns = (
        Column("Name", lambda r: r.job.name, width=24),
        Column("Objects", _objects, sort=lambda r: len(r.job.source.objects)),
        Column("Status", _status),
        Column(
            "Last run",
            lambda r: fmt.when(r.last.started if r.last else None),
            sort=lambda r: _stamp(r.last.started if r.last else None),
        ),
        Column(
            "Last result",
            lambda r: fmt.status(r.last.status) if r.last and r.last.ended else "",
        ),
        Column(
            "Next run",
            _next,
            sort=lambda r: r.next_run.timestamp() if r.next_run else float("inf"),
        ),
        Column("Target", _target),
        Column("Description", lambda r: r.job.description),
    )
    status_column = LAST_RESULT

    def key(self, record: JobRow) -> Hashable:
        return record.job.name

    def status(self, record: JobRow) -> str | None:
        if record.last is None or record.last.ended is None:
            return None
        return record.last.status
