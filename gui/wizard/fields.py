"""Validation shown where it belongs: core's errors mapped back to the wizard's widgets.

The wizard never re-implements a rule of the model. A page builds the core dataclasses its
widgets describe (`built`, which places an `InvalidSettingError` under the key path of the
object being built, as the job-file reader does), and `FieldErrors` maps the error's path
(`settings.restore_points`, `reip[1].gateway`, `source.objects`) to the widget registered for
the longest matching prefix, and shows the reason in the label beside that widget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from PySide6.QtWidgets import QLabel, QTableWidget, QVBoxLayout, QWidget

from core.errors import InvalidSettingError

T = TypeVar("T")

ERROR_STYLE = "color: #c62828"
# A property selector: the red frame is the field's own, not its children's (a table's cells,
# a group's buttons).
INVALID_STYLE = '[invalid="true"] { border: 1px solid #c62828 }'


def mark_invalid(widget: QWidget, invalid: bool) -> None:
    widget.setProperty("invalid", "true" if invalid else "false")
    widget.setStyleSheet(INVALID_STYLE if invalid else "")


def built(prefix: str, make: Callable[[], T]) -> T:
    """`make()`, with any InvalidSettingError placed under `prefix`."""
    try:
        return make()
    except InvalidSettingError as e:
        raise e.under(prefix) from None


def under_path(path: str, prefix: str) -> bool:
    """Whether `path` is `prefix` or lies below it (`a.b`, `a[2]`, `a.b[0].c` under `a`)."""
    if not prefix:
        return True
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


def after_cell(table: QTableWidget, row: int, column: int) -> None:
    """Tab reaches the widget just put in (row, column) right after the cell widget before it
    (or the table itself): a widget joins the end of the window's Tab chain when it is put in a
    cell, after the wizard's buttons."""
    widget = table.cellWidget(row, column)
    previous: QWidget = table
    for r, c in reversed([(r, c) for r in range(row + 1) for c in range(table.columnCount())]):
        if (r, c) < (row, column) and table.cellWidget(r, c) is not None:
            previous = table.cellWidget(r, c)
            break
    if widget is not None:
        QWidget.setTabOrder(previous, widget)


def with_error(widget: QWidget, parent: QWidget | None = None) -> tuple[QWidget, QLabel]:
    """`widget` over a hidden red label for its reason; the pair, for a form row."""
    box = QWidget(parent)
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    layout.addWidget(widget)
    label = QLabel(box)
    label.setStyleSheet(ERROR_STYLE)
    label.setWordWrap(True)
    label.hide()
    layout.addWidget(label)
    return box, label


@dataclass
class _Field:
    path: str
    widget: QWidget
    label: QLabel
    describe: Callable[[InvalidSettingError], str] | None = None


class FieldErrors:
    """The fields of one page, by key path, and the reason shown beside each."""

    def __init__(self) -> None:
        self._fields: list[_Field] = []

    def add(
        self,
        path: str,
        widget: QWidget,
        label: QLabel,
        describe: Callable[[InvalidSettingError], str] | None = None,
    ) -> None:
        self._fields.append(_Field(path, widget, label, describe))

    def paths(self) -> list[str]:
        return [f.path for f in self._fields]

    def owns(self, error: InvalidSettingError) -> bool:
        return self._match(error.field) is not None

    def _match(self, path: str) -> _Field | None:
        best: _Field | None = None
        for f in self._fields:
            if under_path(path, f.path) and (best is None or len(f.path) > len(best.path)):
                best = f
        return best

    def clear(self) -> None:
        for f in self._fields:
            f.label.clear()
            f.label.hide()
            mark_invalid(f.widget, False)

    def show(self, error: InvalidSettingError) -> QLabel | None:
        """Show `error` beside its widget (and focus it); None when no field of this page owns
        the path."""
        self.clear()
        f = self._match(error.field)
        if f is None:
            return None
        if f.describe is not None:
            text = f.describe(error)
        else:
            rest = error.field[len(f.path) :].lstrip(".")
            text = f"{rest}: {error.problem}" if rest else error.problem
        f.label.setText(text)
        f.label.show()
        mark_invalid(f.widget, True)
        f.widget.setFocus()
        return f.label

    def label(self, path: str) -> QLabel:
        for f in self._fields:
            if f.path == path:
                return f.label
        raise KeyError(path)

    def shown(self) -> dict[str, str]:
        """The reasons on display, by field path (for tests and the summary)."""
        return {f.path: f.label.text() for f in self._fields if f.label.text()}
