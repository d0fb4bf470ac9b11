"""`RecordTableModel`: a table of frozen dataclass records, one row per record, kept by key.

Subclasses declare their columns as data (`Column`: title, text, sort value, alignment) and
name them with integer constants (`JobsModel.NAME`); every model answers the custom roles of
`Role`, so views, proxies and tests read the record behind a row, its key, a sort value that
sorts as the user expects (times by time, sizes by bytes) and one text to filter on.

`set_rows` merges a new list into the model by key: rows that are gone are removed, changed
rows emit `dataChanged`, new rows are appended. Selections and the current row survive a
refresh, which is what a table refreshed every second needs (a model reset would lose them).
The order of rows in the model is not meaningful; views sort through a proxy.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtGui import QColor

from core.model.replicas import ReplicaState
from core.model.runs import RunStatus

Index = QModelIndex | QPersistentModelIndex

LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


class Role(IntEnum):
    RECORD = Qt.ItemDataRole.UserRole + 1  # the row's dataclass
    KEY = Qt.ItemDataRole.UserRole + 2  # the row's identity (job name, session id...)
    SORT = Qt.ItemDataRole.UserRole + 3  # a value that sorts as people expect
    FILTER = Qt.ItemDataRole.UserRole + 4  # the row's searchable text (any column)
    STATUS = Qt.ItemDataRole.UserRole + 5  # RunStatus or ReplicaState of the row, if any
    PROGRESS = Qt.ItemDataRole.UserRole + 6  # 0-100, or -1 when unknown (task rows)


@dataclass(frozen=True)
class Column:
    title: str
    text: Callable[[Any], str]
    sort: Callable[[Any], int | float | str] | None = None  # default: the text
    align: Qt.AlignmentFlag = LEFT
    tip: str = ""
    width: int = 0  # preferred width in characters (0: fit the contents)


STATUS_COLORS: dict[str, QColor] = {
    RunStatus.SUCCESS: QColor(0x2E, 0x7D, 0x32),
    RunStatus.WARNING: QColor(0xB2, 0x6A, 0x00),
    RunStatus.FAILED: QColor(0xC6, 0x28, 0x28),
    RunStatus.RUNNING: QColor(0x15, 0x65, 0xC0),
    ReplicaState.READY: QColor(0x2E, 0x7D, 0x32),
    ReplicaState.PROCESSING: QColor(0x15, 0x65, 0xC0),
    ReplicaState.FAILOVER: QColor(0xB2, 0x6A, 0x00),
    ReplicaState.FAILBACK: QColor(0xB2, 0x6A, 0x00),
    ReplicaState.NEEDS_RESYNC: QColor(0xC6, 0x28, 0x28),
    ReplicaState.REIP_FAILED: QColor(0xC6, 0x28, 0x28),
}


@dataclass
class _Rows:
    records: list[Any] = field(default_factory=list)
    keys: list[Hashable] = field(default_factory=list)


class RecordTableModel(QAbstractTableModel):
    columns: Sequence[Column] = ()
    status_column: int = -1  # the column painted in the row's status color

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows = _Rows()

    # -- what subclasses say about a record -------------------------------------------------------

    def key(self, record: Any) -> Hashable:
        raise NotImplementedError

    def status(self, record: Any) -> str | None:
        """The row's RunStatus or ReplicaState (for colour and filters)."""
        return None

    def progress(self, record: Any) -> int:
        return -1

    # -- the records ------------------------------------------------------------------------------

    def set_rows(self, records: Sequence[Any]) -> None:
        new = list(records)
        new_keys = [self.key(r) for r in new]
        by_key = dict(zip(new_keys, new, strict=True))
        for i in reversed(range(len(self._rows.keys))):
            if self._rows.keys[i] not in by_key:
                self.beginRemoveRows(QModelIndex(), i, i)
                del self._rows.keys[i]
                del self._rows.records[i]
                self.endRemoveRows()
        last = self.columnCount() - 1
        for i, k in enumerate(self._rows.keys):
            if self._rows.records[i] != by_key[k]:
                self._rows.records[i] = by_key[k]
                self.dataChanged.emit(self.index(i, 0), self.index(i, last))
        present = set(self._rows.keys)
        added = [(k, r) for k, r in zip(new_keys, new, strict=True) if k not in present]
        if added:
            start = len(self._rows.keys)
            self.beginInsertRows(QModelIndex(), start, start + len(added) - 1)
            for k, r in added:
                self._rows.keys.append(k)
                self._rows.records.append(r)
            self.endInsertRows()

    def records(self) -> list[Any]:
        return list(self._rows.records)

    def record(self, row: int) -> Any:
        return self._rows.records[row]

    def row_of(self, key: Hashable) -> int:
        """The row holding `key`, -1 when none does."""
        try:
            return self._rows.keys.index(key)
        except ValueError:
            return -1

    def refresh_row(self, row: int) -> None:
        """Repaint a row whose derived values (progress, elapsed time) changed."""
        self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))

    # -- QAbstractTableModel ----------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows.records)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.columns):
            return None
        column = self.columns[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.title
        if role == Qt.ItemDataRole.ToolTipRole and column.tip:
            return column.tip
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return column.align
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows.records):
            return None
        record = self._rows.records[index.row()]
        column = self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.text(record)
        if role == Role.SORT:
            return column.sort(record) if column.sort is not None else column.text(record)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return column.align
        if role == Qt.ItemDataRole.ToolTipRole:
            text = column.text(record)
            return text or None
        if role == Qt.ItemDataRole.ForegroundRole and index.column() == self.status_column:
            state = self.status(record)
            return STATUS_COLORS.get(state) if state is not None else None
        if role == Role.RECORD:
            return record
        if role == Role.KEY:
            return self._rows.keys[index.row()]
        if role == Role.FILTER:
            return " ".join(c.text(record) for c in self.columns)
        if role == Role.STATUS:
            return self.status(record)
        if role == Role.PROGRESS:
            return self.progress(record)
        return None
