"""Replicas view: the replicas (Ready or Active), and the restore points of the selected one."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget

from gui.models.filters import Predicate
from gui.models.replicas import ReplicasModel, RestorePointsModel
from gui.snapshot import ReplicaRow
from gui.views.table import RecordTable


class ReplicasView(QWidget):
    def __init__(
        self,
        model: ReplicasModel,
        predicate: Predicate,
        empty_text: str,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.table = RecordTable(
            model, predicate=predicate, empty_text=empty_text, filter_hint="Filter replicas"
        )
        self.points_model = RestorePointsModel(self)
        self.points = RecordTable(
            self.points_model,
            sort_column=RestorePointsModel.NUMBER,
            descending=True,
            filter_box=False,
            empty_text="Select a replica to see its restore points.",
        )
        self.points_title = QLabel("Restore points")
        self.points_title.setStyleSheet("font-weight: bold")
        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(self.points_title)
        lower_layout.addWidget(self.points)
        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(self.table)
        split.addWidget(lower)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)
        self.table.selectionChanged.connect(self._show_points)
        model.dataChanged.connect(self._show_points)
        model.rowsRemoved.connect(self._show_points)

    def _show_points(self) -> None:
        row = self.table.current()
        if not isinstance(row, ReplicaRow) or not self.table.selected():
            self.points_model.set_replica(None)
            self.points_title.setText("Restore points")
            return
        self.points_model.set_replica(row)
        r = row.replica
        self.points_title.setText(
            f"Restore points of {r.replica_name} ({len(row.points)}), "
            f"on {r.target_host_name or r.target_server}"
        )
