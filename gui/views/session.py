"""The session window: one run of a job, live. Per-VM rows with progress bars, processed / read /
transferred, duration, rate and bottleneck; the run's totals and bottleneck; the log; Cancel.

Fed by two sources, both through signals: the `StoreWatcher` (the session and its tasks as the
store has them, whoever runs the job) and, when this console runs the job, the `RunJobWorker`'s
live events (per-disk progress between the store's updates, and a store read soon after a VM
starts or ends, at once when the run ends). Cancel is offered only for runs this console owns
(it stops the console's child process, `gui.workers`): a run of the CLI or the service belongs
to that process, and ReplicaDesk has no way yet to ask another process to stop.

The bottleneck line gives each stage's busy share as the backup consoles show it ("Source 12% >
Proxy 80% > Network 35% > Target 20%"): the session's own once it ended, while it runs the
shares of its VMs so far (`combine`, weighted by time). The throughput chart
(`gui.views.throughput`) is sampled twice a second from the runner's progress events for a run
this console started, from the store's per-VM counts for others.
"""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from core.jobs.events import TaskProgress
from core.model.runs import RunStatus, TaskSession, TransferStats, combine
from gui import format as fmt
from gui.models.sessions import LogModel, TasksModel, log_lines, trigger_text
from gui.snapshot import SessionDetail
from gui.store_watcher import StoreWatcher
from gui.views.table import ProgressDelegate, RecordTable
from gui.views.throughput import ThroughputChart
from gui.workers import RunJobWorker

STAGES = "Source (reading disks) > Proxy (digests, compression) > Network > Target (writing)"
SAMPLE_MS = 500  # throughput samples while the run goes on
# A VM that starts or ends asks the store watcher for a read, at most once in this time: a read
# of a 50-VM session and the home views is 25 ms of Python on the watcher's thread (its median
# in console_bench), and with a VM event every 0.2 s such reads took the GIL from the GUI thread
# ~100 times in an 18 s run. The progress bars follow the run's own events meanwhile.
STORE_READ_MS = 300


