"""The wizard's Seeding and Guest processing steps.

Seeding (shown when "Replica seeding" is ticked on the Name step): a table source VM -> an
existing VM at the DR site, pickers filled from the job's VMs and the target inventory the
Destination step reads (core.model.seeding; the run checks the mapped VM again, core.jobs.seed).
Seeding from backup files does not exist here: ReplicaDesk keeps no backups.

Guest processing (always shown): application-aware processing, a snapshot quiesced through VMware
Tools (JobSettings.quiesce), and what a run does when the guest cannot be quiesced
(JobSettings.quiesce_failure).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QVBoxLayout,
)

from core.errors import InvalidSettingError
from core.model.job import QuiesceFailure, ReplicationJob
from core.model.objects import ObjectKind, ObjectRef
from core.model.seeding import ReplicaMapping, Seeding
from core.vsphere.models import Vm
from gui.wizard.base import WizardPage
from gui.wizard.fields import ERROR_STYLE, after_cell, built, mark_invalid, with_error

if TYPE_CHECKING:
    from gui.wizard.wizard import JobWizard

SOURCE, TARGET = 0, 1


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


class SeedingPage(WizardPage):
    step = "Seeding"

    def __init__(self, wizard: JobWizard) -> None:
        super().__init__(wizard)
        self.setTitle("Seeding")
        self.setSubTitle(
            "Map VMs to existing VMs at the DR site (a copy restored there, or an earlier "
            "replica): the first run takes the mapped VM as the replica and sends only the "
            "blocks that differ. The mapped VM must be powered off, with the same disks."
        )
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Source VM", "Existing VM at the DR site"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table_box, table_error = with_error(self.table)
        self.errors.add("seeding", self.table, table_error, describe=self._describe)
        add = QPushButton("&Add")
        add.clicked.connect(lambda: self.add_row())
        remove = QPushButton("&Remove")
        remove.clicked.connect(self._remove)
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        buttons = QHBoxLayout()
        for b in (add, remove):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(table_box, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.notes)
        wizard.inventoryArrived.connect(lambda _a: self._refresh_pickers())

    # -- cells ------------------------------------------------------------------------------------

    def _cell_of(self, path: str) -> tuple[int, int] | None:
        """`seeding.mappings[1].replica` -> (row 1, the existing VM column)."""
        head = "seeding.mappings["
        if not path.startswith(head):
            return None
        index, _, rest = path[len(head) :].partition("]")
        if not index.isdigit():
            return None
        return int(index), TARGET if rest.lstrip(".").startswith("replica") else SOURCE

    def _describe(self, error: InvalidSettingError) -> str:
        cell = self._cell_of(error.field)
        if cell is None:
            return error.problem
        column = "existing VM" if cell[1] == TARGET else "source VM"
        return f"Row {cell[0] + 1}, {column}: {error.problem}"

    def show_error(self, error: InvalidSettingError) -> QLabel | None:
        for r in range(self.table.rowCount()):
            for c in (SOURCE, TARGET):
                mark_invalid(self.combo(r, c), False)
        label = super().show_error(error)
        cell = self._cell_of(error.field)
        if cell is not None and cell[0] < self.table.rowCount():
            combo = self.combo(*cell)
            mark_invalid(combo, True)
            combo.setFocus()
        return label

    def combo(self, row: int, column: int) -> QComboBox:
        widget = self.table.cellWidget(row, column)
        assert isinstance(widget, QComboBox)
        return widget

    # -- pickers ----------------------------------------------------------------------------------

    def _source_vms(self) -> list[Vm]:
        return [v.vm for v in self.job_wizard.vms_page.covered_vms()]

    def _target_vms(self) -> list[Vm]:
        inv = self.job_wizard.destination_page.inventory
        if inv is None:
            return []
        return sorted((v for v in inv.vms if not v.template), key=lambda v: v.name.lower())

    def add_row(self, source: ObjectRef | None = None, target: ObjectRef | None = None) -> int:
        row = self.table.rowCount()
        self.table.insertRow(row)
        for column in (SOURCE, TARGET):
            combo = QComboBox()
            combo.currentIndexChanged.connect(lambda _i: self.update_notes())
            self.table.setCellWidget(row, column, combo)
            after_cell(self.table, row, column)
        self._fill_row(row, source, target)
        return row

    def _fill_row(self, row: int, source: ObjectRef | None, target: ObjectRef | None) -> None:
        for column, vms, chosen in (
            (SOURCE, self._source_vms(), source),
            (TARGET, self._target_vms(), target),
        ):
            combo = self.combo(row, column)
            combo.blockSignals(True)
            combo.clear()
            combo.addItem("(choose a VM)", None)
            for v in vms:
                combo.addItem(v.name, ObjectRef(ObjectKind.VM, v.moref, v.name))
            if chosen is not None:
                index = next(
                    (i for i in range(combo.count()) if _moref(combo.itemData(i)) == chosen.moref),
                    -1,
                )
                if index < 0:  # not (yet) in the inventory: kept as the job names it
                    combo.addItem(chosen.name, chosen)
                    index = combo.count() - 1
                combo.setCurrentIndex(index)
            combo.blockSignals(False)
        self.update_notes()

    def _refresh_pickers(self) -> None:
        for row in range(self.table.rowCount()):
            chosen = [self.combo(row, c).currentData() for c in (SOURCE, TARGET)]
            self._fill_row(row, *(c if isinstance(c, ObjectRef) else None for c in chosen))

    def _remove(self) -> None:
        for row in sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True):
            self.table.removeRow(row)
        self.update_notes()

    # -- the mapping ------------------------------------------------------------------------------

    def _rows(self) -> list[ReplicaMapping]:
        rows = []
        for r in range(self.table.rowCount()):
            source, target = (self.combo(r, c).currentData() for c in (SOURCE, TARGET))
            if not isinstance(source, ObjectRef):
                raise InvalidSettingError(f"seeding.mappings[{r}].vm", "choose a source VM")
            if not isinstance(target, ObjectRef):
                raise InvalidSettingError(
                    f"seeding.mappings[{r}].replica", "choose an existing VM at the DR site"
                )
            rows.append(ReplicaMapping(source, target))
        return rows

    def mappings(self) -> Seeding:
        rows = self._rows()
        seeding = built("seeding", lambda: Seeding(tuple(rows)))
        covered = {v.moref: v for v in self._source_vms()}
        targets = {v.moref: v for v in self._target_vms()}
        for i, m in enumerate(rows):
            vm = covered.get(m.vm.moref)
            if covered and vm is None:
                raise InvalidSettingError(
                    f"seeding.mappings[{i}].vm", f"{m.vm.name} is not one of the job's VMs"
                )
            existing = targets.get(m.replica.moref)
            if vm is None or existing is None:
                continue  # inventories not read: the run checks it
            problem = _layout_problem(vm, existing, self._excluded(vm.moref))
            if problem:
                raise InvalidSettingError(f"seeding.mappings[{i}].replica", problem)
        return seeding

    def _excluded(self, moref: str) -> frozenset[int]:
        for v in self.job_wizard.vms_page.covered_vms():
            if v.vm.moref == moref:
                return frozenset(v.excluded_disks)
        return frozenset()

    def seeding(self) -> Seeding:
        """The job's mappings: this page's when its step is on, else none."""
        return self.mappings() if self.job_wizard.name_page.seeding.isChecked() else Seeding()

    def update_notes(self) -> None:
        targets = {v.moref: v for v in self._target_vms()}
        notes = []
        for r in range(self.table.rowCount()):
            target = self.combo(r, TARGET).currentData()
            if isinstance(target, ObjectRef):
                existing = targets.get(target.moref)
                if existing is not None and existing.power_state != "poweredOff":
                    notes.append(
                        f"{existing.name} is {existing.power_state}: power it off before the "
                        "job's first run (the run refuses a running VM)"
                    )
        self.notes.setText("\n".join(notes))
        self.notes.setStyleSheet(ERROR_STYLE if notes else "")

    def initializePage(self) -> None:
        self._refresh_pickers()
        if self.table.rowCount() == 0:
            self.add_row()

    def check(self) -> None:
        self.mappings()

    def fill(self, job: ReplicationJob) -> None:
        self.table.setRowCount(0)
        for m in job.seeding.mappings:
            self.add_row(m.vm, m.replica)


def _moref(data: object) -> str | None:
    return data.moref if isinstance(data, ObjectRef) else None


def _layout_problem(source: Vm, existing: Vm, excluded: frozenset[int]) -> str:
    """Why `existing` cannot be `source`'s replica ("" when its disks match), as the run says."""
    disks = [d for d in source.disks if d.key not in excluded]
    if len(existing.disks) != len(disks):
        return (
            f"{existing.name} has {len(existing.disks)} disk(s), {source.name} replicates "
            f"{len(disks)}: the disk layouts must be the same"
        )
    for i, (theirs, ours) in enumerate(zip(existing.disks, disks, strict=True), 1):
        if theirs.capacity != ours.capacity:
            return (
                f"disk {i} of {existing.name} has {_size(theirs.capacity)}, of {source.name} "
                f"{_size(ours.capacity)}: the capacities must be the same"
            )
    return ""


