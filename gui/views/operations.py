"""Replica operation dialogs: the confirmation (what will happen, a restore-point picker, the
failback target with its pickers) and the small operation window that follows one operation.

The confirmation only builds an `OpRequest`: nothing is asked of core until it is accepted, so
Cancel (or Escape, or closing it) changes nothing. The operation window follows the session
core announces (`started`) and shows its log as the store watcher reads it, a progress bar
(bytes compared during a failback), how it ended, and an error in words with the detail one
click away. Its Cancel Operation button, for the operations core can stop (`OpSpec.cancel`,
said under the log), asks the worker to cancel; core stops at its next safe point and the
window says what that left. Closing the window does not cancel: the status bar reports the end.
"""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QStyle,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.failover.failback import NewLocation, Restored
from core.failover.session import OperationResult
from core.model.job import ReplicationJob
from core.vsphere.models import Inventory
from gui import format as fmt
from gui.dr_workers import ReplicaOperationWorker
from gui.replica_ops import SPECS, Op, OpRequest, describe, outcome, size_words, when
from gui.snapshot import ReplicaRow, SessionDetail
from gui.store_watcher import StoreWatcher

ERROR_STYLE = "color: #c62828"
WARNING_STYLE = "color: #b26a00; font-weight: bold"  # warnings, and an operation cancelled


def error_label() -> QLabel:
    label = QLabel("")
    label.setStyleSheet(ERROR_STYLE)
    label.setWordWrap(True)
    label.hide()
    return label


def show_field_error(label: QLabel, text: str) -> None:
    label.setText(text)
    label.setVisible(bool(text))


