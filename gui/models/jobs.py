"""`JobsModel`: the Jobs view's table, one row per replication job (a `gui.snapshot.JobRow`).

It is also a drop target for the Inventory view's drag payload (`MIME_OBJECTS`, nothing else):
a drop onto a job's row or onto empty space is validated (`objects_from_mime`: a drop may come
from another application) and announced as `objectsDropped` (the objects, the job's name or ""
for empty space); the main window decides what it means (gui.add_to_job). A payload that is
ours by type but unreadable is refused with `dropRefused`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable

from PySide6.QtCore import QMimeData, Qt, Signal

from core.errors import InvalidSettingError
from core.model.objects import ObjectKind
from gui import format as fmt
from gui.models.base import Column, Index, RecordTableModel
from gui.models.inventory import MIME_OBJECTS, objects_from_mime
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
    objectsDropped = Signal(object, str)  # list[DraggedObject], the job's name ("" no job's row)
    dropRefused = Signal(str)  # why a drop of our type was not taken

    def key(self, record: JobRow) -> Hashable:
        return record.job.name

    def status(self, record: JobRow) -> str | None:
        if record.last is None or record.last.ended is None:
            return None
        return record.last.status

    # -- drops from the Inventory view ------------------------------------------------------------

    def flags(self, index: Index) -> Qt.ItemFlag:
        return super().flags(index) | Qt.ItemFlag.ItemIsDropEnabled

    def mimeTypes(self) -> list[str]:
        return [MIME_OBJECTS]

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    def canDropMimeData(
        self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: Index
    ) -> bool:
        return data.hasFormat(MIME_OBJECTS)

    def dropMimeData(
        self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: Index
    ) -> bool:
        """`parent` is the job's row dropped onto (the view overwrites, it never inserts);
        invalid for empty space."""
        if action == Qt.DropAction.IgnoreAction:
            return True
        try:
            objects = objects_from_mime(data)
        except InvalidSettingError as e:
            self.dropRefused.emit(f"The drop was not taken: {e.problem}")
            return False
        if not objects:
            return False
        job = self.record(parent.row()).job.name if parent.isValid() else ""
        self.objectsDropped.emit(objects, job)
        return True