class GuestPage(WizardPage):
    step = "Guest Processing"

    def __init__(self, wizard: JobWizard) -> None:
        super().__init__(wizard)
        self.setTitle("Guest Processing")
        self.setSubTitle(
            "Application-aware processing quiesces the guest's file systems and applications "
            "through VMware Tools before the snapshot, so each restore point is consistent for "
            "them. A powered-off VM needs none."
        )
        self.enabled = QCheckBox("Enable &application-aware processing")
        self.on_failure = QGroupBox(
            "If quiescing is not possible (VMware Tools not running, or the quiesced snapshot "
            "fails):"
        )
        self.fail = QRadioButton("&Fail the VM: no restore point without quiescing")
        self.go_on = QRadioButton(
            "&Continue with a crash-consistent snapshot and a warning in the session log"
        )
        self.fail.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.fail)
        group.addButton(self.go_on)
        box_layout = QVBoxLayout(self.on_failure)
        box_layout.addWidget(self.fail)
        box_layout.addWidget(self.go_on)
        self.on_failure.setEnabled(False)
        self.enabled.toggled.connect(self.on_failure.setEnabled)
        self.enabled.toggled.connect(lambda _on: self.update_notes())
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        enabled_box, enabled_error = with_error(self.enabled)
        failure_box, failure_error = with_error(self.on_failure)
        self.errors.add("settings.quiesce", self.enabled, enabled_error)
        self.errors.add("settings.quiesce_failure", self.on_failure, failure_error)
        layout = QVBoxLayout(self)
        layout.addWidget(enabled_box)
        layout.addWidget(failure_box)
        layout.addWidget(self.notes)
        layout.addStretch(1)

    def policy(self) -> QuiesceFailure:
        return QuiesceFailure.CONTINUE if self.go_on.isChecked() else QuiesceFailure.FAIL

    def update_notes(self) -> None:
        if not self.enabled.isChecked():
            self.notes.setText("")
            return
        without = [
            v.vm.name
            for v in self.job_wizard.vms_page.covered_vms(with_disks=False)
            if v.vm.power_state == "poweredOn" and not v.vm.tools_running
        ]
        self.notes.setText(
            "VMware Tools are not running now in: " + ", ".join(without) if without else ""
        )

    def initializePage(self) -> None:
        self.update_notes()

    def check(self) -> None:
        self.job_wizard.settings_page.settings()

    def fill(self, job: ReplicationJob) -> None:
        self.enabled.setChecked(job.settings.quiesce)
        continues = job.settings.quiesce_failure == QuiesceFailure.CONTINUE
        (self.go_on if continues else self.fail).setChecked(True)
