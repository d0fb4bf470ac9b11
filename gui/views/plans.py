"""Failover plans: the list (with the selected plan's VMs in run order and its sessions), the
readiness report, and the plan run window that shows each VM's step live.

The views only show: the plans and sessions come from the `PlanWatcher`, the readiness report
and the runs from workers the DR controller (gui.disaster_recovery) starts. The plan run window
follows the plan session core announces (`started`); its Cancel (a run or a test) is handed to
the worker through `cancelRequested`, and the window says what core's cancel leaves
(core.plans.run: no further VM starts, those up stay up, or are cleaned up in a test).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QResizeEvent, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from core.model.plans import FailoverPlan, PlanAction, PlanSession
from core.model.runs import RunStatus
from core.plans.readiness import Readiness
from core.plans.run import PlanResult
from core.plans.schedule import CANCELLED_ITEM, Outcome
from gui import format as fmt
from gui.models.plans import (
    ACTION_WORDS,
    PlanItemsModel,
    PlanProgressModel,
    PlanSessionsModel,
    PlansModel,
    PlanStepsModel,
    ProblemsModel,
    TimingsModel,
    item_progress,
    item_rows,
)
from gui.plan_watcher import PlanRow, PlanWatcher
from gui.views.operations import ERROR_STYLE, WARNING_STYLE
from gui.views.table import RecordTable

OK_STYLE = "color: #2e7d32; font-weight: bold"
CANCEL_WORDS: dict[PlanAction, str] = {
    # what core.plans.run promises a cancel leaves; an undo cannot be cancelled
    PlanAction.RUN: "Cancel starts no further VM (a delay in progress ends at once); the VMs "
    "already up stay up and are listed: undo the plan to bring them back, or run it again "
    "to start the rest.",
    PlanAction.TEST: "Cancel starts no further test VM; those already up are cleaned up as "
    "at the end of every test.",
}


def bold(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet("font-weight: bold")
    return label


class PlansView(QWidget):
    """The plans, and below them the selected plan's VMs in run order and its sessions."""

    def __init__(self, model: PlansModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = RecordTable(
            model,
            empty_text=(
                "No failover plans yet. Select replicas (or a job) and click New Plan from "
                "Selection, or make one with New Plan."
            ),
            filter_hint="Filter plans",
        )
        self.items_model = PlanItemsModel(self)
        self.items = RecordTable(
            self.items_model,
            filter_box=False,
            empty_text="Select a plan to see its VMs in the order a run brings them up.",
        )
        self.sessions_model = PlanSessionsModel(self)
        self.sessions = RecordTable(
            self.sessions_model,
            filter_box=False,
            sort_column=PlanSessionsModel.ID,
            descending=True,
            empty_text="This plan has not run yet.",
        )
        self.sessions.view.hideColumn(PlanSessionsModel.PLAN)  # the selected plan's, all
        self.items_title = bold("VMs in run order")
        self.sessions_title = bold("Sessions")
        lower = QSplitter(Qt.Orientation.Horizontal)
        for title, table in ((self.items_title, self.items), (self.sessions_title, self.sessions)):
            box = QWidget()
            lay = QVBoxLayout(box)
            lay.setContentsMargins(0, 0, 0, 0)
            lay.addWidget(title)
            lay.addWidget(table)
            lower.addWidget(box)
        lower.setStretchFactor(0, 3)
        lower.setStretchFactor(1, 2)
        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(self.table)
        split.addWidget(lower)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)
        self._sessions: list[PlanSession] = []
        self.table.selectionChanged.connect(self._show_plan)
        model.dataChanged.connect(self._show_plan)
        model.rowsRemoved.connect(self._show_plan)

    def selected_plan(self) -> FailoverPlan | None:
        rows = [r for r in self.table.selected() if isinstance(r, PlanRow)]
        return rows[0].plan if rows else None

    def set_sessions(self, sessions: list[PlanSession]) -> None:
        self._sessions = sessions
        self._show_plan()

    def _show_plan(self, *_args: object) -> None:
        plan = self.selected_plan()
        if plan is None:
            self.items_model.set_rows([])
            self.sessions_model.set_rows([])
            self.items_title.setText("VMs in run order")
            self.sessions_title.setText("Sessions")
            return
        self.items_model.set_rows(item_rows(plan))
        mine = [s for s in self._sessions if s.plan == plan.name]
        self.sessions_model.set_rows(mine)
        self.items_title.setText(f"VMs of {plan.name} in run order ({len(plan.items)})")
        self.sessions_title.setText(f"Sessions of {plan.name}")