class PointPicker(QTreeWidget):
    """The replica's restore points, newest first: number, date, size; the latest chosen."""

    def __init__(self, row: ReplicaRow, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setColumnCount(3)
        self.setHeaderLabels(["Restore point", "Created", "Size"])
        self.setRootIsDecorated(False)
        self.setAlternatingRowColors(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAccessibleName("Restore points")
        self.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.header().setStretchLastSection(True)
        self.headerItem().setTextAlignment(2, Qt.AlignmentFlag.AlignRight)
        for n, p in enumerate(reversed(row.points)):
            label = f"{p.number}" + (" (latest)" if n == 0 else "")
            item = QTreeWidgetItem([label, when(p), size_words(row.point_size(p.number))])
            item.setData(0, Qt.ItemDataRole.UserRole, p.number)
            item.setTextAlignment(2, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.addTopLevelItem(item)
        newest = self.topLevelItem(0)
        if newest is not None:
            self.setCurrentItem(newest)
        rows = min(max(self.topLevelItemCount(), 3), 8)
        self.setFixedHeight(
            self.header().sizeHint().height() + rows * (self.fontMetrics().height() + 8)
        )

    def number(self) -> int | None:
        item = self.currentItem()
        return None if item is None else int(item.data(0, Qt.ItemDataRole.UserRole))

    def choose(self, number: int) -> bool:
        for i in range(self.topLevelItemCount()):
            item = self.topLevelItem(i)
            if item is not None and item.data(0, Qt.ItemDataRole.UserRole) == number:
                self.setCurrentItem(item)
                return True
        return False


class FailbackTarget(QGroupBox):
    """Where a failback goes: the original VM, the original VM restored in another place, or a
    new VM at production (name, host, datastore, folder, resource pool from its inventory)."""

    changed = Signal()

    ORIGINAL, RESTORED, NEW = range(3)

    def __init__(
        self, row: ReplicaRow, inventory: Inventory | None, parent: QWidget | None = None
    ) -> None:
        super().__init__("Fail back to", parent)
        self.row = row
        self.inventory = inventory
        r = row.replica
        self.kind = QButtonGroup(self)
        self.original = QRadioButton(f"The &original VM {r.vm_name} at production")
        self.restored = QRadioButton("The original VM &restored in another place")
        self.new = QRadioButton("A &new VM at production")
        for n, b in enumerate((self.original, self.restored, self.new)):
            self.kind.addButton(b, n)
        self.original.setChecked(True)

        self.restored_vm = QComboBox()
        self.restored_vm.setAccessibleName("Restored VM")
        self.restored_vm.addItem("Found by the original VM's instance UUID", "")
        self.name = QLineEdit(f"{r.vm_name}_failback")
        self.name.setAccessibleName("New VM name")
        self.host = QComboBox()
        self.host.setAccessibleName("Host")
        self.datastore = QComboBox()
        self.datastore.setAccessibleName("Datastore")
        self.folder = QComboBox()
        self.folder.setAccessibleName("VM folder")
        self.pool = QComboBox()
        self.pool.setAccessibleName("Resource pool")
        self.name_error = error_label()
        self.host_error = error_label()
        self.datastore_error = error_label()
        self.inventory_note = QLabel("")
        self.inventory_note.setWordWrap(True)
        self._fill()

        self.restored_box = QWidget()
        rf = QFormLayout(self.restored_box)
        rf.setContentsMargins(24, 0, 0, 0)
        rf.addRow("&VM:", self.restored_vm)
        self.new_box = QWidget()
        nf = QFormLayout(self.new_box)
        nf.setContentsMargins(24, 0, 0, 0)
        nf.addRow("N&ame:", self.name)
        nf.addRow("", self.name_error)
        nf.addRow("&Host:", self.host)
        nf.addRow("", self.host_error)
        nf.addRow("&Datastore:", self.datastore)
        nf.addRow("", self.datastore_error)
        nf.addRow("VM &folder:", self.folder)
        nf.addRow("Resource &pool:", self.pool)
        layout = QVBoxLayout(self)
        layout.addWidget(self.original)
        layout.addWidget(self.restored)
        layout.addWidget(self.restored_box)
        layout.addWidget(self.new)
        layout.addWidget(self.new_box)
        layout.addWidget(self.inventory_note)
        self.kind.idToggled.connect(self._toggled)
        self.host.currentIndexChanged.connect(self._host_changed)
        for combo in (self.restored_vm, self.datastore, self.folder, self.pool):
            combo.currentIndexChanged.connect(lambda _i: self.changed.emit())
        self.name.textChanged.connect(lambda _t: self.changed.emit())
        self._toggled()

    def _fill(self) -> None:
        inv = self.inventory
        if inv is None:
            self.inventory_note.setText(
                f"The inventory of {self.row.replica.source_server} is not loaded (Reload "
                "Inventory reads it): a restored VM is then found by its instance UUID, and a "
                "new location cannot be picked."
            )
            self.new.setEnabled(False)
            return
        for vm in sorted(inv.vms, key=lambda v: v.name.lower()):
            if not vm.template and vm.moref != self.row.replica.vm_moref:
                self.restored_vm.addItem(f"{vm.name} ({vm.moref})", vm.moref)
        for host in sorted(inv.hosts, key=lambda h: h.name):
            if host.connected:
                self.host.addItem(host.name, host.moref)
        self.folder.addItem("The datacenter's VM folder", "")
        for f in sorted(inv.folders, key=lambda f: f.path):
            if f.path:
                self.folder.addItem("/".join(f.path), f.moref)
        self._host_changed()

    def _host_changed(self) -> None:
        inv = self.inventory
        self.datastore.clear()
        self.pool.clear()
        if inv is None or self.host.currentData() is None:
            self.changed.emit()
            return
        host = inv.host(self.host.currentData())
        for moref in host.datastores:
            ds = inv.datastore(moref)
            self.datastore.addItem(f"{ds.name} ({fmt.size(ds.free)} free)", ds.moref)
        self.pool.addItem("The host's root resource pool", "")
        owner = host.cluster or ""
        for p in inv.resource_pools:
            if p.path and (p.owner == owner or p.owner == host.moref):
                self.pool.addItem("/".join(p.path), p.moref)
        self.changed.emit()

    def _toggled(self, *_args: object) -> None:
        self.restored_box.setEnabled(self.restored.isChecked())
        self.new_box.setEnabled(self.new.isChecked())
        self.changed.emit()

    def target(self) -> NewLocation | Restored | None:
        if self.restored.isChecked():
            return Restored(self.restored_vm.currentData() or "")
        if self.new.isChecked():
            return NewLocation(
                self.name.text().strip(),
                self.host.currentData() or "",
                self.datastore.currentData() or "",
                self.folder.currentData() or "",
                self.pool.currentData() or "",
            )
        return None

    def validate(self) -> bool:
        for label in (self.name_error, self.host_error, self.datastore_error):
            show_field_error(label, "")
        target = self.target()
        if not isinstance(target, NewLocation):
            return True
        ok = True
        if not target.name:
            show_field_error(self.name_error, "Give the new VM a name")
            ok = False
        elif self.inventory is not None and self.inventory.vms_named(target.name):
            show_field_error(self.name_error, f"A VM named {target.name} exists at production")
            ok = False
        if not target.host:
            show_field_error(self.host_error, "Choose a connected production host")
            ok = False
        if not target.datastore:
            show_field_error(self.datastore_error, "Choose a datastore the host mounts")
            ok = False
        return ok

    def name_of(self, moref: str) -> str:
        inv = self.inventory
        if inv is None or not inv.has(moref):
            return moref
        for get in (inv.vm, inv.host, inv.datastore):
            try:
                return get(moref).name
            except KeyError:
                continue
        return moref


# The confirmation button of each operation, with its mnemonic: a destructive operation's is
# not the default button, so Alt+letter is its key (Fail &Back: VM &folder is on that dialog).
VERB_LABELS = {
    Op.FAILOVER: "&Fail Over",
    Op.PLANNED_FAILOVER: "&Start Planned Failover",
    Op.UNDO_FAILOVER: "&Undo Failover",
    Op.PERMANENT_FAILOVER: "&Make Permanent",
    Op.FAILBACK: "Fail &Back",
    Op.COMMIT_FAILBACK: "&Commit Failback",
    Op.UNDO_FAILBACK: "&Undo Failback",
    Op.TEST_FAILOVER: "&Start Test",
    Op.TEST_CLEANUP: "&Clean Up",
}


class ConfirmOperationDialog(QDialog):
    """Says what the operation will do and builds its request; nothing runs until accepted."""

    def __init__(
        self,
        op: Op,
        row: ReplicaRow,
        job: ReplicationJob | None,
        inventory: Inventory | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.op = op
        self.row = row
        self.job = job
        spec = SPECS[op]
        r = row.replica
        self.setWindowTitle(f"{op}: {r.replica_name}")
        self.setMinimumWidth(620)
        icon = QLabel()
        pixmap = (
            QStyle.StandardPixmap.SP_MessageBoxWarning
            if spec.destructive
            else QStyle.StandardPixmap.SP_MessageBoxQuestion
        )
        icon.setPixmap(self.style().standardIcon(pixmap).pixmap(40, 40))
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.heading = QLabel(f"<b>{op} of {r.replica_name}</b>")
        facts = (
            f"VM {r.vm_name} · job {r.job} · {r.state} · on {r.target_host_name or r.target_server}"
        )
        self.facts = QLabel(facts)
        self.facts.setStyleSheet("color: palette(placeholder-text)")
        self.text = QLabel("")
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setAccessibleName("What will happen")
        self.text.setMinimumHeight(self.fontMetrics().height() * 4)
        head = QVBoxLayout()
        head.addWidget(self.heading)
        head.addWidget(self.facts)
        head.addSpacing(6)
        head.addWidget(self.text)
        top = QHBoxLayout()
        top.addWidget(icon)
        top.addLayout(head, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)

        self.points: PointPicker | None = None
        if spec.needs_point:
            label = QLabel("&Restore point:")
            self.points = PointPicker(row)
            label.setBuddy(self.points)
            layout.addWidget(label)
            layout.addWidget(self.points)
            self.points.currentItemChanged.connect(lambda *_: self._update())
        self.target: FailbackTarget | None = None
        if op == Op.FAILBACK:
            self.target = FailbackTarget(row, inventory)
            layout.addWidget(self.target)
            self.target.changed.connect(self._update)
        self.warning = QLabel("This cannot be undone." if spec.destructive else "")
        self.warning.setStyleSheet(f"{ERROR_STYLE}; font-weight: bold")
        self.warning.setVisible(spec.destructive)
        layout.addWidget(self.warning)

        self.buttons = QDialogButtonBox()
        self.ok = self.buttons.addButton(VERB_LABELS[op], QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.ok.clicked.connect(self._accept)
        self.cancel.clicked.connect(self.reject)
        # A destructive operation is never one Enter away: Cancel has the focus and the default.
        self.destructive = spec.destructive
        if spec.destructive:
            self.ok.setAutoDefault(False)
        (self.cancel if spec.destructive else self.ok).setDefault(True)
        layout.addStretch(1)
        layout.addWidget(self.buttons)
        self._update()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self.destructive:
            self.cancel.setDefault(True)
            self.cancel.setFocus(Qt.FocusReason.OtherFocusReason)

    def _update(self) -> None:
        point = self.points.number() if self.points is not None else None
        target = self.target.target() if self.target is not None else None
        names = self.target.name_of if self.target is not None else (lambda m: m)
        self.text.setText(describe(self.op, self.row, self.job, point, target, names))

    def _accept(self) -> None:
        if self.target is not None and not self.target.validate():
            return
        self.accept()

    def request(self) -> OpRequest:
        return OpRequest(
            self.op,
            self.row.replica,
            self.points.number() if self.points is not None else None,
            self.target.target() if self.target is not None else None,
        )


class OperationWindow(QWidget):
    """One replica operation while it runs and after: its session log, progress, the end."""

    sessionStarted = Signal(int)  # core made the operation's session (before `ended`)
    ended = Signal(bool)  # True when it succeeded
    closed = Signal(object)  # this window
    cancelRequested = Signal()  # Cancel was pressed (the worker was asked to stop)

    def __init__(
        self,
        request: OpRequest,
        description: str,
        worker: ReplicaOperationWorker,
        watcher: StoreWatcher,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.request = request
        self.worker = worker
        self.watcher = watcher
        self.session_id: int | None = None
        self.result: OperationResult | None = None
        self.error = ""
        self.stopped = ""  # core's words when the operation was cancelled
        self.started = dt.datetime.now(dt.UTC)
        self.setWindowTitle(request.title)
        self.resize(680, 440)
        self.heading = QLabel(f"<b>{request.title}</b>")
        self.what = QLabel(description)
        self.what.setWordWrap(True)
        self.what.setStyleSheet("color: palette(placeholder-text)")
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)
        self.bar.setTextVisible(False)
        self.state = QLabel("Starting...")
        self.state.setWordWrap(True)
        self.state.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        spec = SPECS[request.op]
        self.note = QLabel(
            spec.cancel
            or "This operation cannot be stopped half way: it completes, or puts back what it "
            "changed."
        )
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: palette(placeholder-text)")
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setAccessibleName("Operation log")
        self.log.setPlaceholderText("The operation's log appears here as it is written.")
        self.details_button = QPushButton("Show &details")
        self.details_button.setCheckable(True)
        self.details_button.hide()
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setAccessibleName("Error details")
        self.details.hide()
        self.details_button.toggled.connect(self._toggle_details)
        self.cancel_button = QPushButton("Cancel &Operation")
        self.cancel_button.setToolTip(spec.cancel)
        self.cancel_button.setVisible(bool(spec.cancel))
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button = QPushButton("&Close")
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.details_button)
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.what)
        layout.addWidget(self.bar)
        layout.addWidget(self.state)
        layout.addWidget(self.log, 1)
        layout.addWidget(self.details, 1)
        layout.addWidget(self.note)
        layout.addLayout(buttons)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.close)

        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._show_elapsed)
        self._tick.start()
        # Bound methods of this window: queued from the worker's thread to this one.
        worker.started.connect(self._on_started)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.stopped.connect(self._on_stopped)
        watcher.sessionChanged.connect(self._on_detail)

    # -- updates ----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.result is None and not self.error and not self.stopped

    @property
    def cancelling(self) -> bool:
        return self.worker.cancelled and self.running

    def cancel(self) -> None:
        """Ask core to stop the operation at its next safe point (once)."""
        if not self.running or self.worker.cancelled or not SPECS[self.request.op].cancel:
            return
        self.worker.cancel()
        self.cancel_button.setEnabled(False)
        self._show_elapsed()
        self.cancelRequested.emit()

    def _show_elapsed(self) -> None:
        if not self.running:
            return
        took = fmt.duration(fmt.elapsed(self.started, None))
        if self.session_id is None:
            self.state.setText(f"Starting ({took})...")
        elif self.cancelling:
            self.state.setText(
                f"Cancelling (session {self.session_id}, {took}): core stops at its next safe "
                "point..."
            )
        else:
            self.state.setText(f"Running for {took} (session {self.session_id})...")

    def _on_started(self, session_id: int) -> None:
        self.session_id = session_id
        self.watcher.watch(session_id)
        self._show_elapsed()
        self.sessionStarted.emit(session_id)

    def _on_detail(self, detail: SessionDetail) -> None:
        if detail.session.id != self.session_id:
            return
        entries = list(detail.session.log)
        for t in detail.tasks:
            entries += list(t.log)
        entries.sort(key=lambda e: e.time)
        lines = [
            f"{e.time.astimezone():%H:%M:%S}  "
            + ("" if e.severity == "info" else f"{e.severity.upper()}: ")
            + e.message
            for e in entries
        ]
        text = "\n".join(lines)
        if text != self.log.toPlainText():
            self.log.setPlainText(text)
            self.log.verticalScrollBar().setValue(self.log.verticalScrollBar().maximum())

    def _on_progress(self, done: int, total: int) -> None:
        if total <= 0:
            return
        self.bar.setRange(0, 1000)
        self.bar.setValue(int(1000 * done / total))
        self.bar.setTextVisible(True)
        self.bar.setFormat(f"{fmt.size(done)} of {fmt.size(total)} compared")

    def _on_finished(self, result: OperationResult) -> None:
        self.result = result
        self._end()
        self.state.setText(outcome(self.request, result))
        if result.warnings:
            self.state.setStyleSheet("color: #b26a00")
        self.ended.emit(True)

    def _on_failed(self, message: str, detail: str) -> None:
        self.error = message
        self._end()
        self.state.setText(message)
        self.state.setStyleSheet(f"{ERROR_STYLE}; font-weight: bold")
        if detail:
            self.details.setPlainText(detail)
            self.details_button.show()
        self.ended.emit(False)

    def _on_stopped(self, message: str, detail: str) -> None:
        self.stopped = message
        self._end()
        self.bar.setValue(0)  # not carried through
        self.state.setText(f"Cancelled {message}")
        self.state.setStyleSheet(WARNING_STYLE)
        if detail:
            self.details.setPlainText(detail)
            self.details_button.show()
        self.ended.emit(False)

    def _end(self) -> None:
        self._tick.stop()
        self.cancel_button.hide()
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        self.bar.setTextVisible(False)
        self.note.hide()
        self.watcher.refresh()

    def _toggle_details(self, shown: bool) -> None:
        self.details.setVisible(shown)
        self.details_button.setText("Hide &details" if shown else "Show &details")

    def closeEvent(self, event: QCloseEvent) -> None:
        self._tick.stop()
        if self.session_id is not None:
            self.watcher.unwatch(self.session_id)
        self.closed.emit(self)
        super().closeEvent(event)
