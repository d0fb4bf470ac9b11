"""Backup infrastructure pages: a titled table each for servers, proxies and repositories."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from gui.models.base import RecordTableModel
from gui.views.table import RecordTable


class InfrastructureView(QWidget):
    def __init__(
        self,
        title: str,
        explanation: str,
        model: RecordTableModel,
        empty_text: str,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        heading = QLabel(title)
        heading.setStyleSheet("font-size: 14pt; font-weight: bold")
        note = QLabel(explanation)
        note.setWordWrap(True)
        self.table = RecordTable(model, empty_text=empty_text)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(heading)
        layout.addWidget(note)
        layout.addWidget(self.table)