class ReadinessDialog(QDialog):
    """The readiness report: what blocks the plan and how to fix it, the estimated recovery
    time and where it comes from, the DR site's capacity. Filled when the check is done."""

    reported = Signal(object)  # the Readiness just shown

    def __init__(self, plan: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plan = plan
        self.report: Readiness | None = None
        self.setWindowTitle(f"Readiness of {plan}")
        self.resize(1000, 640)
        self.verdict = QLabel("Checking the plan against the DR site...")
        self.verdict.setWordWrap(True)
        self.verdict.setStyleSheet("font-weight: bold")
        self.estimate = QLabel("")
        self.estimate.setWordWrap(True)
        self.problems_model = ProblemsModel(self)
        self.problems = RecordTable(
            self.problems_model,
            filter_box=False,
            empty_text="Nothing blocks this plan.",
        )
        self.timings_model = TimingsModel(self)
        self.timings = RecordTable(self.timings_model, filter_box=False)
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        self.capacity = QLabel("")
        self.capacity.setWordWrap(True)
        self.capacity.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.hide()
        lower = QSplitter(Qt.Orientation.Horizontal)
        timings_box = QWidget()
        tl = QVBoxLayout(timings_box)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(bold("Start to up, per VM"))
        tl.addWidget(self.timings)
        site_box = QGroupBox("DR site")
        sl = QVBoxLayout(site_box)
        sl.addWidget(self.capacity)
        sl.addWidget(self.notes)
        sl.addStretch(1)
        lower.addWidget(timings_box)
        lower.addWidget(site_box)
        site_box.setMinimumWidth(380)
        lower.setStretchFactor(0, 3)
        lower.setStretchFactor(1, 2)
        lower.setSizes([580, 400])
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        self.recheck = QPushButton("Check &again")
        buttons.addButton(self.recheck, QDialogButtonBox.ButtonRole.ActionRole)
        layout = QVBoxLayout(self)
        layout.addWidget(self.verdict)
        layout.addWidget(self.estimate)
        layout.addWidget(self.error)
        layout.addWidget(bold("What blocks the plan, and how to fix it"))
        layout.addWidget(self.problems, 3)
        layout.addWidget(lower, 2)
        layout.addWidget(buttons)
        # Check again sits left of Close, but was added after it.
        QWidget.setTabOrder(self.recheck, buttons.button(QDialogButtonBox.StandardButton.Close))

    def checking(self) -> None:
        self.recheck.setEnabled(False)
        self.error.hide()
        self.verdict.setStyleSheet("font-weight: bold")
        self.verdict.setText("Checking the plan against the DR site...")

    def show_report(self, report: Readiness) -> None:
        self.report = report
        self.recheck.setEnabled(True)
        n = len(report.problems)
        if report.ready:
            self.verdict.setText(f"{report.plan} is ready to run.")
            self.verdict.setStyleSheet(OK_STYLE)
        else:
            self.verdict.setText(
                f"{report.plan} is not ready: {n} problem{'s' if n != 1 else ''} to fix."
            )
            self.verdict.setStyleSheet(f"{ERROR_STYLE}; font-weight: bold")
        measured = sum(1 for t in report.timings if t.measured)
        self.estimate.setText(
            f"Estimated recovery time: {span_words(report.estimated_seconds)} from Run to "
            f"every VM up, of which {span_words(report.delays_seconds)} is waiting for "
            f"delays; {measured} of {len(report.timings)} VM start times measured in past "
            "runs, the others assumed."
        )
        self.problems_model.set_rows(report.problems)
        self.timings_model.set_rows(report.timings)
        self.notes.setText("\n".join(f"• {n}" for n in report.notes))
        self.capacity.setText(capacity_text(report.capacity))
        self.fit_problems()
        self.reported.emit(report)

    def fit_problems(self) -> None:
        """Problems in full: the text columns share the width and wrap, rows grow to fit."""
        view = self.problems.view
        view.setWordWrap(True)
        header = view.horizontalHeader()
        for column in (ProblemsModel.CHECK, ProblemsModel.ITEM):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        for column in (ProblemsModel.PROBLEM, ProblemsModel.FIX):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        view.resizeRowsToContents()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self.report is not None:
            self.problems.view.resizeRowsToContents()

    def show_error(self, message: str, detail: str = "") -> None:
        self.recheck.setEnabled(True)
        self.verdict.setText("The readiness check could not be made.")
        self.verdict.setStyleSheet(f"{ERROR_STYLE}; font-weight: bold")
        self.error.setText(message)
        self.error.setToolTip(detail)
        self.error.show()


def span_words(seconds: float) -> str:
    """ "1 min 34 s", "2 h 5 min", "12 s"."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def capacity_text(capacity: dict[str, float]) -> str:
    if not capacity:
        return "The DR site's capacity was not read (no VM to start)."
    lines = []
    if "cores" in capacity:
        lines.append(
            f"CPU: {capacity['vcpus_needed']:g} vCPUs to start on {capacity['cores']:g} "
            "physical cores"
        )
    if "memory_mib" in capacity:
        free = capacity["memory_mib"] - capacity["memory_used_mib"]
        lines.append(
            f"Memory: {capacity['memory_needed_mib'] / 1024:.1f} GiB needed, "
            f"{free / 1024:.1f} GiB free of {capacity['memory_mib'] / 1024:.1f} GiB"
        )
    for key, value in sorted(capacity.items()):
        if key.startswith("datastore ") and key.endswith(" needed bytes"):
            name = key[len("datastore ") : -len(" needed bytes")]
            free = capacity.get(f"datastore {name} free bytes", 0.0)
            lines.append(f"Datastore {name}: {fmt.size(value)} needed, {fmt.size(free)} free")
    return "\n".join(lines)


class PlanRunWindow(QWidget):
    """A plan's run, undo or test, live: each VM's step (from the plan session's steps as the
    `PlanWatcher` reads them) and every step in order."""

    sessionStarted = Signal(int)  # core made the plan session (this window follows it)
    closed = Signal(object)  # this window
    updated = Signal(object)  # the PlanSession just shown
    cancelRequested = Signal()  # Cancel was pressed: the owner asks the worker to stop

    def __init__(
        self,
        plan: FailoverPlan,
        action: PlanAction,
        watcher: PlanWatcher,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.plan = plan
        self.action = action
        self.watcher = watcher
        self.session_id: int | None = None
        self.session: PlanSession | None = None
        self.result: PlanResult | None = None
        self.error = ""
        self.cancel_asked = False
        self.setWindowTitle(f"{ACTION_WORDS[action]} of failover plan {plan.name}")
        self.resize(1100, 700)
        self.heading = QLabel(f"<b>{ACTION_WORDS[action]} of failover plan {plan.name}</b>")
        self.state = QLabel("Starting...")
        self.state.setWordWrap(True)
        self.counts = QLabel("")
        self.progress_model = PlanProgressModel(self)
        self.progress_model.set_rows(item_progress(plan, None))
        self.progress = RecordTable(
            self.progress_model,
            filter_box=False,
            sort_column=PlanProgressModel.ORDER,
        )
        self.steps_model = PlanStepsModel(self)
        self.steps = RecordTable(
            self.steps_model,
            sort_column=PlanStepsModel.TIME,
            filter_hint="Filter the steps",
            empty_text="No step recorded yet.",
        )
        self.note = QLabel(
            CANCEL_WORDS.get(
                action,
                "An undo cannot be stopped half way: each VM's undo completes or puts back what "
                "it changed.",
            )
        )
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: palette(placeholder-text)")
        self.cancel_button = QPushButton("Cancel &Plan")
        self.cancel_button.setVisible(action in CANCEL_WORDS)
        self.cancel_button.clicked.connect(self.cancel)
        close = QPushButton("&Close")
        close.clicked.connect(self.close)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.close)
        head = QGridLayout()
        head.addWidget(self.heading, 0, 0)
        head.addWidget(self.counts, 0, 1, Qt.AlignmentFlag.AlignRight)
        head.addWidget(self.state, 1, 0, 1, 2)
        upper = QWidget()
        ul = QVBoxLayout(upper)
        ul.setContentsMargins(0, 0, 0, 0)
        ul.addWidget(bold("Virtual machines, in run order"))
        ul.addWidget(self.progress)
        lower = QWidget()
        ll = QVBoxLayout(lower)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(bold("Steps"))
        ll.addWidget(self.steps)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(upper)
        split.addWidget(lower)
        split.setChildrenCollapsible(False)
        bottom = QHBoxLayout()
        bottom.addWidget(self.note, 10)
        bottom.addStretch(1)
        bottom.addWidget(self.cancel_button)
        bottom.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addLayout(head)
        layout.addWidget(split, 1)
        layout.addLayout(bottom)
        watcher.sessionChanged.connect(self._on_session)
        self._show_counts()

    # -- fed by the worker (through the controller) and the watcher -------------------------------

    @property
    def running(self) -> bool:
        return self.result is None and not self.error

    def started(self, session_id: int) -> None:
        """Core made the plan session: follow it."""
        self.follow(session_id)
        if self.session is None:
            self.state.setText(f"Started: plan session {session_id}")
        self.sessionStarted.emit(session_id)

    def follow(self, session_id: int) -> None:
        """Show plan session `session_id` (this window's, or one started elsewhere)."""
        self.session_id = session_id
        self.watcher.watch(session_id)

    def cancel(self) -> None:
        """Ask the run or test to stop starting VMs (once)."""
        if self.cancel_asked or not self.running or self.action not in CANCEL_WORDS:
            return
        self.cancel_asked = True
        self.cancel_button.setEnabled(False)
        self.state.setText("Cancelling: no further VM starts; waiting for those starting...")
        self.cancelRequested.emit()

    def _on_session(self, session: PlanSession) -> None:
        if self.session_id != session.id:
            return
        self.session = session
        self.progress_model.set_rows(item_progress(self.plan, session))
        self.steps_model.set_rows(session.steps)
        self.steps.view.scrollToBottom()
        self._show_counts()
        if session.ended is None:
            since = f"since {fmt.when(session.started)[11:]}: {len(session.steps)} step(s) recorded"
            self.state.setText(
                f"Cancelling (no further VM starts), running {since}"
                if self.cancel_asked
                else f"Running {since}"
            )
        else:
            self._show_end(session)
        self.updated.emit(session)

    def _show_counts(self) -> None:
        rows = self.progress_model.records()
        # An item a cancel kept from starting is skipped with core's words: not done.
        left = sum(1 for r in rows if r.message.startswith(CANCELLED_ITEM))
        up = sum(1 for r in rows if r.status in (RunStatus.SUCCESS, RunStatus.WARNING)) - left
        failed = sum(1 for r in rows if r.status == RunStatus.FAILED)
        text = f"{up} of {len(rows)} done"
        if failed:
            text += f", {failed} failed"
        if left:
            text += f", {left} not started"
        self.counts.setText(text)

    def _show_end(self, session: PlanSession) -> None:
        self.note.hide()
        self.cancel_button.hide()
        words = fmt.status(session.status)
        took = fmt.duration(fmt.elapsed(session.started, session.ended))
        text = f"{ACTION_WORDS[self.action]} ended {words} after {took}."
        if self.result is not None and self.result.cancelled:
            left = sum(1 for i in self.result.items if i.outcome == Outcome.CANCELLED)
            text = (
                f"{ACTION_WORDS[self.action]} cancelled after {took}: {left} VM(s) not started. "
                + (
                    "The VMs already up stay up: undo the plan to bring them back."
                    if self.action == PlanAction.RUN
                    else "The test VMs that were up are cleaned up."
                )
            )
        self.state.setText(text)
        cancelled = self.result is not None and self.result.cancelled
        color = {
            RunStatus.SUCCESS: OK_STYLE,
            RunStatus.WARNING: WARNING_STYLE,
        }.get(session.status, WARNING_STYLE if cancelled else f"{ERROR_STYLE}; font-weight: bold")
        self.state.setStyleSheet(color)

    def finished(self, result: PlanResult) -> None:
        self.result = result
        self.cancel_button.hide()
        if self.session is not None and self.session.ended is not None:
            self._show_end(self.session)  # the watcher read the end before the result came
            self.updated.emit(self.session)
        self.watcher.refresh()

    def failed(self, message: str, detail: str) -> None:
        self.error = message
        self.note.hide()
        self.cancel_button.hide()
        self.state.setText(message)
        self.state.setToolTip(detail)
        self.state.setStyleSheet(f"{ERROR_STYLE}; font-weight: bold")

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.session_id is not None:
            self.watcher.unwatch(self.session_id)
        self.closed.emit(self)
        super().closeEvent(event)