class SessionWindow(QWidget):
    closed = Signal(int)  # session id
    updated = Signal(object)  # the SessionDetail just shown

    def __init__(
        self,
        session_id: int,
        watcher: StoreWatcher,
        worker: RunJobWorker | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.session_id = session_id
        self.watcher = watcher
        self.worker = worker
        self.detail: SessionDetail | None = None
        self.setWindowTitle(f"Session {session_id}")
        self.resize(1100, 700)

        self.tasks_model = TasksModel(self)
        self.tasks = RecordTable(
            self.tasks_model,
            filter_box=False,
            empty_text="No VM has started yet.",
            sort_column=TasksModel.VM,
        )
        self.tasks.view.setItemDelegateForColumn(TasksModel.PROGRESS, ProgressDelegate(self))
        self.log_model = LogModel(self)
        self.log = RecordTable(
            self.log_model,
            sort_column=LogModel.TIME,
            filter_hint="Filter the log",
            empty_text="Nothing logged yet.",
        )
        self.tasks.selectionChanged.connect(self._log_for_selection)

        self.fields: dict[str, QLabel] = {}
        summary = QGroupBox("Summary")
        grid = QGridLayout(summary)
        names = [
            ("Job", "Status", "Trigger"),
            ("Start time", "End time", "Duration"),
            ("Processed", "Read", "Transferred"),
            ("VMs", "Rate", ""),
        ]
        for col, group in enumerate(zip(*names, strict=True)):
            form = QFormLayout()
            for name in group:
                if not name:
                    continue
                label = QLabel("")
                label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
                self.fields[name] = label
                form.addRow(f"{name}:", label)
            grid.addLayout(form, 0, col)
        # The bottleneck line is long ("Source 12% > Proxy 80% > Network 35% > Target 20%"):
        # a row of its own, under the three columns.
        bottleneck = QLabel("")
        bottleneck.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.fields["Bottleneck"] = bottleneck
        last = QFormLayout()
        last.addRow("Bottleneck:", bottleneck)
        grid.addLayout(last, 1, 0, 1, 3)
        grid.setRowStretch(2, 1)
        self.fields["Bottleneck"].setToolTip(
            f"How busy each stage of the data path was: {STAGES}. The busiest one limits the rate."
        )
        self.chart = ThroughputChart()
        self.chart.setFixedHeight(210)
        self._started_at = dt.datetime.now(dt.UTC)
        self._live: dict[tuple[int, int, str], int] = {}  # (task, disk, phase) -> bytes done

        self.cancel_button = QPushButton("&Cancel run")
        self.cancel_button.setToolTip("Stop the run: VMs in progress keep their previous points")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setVisible(worker is not None)
        buttons = QDialogButtonBox()
        buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.ActionRole)
        close = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        close.clicked.connect(self.close)
        QShortcut(QKeySequence.StandardKey.Close, self, self.close)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.close)

        vms_label = QLabel("Virtual machines")
        vms_label.setStyleSheet("font-weight: bold")
        log_label = QLabel("Log (select a VM to see only its lines)")
        log_label.setStyleSheet("font-weight: bold")
        upper = QWidget()
        up = QVBoxLayout(upper)
        up.setContentsMargins(0, 0, 0, 0)
        up.addWidget(vms_label)
        up.addWidget(self.tasks)
        lower = QWidget()
        low = QVBoxLayout(lower)
        low.setContentsMargins(0, 0, 0, 0)
        low.addWidget(log_label)
        low.addWidget(self.log)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(upper)
        split.addWidget(lower)
        split.setChildrenCollapsible(False)
        top = QHBoxLayout()
        top.addWidget(summary, 3, Qt.AlignmentFlag.AlignTop)
        top.addWidget(self.chart, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        layout.addWidget(buttons)

        # Durations and rates of running VMs grow with the clock: repaint them once a second.
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._repaint_running)
        self._tick.start()
        self._sampler = QTimer(self)
        self._sampler.setInterval(SAMPLE_MS)
        self._sampler.timeout.connect(self._sample)
        self._sampler.start()
        self._store_read = QTimer(self)
        self._store_read.setSingleShot(True)
        self._store_read.setInterval(STORE_READ_MS)
        self._store_read.timeout.connect(self._refresh_store)

        watcher.sessionChanged.connect(self._on_detail)
        if worker is not None:
            worker.taskProgress.connect(self._on_progress)
            # Bound methods of this window, not lambdas: PySide queues a signal from the worker's
            # thread only to a QObject's method; a lambda would run on the worker thread.
            worker.taskStarted.connect(self._read_store_soon)
            worker.taskFinished.connect(self._read_store_soon)
            worker.sessionFinished.connect(self._read_store)
            worker.done.connect(self._worker_done)
        watcher.watch(session_id)

    # -- updates ----------------------------------------------------------------------------------

    def _on_detail(self, detail: SessionDetail) -> None:
        if detail.session.id != self.session_id:
            return
        first = self.detail is None
        self.detail = detail
        s = detail.session
        if first:
            self._started_at = s.started
            if s.ended is not None:
                self._sampler.stop()
                self.chart.show_history(s.started, detail.tasks)
        elif s.ended is not None and self._sampler.isActive():
            self._sample()
            self._sampler.stop()
            seconds = fmt.elapsed(s.started, s.ended)
            self.chart.finish(seconds, s.stats.processed_bytes / seconds if seconds > 0 else 0.0)
        self.tasks_model.set_rows(detail.tasks)
        self.log_model.set_rows(log_lines(detail.session, detail.tasks))
        self._show_summary()
        self.updated.emit(detail)

    def _read_store(self, _event: object) -> None:
        self._store_read.stop()
        self._refresh_store()

    def _read_store_soon(self, _event: object) -> None:
        if not self._store_read.isActive():
            self._store_read.start()

    def _refresh_store(self) -> None:
        self.watcher.refresh()

    def _on_progress(self, event: TaskProgress) -> None:
        if event.session_id == self.session_id:
            self.tasks_model.apply_progress(event)
            self._live[(event.task_id, event.disk_key, event.phase)] = event.done

    def processed_now(self) -> int:
        """Bytes processed so far: the progress events' count (runs of this console) or the
        store's, whichever is further (the store's grows as disks finish)."""
        live = sum(self._live.values())
        stored = 0
        if self.detail is not None:
            stored = max(
                self.detail.session.stats.processed_bytes,
                sum(t.stats.processed_bytes for t in self.detail.tasks),
            )
        return max(live, stored)

    def _sample(self) -> None:
        if self.detail is None:
            return  # the run's start time is not known yet
        now = dt.datetime.now(dt.UTC)
        ended = self.detail.session.ended if self.detail is not None else None
        at = ended if ended is not None and ended < now else now
        self.chart.add_sample((at - self._started_at).total_seconds(), self.processed_now())

    def _worker_done(self) -> None:
        self.cancel_button.hide()

    def _repaint_running(self) -> None:
        if self.detail is None or self.detail.session.ended is not None:
            return
        for row, task in enumerate(self.tasks_model.records()):
            if task.status == RunStatus.RUNNING:
                self.tasks_model.refresh_row(row)
        self._show_summary()

    def _show_summary(self) -> None:
        if self.detail is None:
            return
        s = self.detail.session
        tasks = self.detail.tasks
        f = self.fields
        self.setWindowTitle(f"{s.job}: session {s.id} ({fmt.status(s.status)})")
        f["Job"].setText(s.job)
        f["Status"].setText(fmt.status(s.status))
        f["Trigger"].setText(trigger_text(s))
        f["Start time"].setText(fmt.when(s.started))
        f["End time"].setText(fmt.when(s.ended, "running"))
        seconds = fmt.elapsed(s.started, s.ended, dt.datetime.now(dt.UTC))
        f["Duration"].setText(fmt.duration(seconds))
        done_bytes = sum(self.tasks_model.processed_bytes(t) for t in tasks)
        f["Processed"].setText(fmt.size(max(s.stats.processed_bytes, done_bytes)))
        f["Read"].setText(fmt.size(sum(t.stats.read_bytes for t in tasks)))
        f["Transferred"].setText(fmt.size(sum(t.stats.transferred_bytes for t in tasks)))
        ended = sum(1 for t in tasks if t.status != RunStatus.RUNNING)
        f["VMs"].setText(f"{ended} of {len(tasks)} done")
        processed = max(s.stats.processed_bytes, done_bytes)
        f["Rate"].setText(fmt.rate(processed / seconds) if seconds > 0 else "")
        f["Bottleneck"].setText(bottleneck_line(s.stats, tasks))
        if s.ended is not None:
            self.cancel_button.hide()

    def _log_for_selection(self) -> None:
        chosen = {t.vm_name for t in self.tasks.selected()}
        if not chosen:
            self.log.proxy.set_predicate(None)
        else:
            self.log.proxy.set_predicate(lambda line: line.vm in chosen)

    # -- actions ----------------------------------------------------------------------------------

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.cancel_button.setEnabled(False)
            self.cancel_button.setText("Cancelling...")

    def closeEvent(self, event: QCloseEvent) -> None:
        self._tick.stop()
        self._sampler.stop()
        self._store_read.stop()
        self.watcher.unwatch(self.session_id)
        self.closed.emit(self.session_id)
        super().closeEvent(event)


def bottleneck_line(session: TransferStats, tasks: tuple[TaskSession, ...]) -> str:
    """The session's stage shares once recorded; while it runs, those of its VMs so far (each
    VM's shares grow as its disks finish); the busiest stage's name when no share is known."""
    if session.busy:
        return session.bottleneck_line
    so_far = combine(t.stats for t in tasks if t.stats.busy)
    if so_far.busy:
        return so_far.bottleneck_line
    if session.bottleneck:
        return str(session.bottleneck)
    names = [str(t.stats.bottleneck) for t in tasks if t.stats.bottleneck]
    return max(set(names), key=names.count) if names else "not known yet"
