"""The console's disaster-recovery side: replica operations, failover plans and planning.

`DisasterRecovery` belongs to the main window and brings, on top of its pages:
- the replica operations (Failover Now, Planned Failover, Undo Failover, Permanent Failover,
  Failback, Commit / Undo Failback, Test Failover, Test Cleanup) as actions of the Replicas
  pages' toolbar and right-click menu, enabled by the selected replica's state
  (gui.replica_ops), each confirmed by a dialog that says what will happen, then run on a worker
  and followed in an operation window (with a Cancel for those core can stop);
- the Failover Plans page (its plans read by a `PlanWatcher` on its own thread), New Plan from
  Selection (one click from replicas, inventory VMs or a job, through core's one-click
  planning), the plan editor, the readiness report, and Run / Undo / Test with each VM's step
  shown live in a plan run window (a run or a test can be cancelled there);
- the bandwidth estimation dialog of a job.

Like the main window, it never reads the store or vSphere itself: workers do, and report
through signals.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QMenuBar, QMessageBox, QStyle

from core.failover.session import OperationResult
from core.model.job import ReplicationJob
from core.model.plans import FailoverPlan, PlanAction, PlanSession
from core.planning.bandwidth import Link
from core.plans.auto import AutoPlan
from core.plans.readiness import Readiness
from core.plans.run import PlanResult
from gui import format as fmt
from gui.dr_workers import (
    CallWorker,
    PlanWorker,
    ReplicaOperationWorker,
    bandwidth,
    delete_plan,
    make_auto_plan,
    readiness,
    save_plan,
)
from gui.models.inventory import NodeKind
from gui.models.plans import PlansModel
from gui.plan_watcher import PlanRow, PlanWatcher
from gui.replica_ops import ORDER, SPECS, Op, OpRequest, availability, describe, outcome
from gui.snapshot import JobRow, ReplicaRow
from gui.views.bandwidth import BandwidthDialog
from gui.views.operations import ConfirmOperationDialog, OperationWindow
from gui.views.plan_editor import PlanEditor
from gui.views.plans import PlanRunWindow, PlansView, ReadinessDialog

if TYPE_CHECKING:
    from gui.main_window import MainWindow

SP = QStyle.StandardPixmap
OP_ICONS = {
    Op.FAILOVER: SP.SP_MediaSeekForward,
    Op.PLANNED_FAILOVER: SP.SP_MediaSkipForward,
    Op.UNDO_FAILOVER: SP.SP_ArrowBack,
    Op.PERMANENT_FAILOVER: SP.SP_DialogApplyButton,
    Op.FAILBACK: SP.SP_MediaSeekBackward,
    Op.COMMIT_FAILBACK: SP.SP_DialogYesButton,
    Op.UNDO_FAILBACK: SP.SP_DialogNoButton,
    Op.TEST_FAILOVER: SP.SP_ComputerIcon,
    Op.TEST_CLEANUP: SP.SP_TrashIcon,
}
OP_SHORTCUTS = {
    Op.FAILOVER: "Ctrl+Shift+F",
    Op.PLANNED_FAILOVER: "Ctrl+Shift+P",
    Op.UNDO_FAILOVER: "Ctrl+Shift+U",
    Op.PERMANENT_FAILOVER: "Ctrl+Shift+M",
    Op.FAILBACK: "Ctrl+Shift+B",
    Op.COMMIT_FAILBACK: "Ctrl+Shift+C",
    Op.UNDO_FAILBACK: "Ctrl+Shift+K",
    Op.TEST_FAILOVER: "Ctrl+Shift+T",
    Op.TEST_CLEANUP: "Ctrl+Shift+L",
}
# The Replica menu's entries, each with a mnemonic of its own (Alt+R, then the letter).
OP_LABELS = {
    Op.FAILOVER: "Failover &Now",
    Op.PLANNED_FAILOVER: "&Planned Failover",
    Op.UNDO_FAILOVER: "&Undo Failover",
    Op.PERMANENT_FAILOVER: "Per&manent Failover",
    Op.FAILBACK: "&Failback",
    Op.COMMIT_FAILBACK: "&Commit Failback",
    Op.UNDO_FAILBACK: "Un&do Failback",
    Op.TEST_FAILOVER: "&Test Failover",
    Op.TEST_CLEANUP: "Test C&leanup",
}
PLAN_ACTION_WORDS = {
    PlanAction.RUN: "fail over",
    PlanAction.UNDO: "undo the failover of",
    PlanAction.TEST: "test",
}


class DisasterRecovery(QObject):
    operationStarted = Signal(object)  # the OperationWindow of an operation just started
    confirmationShown = Signal(object)  # the ConfirmOperationDialog just opened
    planCreated = Signal(object)  # the AutoPlan New Plan from Selection saved
    planRunStarted = Signal(object)  # the PlanRunWindow of a run, undo or test just started
    editorShown = Signal(object)  # the PlanEditor just opened
    readinessShown = Signal(object)  # the ReadinessDialog just opened
    bandwidthShown = Signal(object)  # the BandwidthDialog just opened

    def __init__(self, window: MainWindow, poll_ms: int) -> None:
        super().__init__(window)
        self.window = window
        self.store = window.store
        self.plan_watcher = PlanWatcher(window.store, poll_ms)
        self.plans_model = PlansModel(self)
        self.plans_view = PlansView(self.plans_model)
        # replica id -> the window of its running operation (None once that window is closed)
        self.busy: dict[int, OperationWindow | None] = {}
        self.operation_windows: list[OperationWindow] = []
        self.run_windows: list[PlanRunWindow] = []
        self.plan_workers: dict[str, PlanWorker] = {}
        self.sessions: list[PlanSession] = []
        self._select_plan = ""
        self.plan_watcher.plansChanged.connect(self.plans_model.set_rows)
        self.plan_watcher.plansChanged.connect(self._plans_changed)
        self.plan_watcher.sessionsChanged.connect(self._sessions_changed)
        self.plan_watcher.failed.connect(self._watch_failed)
        self._make_actions()

    # -- actions ----------------------------------------------------------------------------------

    def _action(self, text: str, icon: QStyle.StandardPixmap, shortcut: str, tip: str) -> QAction:
        w = self.window
        action = QAction(w.style().standardIcon(icon), text, w)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            action.setToolTip(f"{tip} ({QKeySequence(shortcut).toString()})")
        else:
            action.setToolTip(tip)
        action.setStatusTip(tip)
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        w.addAction(action)
        return action

    def _make_actions(self) -> None:
        self.op_actions: dict[Op, QAction] = {}
        for op in ORDER:
            action = self._action(OP_LABELS[op], OP_ICONS[op], OP_SHORTCUTS[op], SPECS[op].tip)
            action.triggered.connect(lambda _c=False, o=op: self.confirm(o))
            self.op_actions[op] = action
        a = self._action
        self.act_plan_from_selection = a(
            "New Plan from &Selection",
            SP.SP_FileDialogNewFolder,
            "Ctrl+Shift+N",
            "A failover plan of the selected VMs, replicas or job, ordered by tier in one click",
        )
        self.act_new_plan = a("New &Plan", SP.SP_FileIcon, "", "A failover plan made in the editor")
        self.act_edit_plan = a(
            "&Edit Plan", SP.SP_FileDialogDetailedView, "Ctrl+Shift+E", "Edit the selected plan"
        )
        self.act_delete_plan = a("&Delete Plan", SP.SP_TrashIcon, "", "Delete the selected plan")
        self.act_readiness = a(
            "Re&adiness Report",
            SP.SP_MessageBoxInformation,
            "Ctrl+Shift+Y",
            "What blocks the plan, how to fix it, and the estimated recovery time",
        )
        self.act_run_plan = a(
            "&Run Plan",
            SP.SP_MediaPlay,
            "Ctrl+Shift+G",
            "Fail over the plan's VMs, group by group, to their latest restore points",
        )
        self.act_test_plan = a(
            "&Test Plan",
            SP.SP_ComputerIcon,
            "",
            "Bring the plan's VMs up on an isolated network, then clean up; replication goes on",
        )
        self.act_undo_plan = a(
            "&Undo Plan",
            SP.SP_ArrowBack,
            "",
            "Undo the failover of every failed-over VM of the plan, last group first",
        )
        self.act_bandwidth = a(
            "&Bandwidth Estimation",
            SP.SP_DriveNetIcon,
            "",
            "What the job's RPO needs from the link, with its throttling windows",
        )
        self.act_plan_from_selection.triggered.connect(self.plan_from_selection)
        self.act_new_plan.triggered.connect(lambda: self.edit_plan(None))
        self.act_edit_plan.triggered.connect(self._edit_selected)
        self.act_delete_plan.triggered.connect(self.delete_selected_plan)
        self.act_readiness.triggered.connect(self._readiness_selected)
        self.act_run_plan.triggered.connect(lambda: self._plan_selected(PlanAction.RUN))
        self.act_test_plan.triggered.connect(lambda: self._plan_selected(PlanAction.TEST))
        self.act_undo_plan.triggered.connect(lambda: self._plan_selected(PlanAction.UNDO))
        self.act_bandwidth.triggered.connect(lambda: self.open_bandwidth())
        self.plan_actions = [
            self.act_new_plan,
            self.act_edit_plan,
            self.act_readiness,
            self.act_run_plan,
            self.act_test_plan,
            self.act_undo_plan,
            self.act_delete_plan,
        ]

    def add_actions(self) -> None:
        """Put the actions on the main window's pages (toolbar and right-click menus)."""
        from gui.main_window import Page

        w = self.window
        ops = list(self.op_actions.values())
        for page in (Page.REPLICAS_READY, Page.REPLICAS_ACTIVE):
            w.page_actions[page] = [*ops, self.act_plan_from_selection, *w.page_actions[page]]
        sep = QAction(self)
        sep.setSeparator(True)
        for view in (w.ready_view.table, w.active_view.table):
            view.actions_for_menu = [
                *ops,
                sep,
                self.act_plan_from_selection,
                *view.actions_for_menu,
            ]
        w.page_actions[Page.PLANS] = list(self.plan_actions)
        self.plans_view.table.actions_for_menu = list(self.plan_actions)
        w.page_actions[Page.JOBS] = [
            *w.page_actions[Page.JOBS],
            self.act_plan_from_selection,
            self.act_bandwidth,
        ]
        w.jobs_view.actions_for_menu = [
            *w.jobs_view.actions_for_menu,
            self.act_plan_from_selection,
            self.act_bandwidth,
        ]
        w.page_actions[Page.INVENTORY] = [
            *w.page_actions[Page.INVENTORY],
            self.act_plan_from_selection,
        ]
        w.inventory_view.tree.addAction(self.act_plan_from_selection)
        for table in (w.ready_view.table, w.active_view.table, w.jobs_view, self.plans_view.table):
            table.selectionChanged.connect(self.update_actions)
        w.inventory_view.tree.selectionModel().selectionChanged.connect(self.update_actions)
        w.replicas_model.dataChanged.connect(self.update_actions)
        w.replicas_model.rowsRemoved.connect(self.update_actions)
        w.pageChanged.connect(self.update_actions)
        self.plans_view.table.opened.connect(lambda _r: self._edit_selected())
        self.update_actions()

    def add_menus(self, bar: QMenuBar) -> None:
        replica_menu = bar.addMenu("&Replica")
        for action in self.op_actions.values():
            replica_menu.addAction(action)
        plan_menu: QMenu = bar.addMenu("&Plan")
        plan_menu.addAction(self.act_plan_from_selection)
        for action in self.plan_actions:
            plan_menu.addAction(action)
        plan_menu.addSeparator()
        plan_menu.addAction(self.act_bandwidth)

    def start(self) -> None:
        self.plan_watcher.start()

    def stop(self) -> None:
        for window in list(self.run_windows) + list(self.operation_windows):
            window.close()
        self.plan_watcher.stop()

    def running_operations(self) -> int:
        """Replica operations and plan actions whose workers have not ended."""
        return len(self.window.workers.running(ReplicaOperationWorker, PlanWorker))

    # -- selection --------------------------------------------------------------------------------

    def selected_replicas(self) -> list[ReplicaRow]:
        from gui.main_window import Page

        w = self.window
        if w.page == Page.REPLICAS_READY:
            table = w.ready_view.table
        elif w.page == Page.REPLICAS_ACTIVE:
            table = w.active_view.table
        else:
            return []
        return [r for r in table.selected() if isinstance(r, ReplicaRow)]

    def selected_replica(self) -> ReplicaRow | None:
        rows = self.selected_replicas()
        return rows[0] if len(rows) == 1 else None

    def job_of(self, name: str) -> ReplicationJob | None:
        row = next((r for r in self.window.jobs_model.records() if r.name == name), None)
        return row.job if isinstance(row, JobRow) else None

    def update_actions(self, *_args: object) -> None:
        rows = self.selected_replicas()
        row = rows[0] if len(rows) == 1 else None
        for op, action in self.op_actions.items():
            if row is None:
                why = (
                    "Select one replica (several VMs fail over together in a failover plan)"
                    if rows
                    else "Select a replica"
                )
            else:
                why = availability(op, row, row.replica.id in self.busy)
            action.setEnabled(not why)
            action.setStatusTip(why or SPECS[op].tip)
        self.act_plan_from_selection.setEnabled(bool(self._selection_source()))
        plan = self.plans_view.selected_plan()
        running = plan is not None and plan.name in self.plan_workers
        for action in (self.act_edit_plan, self.act_delete_plan, self.act_readiness):
            action.setEnabled(plan is not None and not running)
        for action in (self.act_run_plan, self.act_test_plan, self.act_undo_plan):
            action.setEnabled(plan is not None and not running)
        self.act_bandwidth.setEnabled(bool(self.window.jobs_model.records()))

    def _selection_source(self) -> tuple[str, list[str], str]:
        """(job, VMs, suggested plan name) of what New Plan from Selection would plan."""
        from gui.main_window import Page

        w = self.window
        if w.page == Page.JOBS:
            jobs = w.selected_jobs()
            if len(jobs) == 1:
                return jobs[0].name, [], f"{jobs[0].name} plan"
            return ("", [], "")
        vms: list[tuple[str, str]] = []
        if w.page in (Page.REPLICAS_READY, Page.REPLICAS_ACTIVE):
            vms = [(r.replica.vm_moref, r.replica.vm_name) for r in self.selected_replicas()]
        elif w.page == Page.INVENTORY:
            vms = [
                (n.moref, n.name)
                for n in w.inventory_view.selected_nodes()
                if n.kind == NodeKind.VM
            ]
        if not vms:
            return ("", [], "")
        name = f"Plan for {vms[0][1]}" + (f" and {len(vms) - 1} more" if len(vms) > 1 else "")
        return "", [m for m, _ in vms], name

    # -- replica operations -----------------------------------------------------------------------

    def confirm(self, op: Op) -> ConfirmOperationDialog | None:
        """Open the confirmation of `op` for the selected replica (nothing runs before OK)."""
        row = self.selected_replica()
        if row is None or availability(op, row, row.replica.id in self.busy):
            return None
        inventory = self.window.inventory_model.inventories.get(row.replica.source_server)
        dialog = ConfirmOperationDialog(
            op, row, self.job_of(row.replica.job), inventory, self.window
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self.start_operation(dialog.request(), dialog.text.text()))
        dialog.open()
        self.confirmationShown.emit(dialog)
        return dialog

    def start_operation(self, request: OpRequest, description: str = "") -> OperationWindow | None:
        rid = request.replica.id
        if rid in self.busy:  # one operation at a time on a replica (core would refuse it)
            running = self.busy[rid]
            if running is not None:
                running.raise_()
            return running
        if not description:
            row = next(
                (r for r in self.window.replicas_model.records() if r.replica.id == rid), None
            )
            if row is not None:
                description = describe(
                    request.op, row, self.job_of(request.replica.job), request.point, request.target
                )
        worker = ReplicaOperationWorker(self.store, request)
        window = OperationWindow(request, description, worker, self.window.watcher, self.window)
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        window.closed.connect(self._op_window_closed)
        # The replica is busy until the worker ends, whether its window is still open or not.
        relay = _Relay(
            self,
            lambda result: self._operation_ended(request, result, ""),
            lambda message, _detail: self._operation_ended(request, None, message),
            on_stopped=lambda message, _detail: self._operation_ended(
                request, None, message, cancelled=True
            ),
        )
        worker.finished.connect(relay.result)
        worker.failed.connect(relay.failed)
        worker.stopped.connect(relay.stopped)
        worker.done.connect(relay.ended)
        self.busy[rid] = window
        self.operation_windows.append(window)
        self.window.workers.start(worker)
        window.show()
        self.window.statusBar().showMessage(f"{request.title} started", 5000)
        self.update_actions()
        self.operationStarted.emit(window)
        return window

    def _operation_ended(
        self, request: OpRequest, result: object, error: str, cancelled: bool = False
    ) -> None:
        self.busy.pop(request.replica.id, None)
        if isinstance(result, OperationResult):
            self.window.statusBar().showMessage(outcome(request, result), 15000)
        elif cancelled:
            self.window.statusBar().showMessage(f"{request.title} cancelled {error}", 15000)
        else:
            self.window.statusBar().showMessage(f"{request.title} failed: {error}", 15000)
        self.window.watcher.refresh()
        self.update_actions()

    def _op_window_closed(self, window: object) -> None:
        if window in self.operation_windows:
            self.operation_windows.remove(window)
        for rid, shown in list(self.busy.items()):
            if shown is window:  # still running: the status bar reports its end
                self.busy[rid] = None

    # -- plans ------------------------------------------------------------------------------------

    def _plans_changed(self, rows: list[PlanRow]) -> None:
        if self._select_plan and any(r.name == self._select_plan for r in rows):
            self.plans_view.table.select_key(self._select_plan)
            self._select_plan = ""
        self.update_actions()

    def _sessions_changed(self, sessions: list[PlanSession]) -> None:
        self.sessions = sessions
        self.plans_view.set_sessions(sessions)

    def _watch_failed(self, message: str, detail: str) -> None:
        self.window.statusBar().showMessage(message, 15000)
        self.window.poll_label.setToolTip(f"{message}\n\n{detail}")

    def _call(
        self,
        call: Callable[..., object],
        what: str,
        done: Callable[[object], None],
        failed: Callable[[str, str], object] | None = None,
    ) -> CallWorker:
        worker = CallWorker(self.store, call, what)
        # Bound methods of QObjects (queued to the GUI thread), never lambdas (see gui.workers).
        relay = _Relay(self, done, failed or self.window.show_error)
        worker.result.connect(relay.result)
        worker.failed.connect(relay.failed)
        worker.done.connect(relay.ended)
        self.window.workers.start(worker)
        return worker

    def plan_from_selection(self) -> CallWorker | None:
        job, vms, name = self._selection_source()
        if not name:
            return None
        self.window.statusBar().showMessage(f"Planning {name}...", 5000)
        return self._call(
            make_auto_plan(name, job=job, vms=vms), "one-click planning", self._planned
        )

    def _planned(self, made: object) -> None:
        from gui.main_window import Page

        if not isinstance(made, AutoPlan):
            return
        groups = ", ".join(f"{len(items)} in group {p}" for p, items in made.plan.groups())
        self.window.statusBar().showMessage(f"Failover plan {made.plan.name} made: {groups}", 15000)
        self._select_plan = made.plan.name
        self.window.show_page(Page.PLANS)
        self.plan_watcher.refresh()
        self.planCreated.emit(made)

    def _edit_selected(self) -> None:
        plan = self.plans_view.selected_plan()
        if plan is not None:
            self.edit_plan(plan)

    def edit_plan(self, plan: FailoverPlan | None) -> PlanEditor:
        editor = PlanEditor(plan, self.window.replicas_model.records(), self.window)
        editor.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        editor.save_requested.connect(lambda p, old: self._save(editor, p, old))
        editor.open()
        self.editorShown.emit(editor)
        return editor

    def _save(self, editor: PlanEditor, plan: FailoverPlan, old: str | None) -> None:
        def saved(value: object) -> None:
            if isinstance(value, FailoverPlan):
                self._select_plan = value.name
                self.plan_watcher.refresh()
                self.window.statusBar().showMessage(f"Failover plan {value.name} saved", 10000)
                editor.saved(value)

        self._call(save_plan(plan, old), "save the plan", saved, editor.save_failed)

    def delete_selected_plan(self) -> None:
        plan = self.plans_view.selected_plan()
        if plan is None:
            return
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Delete failover plan",
            f"Delete failover plan {plan.name}? Its VMs, replicas and past sessions stay.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self.window,
        )
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.accepted.connect(
            lambda: self._call(
                delete_plan(plan.name), "delete the plan", lambda _v: self.plan_watcher.refresh()
            )
        )
        box.open()

    def _readiness_selected(self) -> None:
        plan = self.plans_view.selected_plan()
        if plan is not None:
            self.open_readiness(plan.name)

    def open_readiness(self, name: str) -> ReadinessDialog:
        dialog = ReadinessDialog(name, self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def check() -> None:
            dialog.checking()
            self._call(readiness(name), "readiness check", _shown, dialog.show_error)

        def _shown(value: object) -> None:
            if isinstance(value, Readiness):
                dialog.show_report(value)

        dialog.recheck.clicked.connect(check)
        check()
        dialog.open()
        self.readinessShown.emit(dialog)
        return dialog

    def _plan_selected(self, action: PlanAction) -> None:
        plan = self.plans_view.selected_plan()
        if plan is not None:
            self.confirm_plan(plan, action)

    def confirm_plan(self, plan: FailoverPlan, action: PlanAction) -> QMessageBox:
        groups = len(plan.groups())
        text = {
            PlanAction.RUN: (
                f"Fail over the {len(plan.items)} VMs of {plan.name} in {groups} priority "
                "group(s), each to its latest restore point, with the plan's delays, "
                "dependencies and heartbeat waits? VMs already failed over are skipped; the "
                "source VMs are not touched."
            ),
            PlanAction.TEST: (
                f"Test {plan.name}: bring its {len(plan.items)} VMs up as test VMs on one "
                "isolated network (no uplink), in the plan's order, then delete them and the "
                "network? The replicas stay as they are and replication goes on."
            ),
            PlanAction.UNDO: (
                f"Undo the failover of every failed-over VM of {plan.name}, last group first, "
                f"{plan.max_parallel} at a time? Each is powered off and what it wrote since "
                "the failover is discarded."
            ),
        }[action]
        box = QMessageBox(
            QMessageBox.Icon.Question,
            f"{str(action).capitalize()} failover plan",
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self.window,
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.accepted.connect(lambda: self.start_plan(plan, action))
        box.open()
        self.confirmationShown.emit(box)
        return box

    def start_plan(self, plan: FailoverPlan, action: PlanAction) -> PlanRunWindow:
        worker = PlanWorker(self.store, plan.name, action)
        window = PlanRunWindow(plan, action, self.plan_watcher, self.window)
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        worker.started.connect(window.started)
        worker.finished.connect(window.finished)
        worker.failed.connect(window.failed)
        relay = _Relay(
            self,
            lambda r: self._plan_done(plan.name, r),
            self._plan_failed,
            lambda: self._plan_worker_ended(plan.name),
        )
        worker.finished.connect(relay.result)
        worker.failed.connect(relay.failed)
        worker.done.connect(relay.ended)
        window.closed.connect(self._run_window_closed)
        window.cancelRequested.connect(worker.cancel, Qt.ConnectionType.DirectConnection)
        self.plan_workers[plan.name] = worker
        self.run_windows.append(window)
        self.window.workers.start(worker)
        window.show()
        self.window.statusBar().showMessage(
            f"Failover plan {plan.name}: {PLAN_ACTION_WORDS[action]} started", 5000
        )
        self.update_actions()
        self.planRunStarted.emit(window)
        return window

    def _plan_done(self, name: str, result: object) -> None:
        if isinstance(result, PlanResult):
            self.window.statusBar().showMessage(
                f"Failover plan {name}: {result.action} ended {fmt.status(result.status)}",
                15000,
            )
        self.window.watcher.refresh()
        self.plan_watcher.refresh()

    def _plan_failed(self, message: str, detail: str) -> None:
        self.window.show_error(message, detail)

    def _plan_worker_ended(self, name: str) -> None:
        self.plan_workers.pop(name, None)
        self.update_actions()

    def _run_window_closed(self, window: object) -> None:
        if window in self.run_windows:
            self.run_windows.remove(window)

    # -- planning ---------------------------------------------------------------------------------

    def open_bandwidth(self, job: str = "") -> BandwidthDialog:
        if not job:
            jobs = self.window.selected_jobs()
            job = jobs[0].name if jobs else ""
        dialog = BandwidthDialog(
            [r.job for r in self.window.jobs_model.records()], job, self.window
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def requested(name: str, link: Link, probe: bool) -> None:
            self._call(
                bandwidth(name, link, probe),
                "bandwidth estimation",
                lambda e: dialog.show_estimate(e, link),  # type: ignore[arg-type]
                dialog.show_error,
            )

        dialog.estimate_requested.connect(requested)
        dialog.open()
        self.bandwidthShown.emit(dialog)
        return dialog


class _Relay(QObject):
    """Receives a worker's signals on the GUI thread (a QObject's methods are queued there) and
    hands them to plain callables."""

    def __init__(
        self,
        parent: QObject,
        on_result: Callable[[object], None],
        on_failed: Callable[[str, str], object],
        on_ended: Callable[[], None] | None = None,
        on_stopped: Callable[[str, str], object] | None = None,
    ) -> None:
        super().__init__(parent)
        self.on_result = on_result
        self.on_failed = on_failed
        self.on_ended = on_ended
        self.on_stopped = on_stopped or on_failed

    def result(self, value: object) -> None:
        self.on_result(value)

    def failed(self, message: str, detail: str) -> None:
        self.on_failed(message, detail)

    def stopped(self, message: str, detail: str) -> None:
        self.on_stopped(message, detail)

    def ended(self) -> None:
        if self.on_ended is not None:
            self.on_ended()
        self.deleteLater()
