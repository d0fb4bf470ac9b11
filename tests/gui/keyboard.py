"""What the keyboard tests check in any window of the console: the Tab chain against the
on-screen reading order, mnemonics (Alt+letter) that are unique and lead somewhere, and which
buttons have none.

Positions are those of the laid-out widgets (`mapTo` the window), so a window must be shown
before it is checked. The Tab chain is walked with `QWidget.focusNextChild`, Qt's own Tab.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import (
    QAbstractButton,
    QDialogButtonBox,
    QGroupBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTextEdit,
    QWidget,
)


def mnemonic(text: str) -> str:
    """The letter or digit after a single '&' ("" when there is none; "&&" is a literal '&',
    and so is one before a space or a sign)."""
    i = 0
    while i < len(text) - 1:
        if text[i] == "&":
            if text[i + 1].isalnum():
                return text[i + 1].lower()
            i += 1
        i += 1
    return ""


def tab_chain(window: QWidget, limit: int = 300) -> list[QWidget]:
    """The widgets Tab visits in `window`, once each, in the order it visits them."""
    seen: list[QWidget] = []
    for _ in range(limit):
        window.focusNextChild()
        widget = window.focusWidget()
        if widget is None or widget in seen:
            break
        seen.append(widget)
    return seen


def rect_in(window: QWidget, widget: QWidget) -> QRect:
    return QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())


def _before(a: QRect, b: QRect) -> bool:
    """Whether reading order puts `a` before `b`: above it in the same column, or left of it
    on the same line. Side-by-side columns of different heights leave items of one column
    unordered against those of the other (either may come first)."""
    columns = min(a.right(), b.right()) - max(a.left(), b.left()) > 0
    lines = min(a.bottom(), b.bottom()) - max(a.top(), b.top()) > 0
    return (columns and a.bottom() <= b.top()) or (lines and a.right() <= b.left())


@dataclass(frozen=True)
class OutOfOrder:
    earlier: str
    later: str

    def __str__(self) -> str:
        return f"Tab reaches {self.later} after {self.earlier}, though it is above or left of it"


def describe(widget: QWidget) -> str:
    name = widget.accessibleName() or widget.objectName()
    if isinstance(widget, QAbstractButton):
        name = name or widget.text()
    return f"{type(widget).__name__}({name!r})" if name else type(widget).__name__


def out_of_order(window: QWidget, chain: list[QWidget]) -> list[OutOfOrder]:
    """The pairs Tab visits against the reading order, for the rotation of the chain (it is a
    cycle) where Tab starts that has the fewest."""
    rects = [rect_in(window, w) for w in chain]
    best: list[OutOfOrder] | None = None
    for start in range(len(chain)):
        order = list(range(start, len(chain))) + list(range(start))
        bad = [
            OutOfOrder(describe(chain[order[i]]), describe(chain[order[j]]))
            for i in range(len(order))
            for j in range(i + 1, len(order))
            if _before(rects[order[j]], rects[order[i]])
        ]
        if best is None or len(bad) < len(best):
            best = bad
    return best or []


def tab_traps(chain: list[QWidget]) -> list[str]:
    """Editable text boxes in the chain that would take Tab as a character (a keyboard user
    could not leave them with Tab)."""
    return [
        describe(w)
        for w in chain
        if isinstance(w, QTextEdit | QPlainTextEdit)
        and not w.isReadOnly()
        and not w.tabChangesFocus()
    ]


def _shown(window: QWidget, widget: QWidget) -> bool:
    return widget.isVisibleTo(window) and widget.isEnabled() and widget.window() is window


def escape_button(widget: QAbstractButton) -> bool:
    """A button Escape already presses (Cancel or Close of a dialog's button box)."""
    box = widget.parent()
    return isinstance(box, QDialogButtonBox) and box.buttonRole(widget) in (
        QDialogButtonBox.ButtonRole.RejectRole,
    )


def mnemonic_problems(window: QWidget, exempt: tuple[QWidget, ...] = ()) -> list[str]:
    """Buttons without a mnemonic (but the default button, which Enter presses, and those
    Escape presses), and mnemonics used twice in the window (Qt then only moves the focus
    between their owners)."""
    problems: list[str] = []
    keys: dict[str, list[str]] = {}
    for widget in window.findChildren(QWidget):
        if not _shown(window, widget):
            continue
        text = ""
        if isinstance(widget, QAbstractButton):
            text = widget.text()
            key = mnemonic(text)
            pressed_otherwise = (
                (isinstance(widget, QPushButton) and widget.isDefault())
                or escape_button(widget)
                or widget in exempt
            )
            if not key and text and not pressed_otherwise:
                problems.append(f"button {text!r} has no mnemonic")
        elif isinstance(widget, QLabel) and widget.buddy() is not None:
            text = widget.text()
        elif isinstance(widget, QGroupBox) and widget.isCheckable():
            text = widget.title()
        key = mnemonic(text)
        if key:
            keys.setdefault(key, []).append(text)
    for key, texts in sorted(keys.items()):
        if len(texts) > 1:
            problems.append(f"Alt+{key.upper()} is used by {texts}")
    return problems
