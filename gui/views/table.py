"""`RecordTable`: a filter box over a sortable table of a `RecordTableModel`, with an empty-state
text, a context menu of the page's actions and double-click/Enter to open a row; optionally a
drop target for what its model takes (`accept_drops`: onto a row, or onto empty space).

Shared by every table view (jobs, sessions, replicas, restore points, infrastructure), so they
behave alike: same sorting, same filtering, same keyboard.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPoint, Qt, Signal
from PySide6.QtGui import QAction, QKeyEvent, QPainter, QPaintEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLineEdit,
    QMenu,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from gui.models.base import RecordTableModel, Role
from gui.models.filters import Predicate, RecordFilterProxy


class EmptyAwareTableView(QTableView):
    """A table that says why it is empty instead of showing a blank pane."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.empty_text = ""

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        model = self.model()
        if self.empty_text and model is not None and model.rowCount() == 0:
            painter = QPainter(self.viewport())
            painter.setPen(self.palette().placeholderText().color())
            rect = self.viewport().rect().adjusted(12, 24, -12, -12)
            flags = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop
            painter.drawText(rect, int(flags) | int(Qt.TextFlag.TextWordWrap), self.empty_text)
            painter.end()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.activated.emit(self.currentIndex())
            return
        super().keyPressEvent(event)


class ProgressDelegate(QStyledItemDelegate):
    """Paints `Role.PROGRESS` (0-100) as a progress bar with the cell's text on it."""

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        value = index.data(Role.PROGRESS)
        if not isinstance(value, int) or value < 0:
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)
        bar.minimum = 0
        bar.maximum = 100
        bar.progress = value
        bar.text = str(index.data(Qt.ItemDataRole.DisplayRole) or f"{value}%")
        bar.textVisible = True
        bar.textAlignment = Qt.AlignmentFlag.AlignCenter
        bar.state = option.state
        bar.palette = option.palette
        style = option.widget.style() if option.widget is not None else None
        if style is None:
            super().paint(painter, option, index)
            return
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, option.widget)


class RecordTable(QWidget):
    opened = Signal(object)  # the record of a double-clicked row (or Enter)
    selectionChanged = Signal()

    def __init__(
        self,
        model: RecordTableModel,
        *,
        predicate: Predicate | None = None,
        empty_text: str = "",
        sort_column: int = 0,
        descending: bool = False,
        filter_box: bool = True,
        filter_hint: str = "Filter",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.model = model
        self.proxy = RecordFilterProxy(model, predicate, self)
        # The filter box first: Tab follows the order children were made in, and it is above.
        self.filter = QLineEdit(self)
        self.view = EmptyAwareTableView(self)
        self.view.empty_text = empty_text
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        self.view.sortByColumn(sort_column, order)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setAlternatingRowColors(True)
        self.view.setWordWrap(False)
        self.view.setShowGrid(False)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(self.view.fontMetrics().height() + 10)
        header = self.view.horizontalHeader()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setHighlightSections(False)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._menu)
        self.view.activated.connect(self._opened)
        self.view.doubleClicked.connect(self._opened)
        self.view.selectionModel().selectionChanged.connect(lambda *_: self.selectionChanged.emit())
        self.actions_for_menu: Sequence[QAction] = ()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.filter.setPlaceholderText(filter_hint)
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.filter.setVisible(filter_box)
        layout.addWidget(self.filter)
        layout.addWidget(self.view)
        self._sized = False
        model.rowsInserted.connect(self._fit_once)
        model.modelReset.connect(self._fit_once)
        self._fit_once()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._fit_once()

    def _fit_once(self, *args: Any) -> None:
        """Fit the columns to the first rows seen on screen; later the user's widths stay.
        (A hidden table measures only the rows its unsized viewport would show.)"""
        if self._sized or self.proxy.rowCount() == 0 or not self.isVisible():
            self._fit_headers()
            return
        self._sized = True
        self.fit_columns()

    def _fit_headers(self) -> None:
        header = self.view.horizontalHeader()
        for c in range(self.proxy.columnCount()):
            header.resizeSection(c, max(header.sectionSizeHint(c), 60))

    def fit_columns(self) -> None:
        self.view.resizeColumnsToContents()
        header = self.view.horizontalHeader()
        metrics = self.view.fontMetrics()
        last = len(self.model.columns) - 1
        for c, column in enumerate(self.model.columns):
            if c == last and header.stretchLastSection():
                break  # it takes the room left; its stretched size is no measure
            width = max(header.sectionSize(c), header.sectionSizeHint(c)) + 12
            if column.width:
                width = max(width, metrics.horizontalAdvance("x" * column.width))
            header.resizeSection(c, min(width, 420))

    def accept_drops(self) -> None:
        """Take the drops the model takes (its `mimeTypes`, `canDropMimeData`): onto a row,
        which is framed while dragged over, or onto empty space; never between rows. Other
        drags are refused at once, so no drop indicator shows for them."""
        view = self.view
        view.setAcceptDrops(True)
        view.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        view.setDragDropOverwriteMode(True)
        view.setDropIndicatorShown(True)
        view.setDefaultDropAction(Qt.DropAction.CopyAction)

    def _opened(self, index: QModelIndex) -> None:
        if index.isValid():
            self.opened.emit(self.proxy.data(self.proxy.index(index.row(), 0), Role.RECORD))

    def _menu(self, pos: QPoint) -> None:
        if not self.actions_for_menu:
            return
        menu = QMenu(self)
        for action in self.actions_for_menu:
            if action.isSeparator():
                menu.addSeparator()
            else:
                menu.addAction(action)
        menu.popup(self.view.viewport().mapToGlobal(pos))

    def selected(self) -> list[Any]:
        rows = sorted({i.row() for i in self.view.selectionModel().selectedRows()})
        return [self.proxy.data(self.proxy.index(r, 0), Role.RECORD) for r in rows]

    def current(self) -> Any:
        index = self.view.currentIndex()
        if not index.isValid():
            return None
        return self.proxy.data(self.proxy.index(index.row(), 0), Role.RECORD)

    def select_key(self, key: object) -> bool:
        """Select the row whose record has `key`; False when no visible row has it."""
        for r in range(self.proxy.rowCount()):
            if self.proxy.data(self.proxy.index(r, 0), Role.KEY) == key:
                self.view.selectRow(r)
                self.view.setCurrentIndex(self.proxy.index(r, 0))
                return True
        return False
