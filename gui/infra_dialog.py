"""What the Add Server, Add Proxy and Add Repository dialogs share (gui.server_dialog,
gui.proxy_dialog, gui.repository_dialog): the form's rows with their errors beside the field,
the line under the form with a Details button for the cause, the button row, and Cancel that
tells a worker still running to stop and ignores its answer (nothing is stored then)."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QWidget,
)

from core.errors import InvalidSettingError
from gui.wizard.fields import ERROR_STYLE, FieldErrors, with_error
from gui.workers import Worker

# (error path, label text with its mnemonic, the widget in the row, the widget the label focuses)
FormRow = tuple[str, str, QWidget, QWidget]


def add_rows(
    form: QFormLayout, errors: FieldErrors, rows: Iterable[FormRow], page: QWidget
) -> None:
    """Each row with its error label beside the field, registered under its error path."""
    for key, text, widget, buddy in rows:
        box, label = with_error(widget, page)
        errors.add(key, widget, label)
        title = QLabel(text, page)
        title.setBuddy(buddy)
        form.addRow(title, box)


def error_detail(error: BaseException) -> str:
    """The chain of causes behind `error`, one per line: what Details shows."""
    lines = []
    current: BaseException | None = error
    while current is not None:
        lines.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return "\n".join(lines)


class InfraDialog(QDialog):
    """A dialog adding one piece of the backup infrastructure."""

    errorShown = Signal(str)  # the message shown under the form

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.worker: Worker | None = None  # the one running for this dialog, if any
        self.detail = ""
        self.errors = FieldErrors()
        self.setWindowTitle(title)
        self.setMinimumWidth(720)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details_button = QPushButton("&Details...", self)
        self.details_button.hide()
        self.details_button.clicked.connect(self.show_details)

    def status_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(self.status, 1)
        row.addWidget(self.details_button)
        return row

    @staticmethod
    def button_row(*buttons: QPushButton) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addStretch(1)
        for button in buttons:
            row.addWidget(button)
        return row

    def _field_error(self, error: InvalidSettingError) -> None:
        """Beside its field; under the form when no field owns it."""
        if self.errors.show(error) is None:
            self._error(str(error))

    def _say(self, text: str) -> None:
        self.status.setStyleSheet("")
        self.status.setText(text)
        self.detail = ""
        self.details_button.hide()

    def _error(self, message: str, detail: str = "") -> None:
        self.status.setStyleSheet(ERROR_STYLE)
        self.status.setText(message)
        self.detail = detail
        self.details_button.setVisible(bool(detail))
        self.errorShown.emit(message)

    @Slot()
    def show_details(self) -> QMessageBox:
        box = QMessageBox(
            QMessageBox.Icon.Warning, self.windowTitle(), self.status.text(), parent=self
        )
        box.setDetailedText(self.detail)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        return box

    def reject(self) -> None:
        """Cancel: a worker still running is told to stop and its answer ignored."""
        if self.worker is not None:
            self.worker.cancel()
            self.worker = None
        super().reject()
