"""`RecordFilterProxy`: sorting and filtering for the table models of `gui.models.base`.

Sorts by `Role.SORT` (times by time, sizes by bytes), filters case-insensitively on the whole
row's text (`Role.FILTER`, what a filter box types) and, when given, on a predicate over the
row's record (Replicas > Ready / Active, Last 24 hours). Predicates read only the record, never
the store.

A proxy is never the child of its own source model: PySide6 6.12 crashes in the garbage
collector when a model and a proxy parented to it are collected together (a closed window's
tables). It takes the view or nothing as its parent and keeps its source alive by reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)

from gui.models.base import RecordTableModel, Role

Predicate = Callable[[Any], bool]


class RecordFilterProxy(QSortFilterProxyModel):
    def __init__(
        self,
        source: RecordTableModel,
        predicate: Predicate | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._source = source  # not its parent: see the module's docstring
        self.setSourceModel(source)
        self.setSortRole(Role.SORT)
        self.setFilterRole(Role.FILTER)
        self.setFilterKeyColumn(0)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setDynamicSortFilter(True)
        self._predicate = predicate

    def set_predicate(self, predicate: Predicate | None) -> None:
        self.beginFilterChange()
        self._predicate = predicate
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def recheck(self) -> None:
        """Apply the predicate again (it depends on the clock, e.g. "last 24 hours")."""
        self.beginFilterChange()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, row: int, parent: QModelIndex | QPersistentModelIndex) -> bool:
        if not super().filterAcceptsRow(row, parent):
            return False
        if self._predicate is None:
            return True
        source = self.sourceModel()
        return bool(self._predicate(source.data(source.index(row, 0, parent), Role.RECORD)))

    def record(self, row: int) -> Any:
        return self.data(self.index(row, 0), Role.RECORD)

    def records(self) -> list[Any]:
        return [self.record(r) for r in range(self.rowCount())]
