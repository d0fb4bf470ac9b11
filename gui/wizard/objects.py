"""The wizard's object lists: VMs and containers dropped from an inventory tree, kept in order.

`ObjectListModel` accepts the inventory's drag payload (`MIME_OBJECTS`, from the wizard's own
tree or from the main window's Inventory view) and reorders its own rows by drag: an internal
drag carries `ROW_MIME` (the rows and this model's token) and is performed as a move by the
model itself, so the view never deletes the dragged rows afterwards (drags are copy drags).
Every drop is validated (`objects_from_mime`): a drop may come from another application.
One list holds objects of one managed server only, as a job's source selection does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTreeView, QWidget

from core.errors import InvalidSettingError
from core.jobs.sources import expand
from core.model.objects import ObjectKind, ObjectRef, SourceSelection
from core.vsphere.models import Inventory
from gui import format as fmt
from gui.models.base import RIGHT
from gui.models.inventory import MIME_OBJECTS, DraggedObject, objects_from_mime

ROW_MIME = "application/x-replicadesk-wizard-rows"
Index = QModelIndex | QPersistentModelIndex

KIND_WORDS = {
    ObjectKind.VM: "Virtual machine",
    ObjectKind.FOLDER: "Folder",
    ObjectKind.HOST: "Host",
    ObjectKind.CLUSTER: "Cluster",
    ObjectKind.DATACENTER: "Datacenter",
}


class ObjectListModel(QAbstractTableModel):
    NAME, TYPE, VMS, SIZE = range(4)
    HEADERS = ("Name", "Type", "VMs", "Size")
    changed = Signal()
    refused = Signal(str)  # why (part of) a drop was not taken

    def __init__(self, kinds: Iterable[ObjectKind], parent: Any = None) -> None:
        super().__init__(parent)
        self.kinds = frozenset(kinds)
        self.items: list[DraggedObject] = []
        self.inventories: dict[str, Inventory] = {}

    # -- content ----------------------------------------------------------------------------------

    @property
    def server(self) -> str:
        return self.items[0].server if self.items else ""

    def refs(self) -> tuple[ObjectRef, ...]:
        return tuple(i.ref for i in self.items)

    def set_items(self, items: Sequence[DraggedObject]) -> None:
        self.beginResetModel()
        self.items = list(items)
        self.endResetModel()
        self.changed.emit()

    def set_inventories(self, inventories: dict[str, Inventory]) -> None:
        self.inventories = inventories
        if self.items:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.items) - 1, 3))

    def add(self, objects: Sequence[DraggedObject], row: int = -1) -> list[str]:
        """Insert `objects` at `row` (-1: at the end); returns why some were not taken."""
        problems: list[str] = []
        taken: list[DraggedObject] = []
        present = {(i.server, i.ref.moref) for i in self.items}
        server = self.server
        for obj in objects:
            if obj.ref.kind not in self.kinds:
                words = KIND_WORDS.get(obj.ref.kind, str(obj.ref.kind)).lower()
                problems.append(f"{obj.ref.name}: a {words} cannot be added here")
                continue
            server = server or obj.server
            if obj.server != server:
                problems.append(
                    f"{obj.ref.name} is on {obj.server}: a job's objects all come from one "
                    f"server ({server})"
                )
                continue
            if (obj.server, obj.ref.moref) in present:
                continue
            present.add((obj.server, obj.ref.moref))
            taken.append(obj)
        if taken:
            at = len(self.items) if row < 0 or row > len(self.items) else row
            self.beginInsertRows(QModelIndex(), at, at + len(taken) - 1)
            self.items[at:at] = taken
            self.endInsertRows()
            self.changed.emit()
        if problems:
            self.refused.emit("; ".join(problems))
        return problems

    def remove(self, rows: Iterable[int]) -> None:
        for r in sorted(set(rows), reverse=True):
            if 0 <= r < len(self.items):
                self.beginRemoveRows(QModelIndex(), r, r)
                del self.items[r]
                self.endRemoveRows()
        self.changed.emit()

    def move(self, rows: Iterable[int], to: int) -> int:
        """Move `rows` (kept in their order) before row `to`; returns the first moved row's new
        position."""
        chosen = sorted({r for r in rows if 0 <= r < len(self.items)})
        if not chosen:
            return -1
        moving = [self.items[r] for r in chosen]
        to = len(self.items) if to < 0 else min(to, len(self.items))
        to -= sum(1 for r in chosen if r < to)
        rest = [item for r, item in enumerate(self.items) if r not in set(chosen)]
        self.beginResetModel()
        self.items = rest[:to] + moving + rest[to:]
        self.endResetModel()
        self.changed.emit()
        return to

    # -- what a row shows -------------------------------------------------------------------------

    def _measure(self, obj: DraggedObject) -> tuple[int, int] | None:
        """VMs and provisioned bytes under `obj`, from its server's inventory."""
        inv = self.inventories.get(obj.server)
        if inv is None or not inv.has(obj.ref.moref):
            return None
        try:
            found = expand(SourceSelection(obj.server, (obj.ref,)), inv)
        except InvalidSettingError:
            return None
        return len(found.vms), sum(d.capacity for v in found.vms for d in v.vm.disks)

    # -- QAbstractTableModel ----------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.items)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        if role == Qt.ItemDataRole.TextAlignmentRole and section in (self.VMS, self.SIZE):
            return RIGHT
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.items):
            return None
        obj = self.items[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.NAME:
                return obj.ref.name
            if col == self.TYPE:
                return KIND_WORDS.get(obj.ref.kind, str(obj.ref.kind))
            measured = self._measure(obj)
            if measured is None:
                return "" if col == self.VMS else "not in the inventory"
            return str(measured[0]) if col == self.VMS else fmt.size(measured[1])
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{obj.ref.name} ({obj.ref.moref} on {obj.server})"
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (self.VMS, self.SIZE):
            return RIGHT
        if role == Qt.ItemDataRole.UserRole:
            return obj
        return None

    # -- drag and drop ----------------------------------------------------------------------------

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = Qt.ItemFlag.ItemIsDropEnabled
        if not index.isValid():
            return base
        return (
            base
            | Qt.ItemFlag.ItemIsEnabled
            | Qt.ItemFlag.ItemIsSelectable
            | Qt.ItemFlag.ItemIsDragEnabled
        )

    def mimeTypes(self) -> list[str]:
        return [MIME_OBJECTS, ROW_MIME]

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction | Qt.DropAction.MoveAction

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        rows = sorted({i.row() for i in indexes if i.isValid()})
        items = [self.items[r] for r in rows]
        mime = QMimeData()
        payload = [
            {"server": i.server, "kind": str(i.ref.kind), "moref": i.ref.moref, "name": i.ref.name}
            for i in items
        ]
        mime.setData(MIME_OBJECTS, json.dumps(payload, ensure_ascii=False).encode())
        mime.setData(ROW_MIME, json.dumps({"model": id(self), "rows": rows}).encode())
        mime.setText("\n".join(i.ref.name for i in items))
        return mime

    def _own_rows(self, data: QMimeData) -> list[int] | None:
        if not data.hasFormat(ROW_MIME):
            return None
        try:
            untrusted = json.loads(bytes(data.data(ROW_MIME).data()).decode())
        except (UnicodeDecodeError, ValueError):
            return None
        if not isinstance(untrusted, dict) or untrusted.get("model") != id(self):
            return None
        rows = untrusted.get("rows")
        if not isinstance(rows, list) or not all(isinstance(r, int) for r in rows):
            return None
        return [r for r in rows if 0 <= r < len(self.items)]

    def canDropMimeData(
        self,
        data: QMimeData,
        action: Qt.DropAction,
        row: int,
        column: int,
        parent: Index,
    ) -> bool:
        return data.hasFormat(MIME_OBJECTS) or self._own_rows(data) is not None

    def dropMimeData(
        self,
        data: QMimeData,
        action: Qt.DropAction,
        row: int,
        column: int,
        parent: Index,
    ) -> bool:
        if action == Qt.DropAction.IgnoreAction:
            return True
        at = row
        if at < 0 and parent.isValid():
            at = parent.row()  # dropped onto a row: before it
        own = self._own_rows(data)
        if own is not None:
            self.move(own, at)
            return True
        try:
            objects = objects_from_mime(data)
        except InvalidSettingError as e:
            self.refused.emit(f"The drop was not taken: {e.problem}")
            return False
        self.add(objects, at)
        return True


class ObjectListView(QTreeView):
    """A flat list of an `ObjectListModel`: a drop target for inventory objects, reordered by
    drag, Delete removes the selected rows."""

    def __init__(self, model: ObjectListModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setModel(model)
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setDragEnabled(True)
        self.setAcceptDrops(True)
        self.setDropIndicatorShown(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(ObjectListModel.NAME, QHeaderView.ResizeMode.Stretch)
        for c in (ObjectListModel.TYPE, ObjectListModel.VMS, ObjectListModel.SIZE):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)

    def selected_rows(self) -> list[int]:
        return sorted({i.row() for i in self.selectionModel().selectedRows()})
