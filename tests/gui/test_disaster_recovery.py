"""Replica operations, failover plans and planning in the console, against the lab: fail over
from the Replicas view (confirm, pick a point) and undo; a confirmation cancelled changes
nothing; a plan made in one click from a selection, edited, run and undone with each VM's step
arriving live; a failback cancelled from its window (the replica failed over as before, its
points intact), then completed and undone, then completed and committed; a test failover
started and cleaned up; a plan run cancelled in its delay (the VM up stays up, the other is not
touched); each operation's session announced before its end; the plan editor ordering VMs by
drag and drop, with groups and delays saved and read back; the readiness report naming a
missing network mapping; the bandwidth chart; and the new table models without a window.

One store for the module (its job replicated twice, so every replica has two restore points);
every test leaves the replicas Ready again. Waiting is on signals (or `qtbot.waitUntil` on what
they change), never on sleeps.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from PySide6.QtCore import QItemSelectionModel, QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox, QTreeWidgetItem
from pytestqt.qtbot import QtBot

from core.lab.lab import LabState
from core.lab.register import inventories, lab_job, register_lab
from core.lab.topology import LabOptions
from core.model.network import NetworkMap
from core.model.plans import (
    DEFAULT_DELAY,
    FailoverPlan,
    PlanAction,
    PlanItem,
    PlanSession,
    PlanStep,
    StepKind,
)
from core.model.replicas import ReplicaState
from core.model.runs import RunStatus, Severity
from core.planning.bandwidth import Link
from core.plans.readiness import ItemTiming, Problem
from core.plans.run import undo_plan
from core.store.store import Store
from gui.main_window import MainWindow, Page
from gui.models.base import Role
from gui.models.plans import (
    PlanItemsModel,
    PlanProgressModel,
    PlansModel,
    ProblemsModel,
    TimingsModel,
    item_progress,
)
from gui.models.replicas import ReplicasModel, RestorePointsModel
from gui.plan_watcher import PlanRow, read_plans
from gui.replica_ops import SPECS, Op, availability, describe
from gui.snapshot import ReplicaRow, read_home
from gui.views.bandwidth import day_profile, throttle_hours
from gui.views.operations import ConfirmOperationDialog, OperationWindow
from gui.views.plan_editor import MIME_PLAN_ITEM, GroupTree, PlanEditor
from gui.views.plans import PlanRunWindow, ReadinessDialog
from tests.core.failover.conftest import folder_hashes, ok, replica_folder

LAB_OPTIONS = LabOptions(vms=6, disk_mib=(8, 16))
JOB = "DR VMs"
VMS = ("dc01", "web 02 (canary)", "db #2 & replica", "app+cache")
OP_TIMEOUT = 120_000


@dataclass(frozen=True)
class DrLab:
    lab: LabState
    store: Store


@pytest.fixture(scope="module")
def dr(tmp_path_factory: pytest.TempPathFactory, lab: LabState) -> Iterator[DrLab]:
    work = tmp_path_factory.mktemp("dr")
    with Store.open(work / "replicadesk.db") as store:
        register_lab(store, lab, work / "metadata")
        store.jobs.add(lab_job(lab, JOB, VMS))
        ok(store, JOB)
        ok(store, JOB)
        yield DrLab(lab, store)


@pytest.fixture
def window(qtbot: QtBot, dr: DrLab) -> Iterator[MainWindow]:
    w = MainWindow(dr.store, poll_ms=150)
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.replicas_model.rowsInserted, timeout=10_000):
        w.start()
    yield w
    w.workers.wait_all()
    for replica in dr.store.replicas.list(JOB):
        assert replica.state == ReplicaState.READY, f"{replica.replica_name} left {replica.state}"


def replica_row(window: MainWindow, vm: str) -> ReplicaRow:
    [row] = [r for r in window.replicas_model.records() if r.replica.vm_name == vm]
    return row


def select_replicas(window: MainWindow, page: Page, vms: list[str]) -> None:
    window.show_page(page)
    table = window.ready_view.table if page == Page.REPLICAS_READY else window.active_view.table
    table.view.clearSelection()
    ids = {replica_row(window, vm).replica.id for vm in vms}
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    for r in range(table.proxy.rowCount()):
        if table.proxy.index(r, 0).data(Role.KEY) in ids:
            model = table.view.selectionModel()
            model.select(table.proxy.index(r, 0), flags)
            model.setCurrentIndex(
                table.proxy.index(r, 0), QItemSelectionModel.SelectionFlag.NoUpdate
            )
    assert len(table.selected()) == len(vms)


def wait_state(qtbot: QtBot, window: MainWindow, vm: str, state: ReplicaState) -> None:
    def reached() -> None:
        assert replica_row(window, vm).replica.state == state

    qtbot.waitUntil(reached, timeout=30_000)


def open_confirmation(qtbot: QtBot, window: MainWindow, op: Op) -> ConfirmOperationDialog:
    action = window.dr.op_actions[op]
    assert action.isEnabled(), action.statusTip()
    with qtbot.waitSignal(window.dr.confirmationShown, timeout=5_000) as shown:
        action.trigger()
    dialog = shown.args[0]
    assert isinstance(dialog, ConfirmOperationDialog)
    return dialog


def confirm_and_wait(
    qtbot: QtBot, window: MainWindow, dialog: ConfirmOperationDialog
) -> OperationWindow:
    with qtbot.waitSignal(window.dr.operationStarted, timeout=5_000) as started:
        dialog.ok.click()
    op_window = started.args[0]
    assert isinstance(op_window, OperationWindow)
    if op_window.running:
        with qtbot.waitSignal(op_window.ended, timeout=OP_TIMEOUT):
            pass
    assert op_window.result is not None, op_window.details.toPlainText() or op_window.error
    return op_window


def test_fail_over_from_the_replicas_view_to_a_chosen_point_and_undo(
    qtbot: QtBot, window: MainWindow, dr: DrLab
) -> None:
    vm = "dc01"
    select_replicas(window, Page.REPLICAS_READY, [vm])
    row = replica_row(window, vm)
    assert [p.number for p in row.points] == [1, 2]
    enabled = {op for op, a in window.dr.op_actions.items() if a.isEnabled()}
    assert enabled == {Op.FAILOVER, Op.PLANNED_FAILOVER, Op.TEST_FAILOVER}
    assert set(window.dr.op_actions.values()) <= set(window.toolbar.actions())
    assert set(window.dr.op_actions.values()) <= set(window.ready_view.table.actions_for_menu)

    dialog = open_confirmation(qtbot, window, Op.FAILOVER)
    assert dialog.points is not None and dialog.points.number() == 2  # the latest by default
    assert dialog.points.choose(1)
    first = row.points[0]
    text = dialog.text.text()
    assert f"{row.replica.replica_name} will be reverted to restore point 1 of " in text
    assert first.created.astimezone().strftime("%Y-%m-%d %H:%M") in text
    assert "powered on" in text and f"the source VM {vm} is not touched" in text
    op_window = confirm_and_wait(qtbot, window, dialog)
    assert "runs at the DR site" in op_window.state.text()
    qtbot.waitUntil(lambda: "powered on" in op_window.log.toPlainText(), timeout=10_000)
    assert "restore point 1" in op_window.log.toPlainText()
    wait_state(qtbot, window, vm, ReplicaState.FAILOVER)
    assert dr.store.replicas.get(row.replica.id).state == ReplicaState.FAILOVER

    # Failed over: it is on the Active page, where undo, permanent failover and failback apply.
    select_replicas(window, Page.REPLICAS_ACTIVE, [vm])
    enabled = {op for op, a in window.dr.op_actions.items() if a.isEnabled()}
    assert {Op.UNDO_FAILOVER, Op.PERMANENT_FAILOVER, Op.FAILBACK} <= enabled
    assert Op.FAILOVER not in enabled and Op.COMMIT_FAILBACK not in enabled
    # Permanent failover cancelled: nothing changes (the points stay, the state too).
    permanent = open_confirmation(qtbot, window, Op.PERMANENT_FAILOVER)
    assert "restore point(s) and their snapshots are removed" in permanent.text.text()
    assert permanent.warning.isVisibleTo(permanent)
    assert permanent.warning.text() == "This cannot be undone."
    assert permanent.cancel.isDefault()
    permanent.cancel.click()
    assert not window.dr.busy
    assert len(dr.store.replicas.points(row.replica.id)) == 2

    undo = open_confirmation(qtbot, window, Op.UNDO_FAILOVER)
    assert "powered off" in undo.text.text()
    confirm_and_wait(qtbot, window, undo)
    wait_state(qtbot, window, vm, ReplicaState.READY)


def test_cancelling_a_confirmation_changes_nothing(
    qtbot: QtBot, window: MainWindow, dr: DrLab
) -> None:
    vm = "web 02 (canary)"
    row = replica_row(window, vm)
    folder = replica_folder(dr.lab, dr.store, row.replica)
    before = (read_home(dr.store).replicas, dr.store.sessions.list(JOB), folder_hashes(folder))
    for op in (Op.FAILOVER, Op.PLANNED_FAILOVER, Op.TEST_FAILOVER):
        select_replicas(window, Page.REPLICAS_READY, [vm])
        dialog = open_confirmation(qtbot, window, op)
        if dialog.points is not None:
            dialog.points.choose(1)
        with qtbot.waitSignal(dialog.rejected, timeout=2_000):
            if op == Op.TEST_FAILOVER:
                dialog.close()  # closing it is a cancel too
            else:
                dialog.cancel.click()
        assert not window.dr.busy and not window.dr.operation_windows
    after = (read_home(dr.store).replicas, dr.store.sessions.list(JOB), folder_hashes(folder))
    assert after == before


def test_a_plan_made_in_one_click_runs_with_each_step_live(
    qtbot: QtBot, window: MainWindow, dr: DrLab
) -> None:
    vms = ["db #2 & replica", "dc01"]
    select_replicas(window, Page.REPLICAS_READY, vms)
    assert window.dr.act_plan_from_selection.isEnabled()
    with qtbot.waitSignal(window.dr.planCreated, timeout=30_000) as created:
        window.dr.act_plan_from_selection.trigger()
    made = created.args[0]
    groups = {p: [it.vm for it in items] for p, items in made.plan.groups()}
    assert groups == {1: ["dc01"], 2: ["db #2 & replica"]}  # infrastructure before databases
    assert window.page == Page.PLANS
    name = made.plan.name
    qtbot.waitUntil(lambda: window.dr.plans_view.selected_plan() is not None, timeout=10_000)
    assert window.dr.plans_view.selected_plan() == made.plan
    assert window.dr.plans_view.items_model.rowCount() == 2

    # A second's delay after dc01 instead of a minute, through the editor.
    with qtbot.waitSignal(window.dr.editorShown, timeout=5_000) as shown:
        window.dr.act_edit_plan.trigger()
    editor = shown.args[0]
    assert isinstance(editor, PlanEditor)
    editor.tree.setCurrentItem(editor.tree.item_named("dc01"))
    editor.delay.setValue(1)
    with qtbot.waitSignal(editor.finished, timeout=10_000):
        editor.save_button.click()
    assert dr.store.plans.get(name).item("dc01").delay_after == 1

    with qtbot.waitSignal(window.dr.confirmationShown, timeout=5_000) as asked:
        window.dr.act_run_plan.trigger()
    box = asked.args[0]
    assert isinstance(box, QMessageBox) and "2 VMs" in box.text()
    with qtbot.waitSignal(window.dr.planRunStarted, timeout=5_000) as started:
        box.button(QMessageBox.StandardButton.Yes).click()
    run = started.args[0]
    assert isinstance(run, PlanRunWindow)
    seen: list[dict[str, str]] = []
    run.updated.connect(
        lambda _s: seen.append({r.name: r.step for r in run.progress_model.records()})
    )
    session = wait_plan_end(qtbot, run)
    assert session.status == RunStatus.SUCCESS, [s.message for s in session.steps]
    # Steps arrived while the plan ran: dc01 was up while db still waited its turn.
    assert any(s["dc01"] != "Waiting" and s["db #2 & replica"] == "Waiting" for s in seen), seen
    assert len(seen) >= 3
    final = {r.name: r for r in run.progress_model.records()}
    assert {r.step for r in final.values()} == {"Up"}
    kinds = [(s.item, s.kind) for s in session.steps if s.item]
    assert kinds.index(("dc01", StepKind.UP)) < kinds.index(("db #2 & replica", StepKind.START))
    assert run.steps_model.rowCount() == len(session.steps)
    for vm in vms:
        wait_state(qtbot, window, vm, ReplicaState.FAILOVER)
    run.close()

    qtbot.waitUntil(lambda: window.dr.act_undo_plan.isEnabled(), timeout=10_000)
    with qtbot.waitSignal(window.dr.confirmationShown, timeout=5_000) as asked:
        window.dr.act_undo_plan.trigger()
    with qtbot.waitSignal(window.dr.planRunStarted, timeout=5_000) as started:
        asked.args[0].button(QMessageBox.StandardButton.Yes).click()
    undo = wait_plan_end(qtbot, started.args[0])
    assert undo.status == RunStatus.SUCCESS
    for vm in vms:
        wait_state(qtbot, window, vm, ReplicaState.READY)


def wait_plan_end(qtbot: QtBot, run: PlanRunWindow) -> PlanSession:
    if run.session is None or run.session.ended is None:
        with qtbot.waitSignal(
            run.updated, timeout=OP_TIMEOUT, check_params_cb=lambda s: s.ended is not None
        ):
            pass
    assert run.session is not None
    return run.session


def test_readiness_report_shows_a_missing_mapping(
    qtbot: QtBot, window: MainWindow, dr: DrLab
) -> None:
    vm = "app+cache"
    prod, _ = inventories(dr.lab)
    networks = {n.network_name for n in prod.vms_named(vm)[0].nics}
    job = dr.store.jobs.get(JOB)
    dr.store.plans.add(FailoverPlan("Cache first", (PlanItem(vm, delay_after=0),)))
    dropped = next(m for m in job.network.mappings if m.source in networks)
    rows = tuple(m for m in job.network.mappings if m is not dropped)
    dr.store.jobs.update(dataclasses.replace(job, network=NetworkMap(rows)))
    try:
        window.show_page(Page.PLANS)
        qtbot.waitUntil(lambda: window.dr.plans_model.row_of("Cache first") >= 0, timeout=10_000)
        assert window.dr.plans_view.table.select_key("Cache first")
        with qtbot.waitSignal(window.dr.readinessShown, timeout=5_000) as shown:
            window.dr.act_readiness.trigger()
        dialog = shown.args[0]
        assert isinstance(dialog, ReadinessDialog)
        with qtbot.waitSignal(dialog.reported, timeout=60_000):
            pass
        problems = dialog.problems_model
        network = [
            r
            for r in range(problems.rowCount())
            if problems.index(r, ProblemsModel.CHECK).data() == "Network mapping"
        ]
        assert network, [p.message for p in problems.records()]
        r = network[0]
        assert dropped.source in problems.index(r, ProblemsModel.PROBLEM).data()
        assert "network mapping" in problems.index(r, ProblemsModel.FIX).data()
        assert problems.index(r, ProblemsModel.ITEM).data() == vm
        assert "not ready" in dialog.verdict.text()
        assert "Estimated recovery time" in dialog.estimate.text()
        dialog.close()
    finally:
        dr.store.jobs.update(job)
        dr.store.plans.remove("Cache first")


def test_bandwidth_estimate_draws_required_against_available(
    qtbot: QtBot, window: MainWindow
) -> None:
    window.show_page(Page.JOBS)
    assert window.jobs_view.select_key(JOB)
    with qtbot.waitSignal(window.dr.bandwidthShown, timeout=5_000) as shown:
        window.dr.act_bandwidth.trigger()
    dialog = shown.args[0]
    assert dialog.job.currentText() == JOB
    dialog.link.setValue(50)
    dialog.add_throttle(10, 8, 18)
    with qtbot.waitSignal(dialog.estimated, timeout=30_000):
        dialog.go.click()
    assert dialog.estimate is not None and dialog.estimate.job == JOB
    hours = dialog.chart.hours
    assert [h.available_mbit for h in hours[8:18]] == [10.0] * 10
    assert hours[7].available_mbit == 50 and hours[18].available_mbit == 50
    names = [s.name() for s in dialog.chart.chart().series()]
    assert "Throttled to 10 Mbit/s" in names and "Available to the job" in names
    assert any(n.startswith("Required:") for n in names)
    assert "Required bandwidth" in dialog.summary.text()
    dialog.close()


# -- models and pure logic, without a window ------------------------------------------------------


def test_replica_rows_show_points_with_sizes_and_last_run(dr: DrLab) -> None:
    rows = read_home(dr.store).replicas
    model = ReplicasModel()
    model.set_rows(rows)
    assert model.rowCount() == len(VMS)
    sessions = dr.store.sessions.list(JOB)
    newest_run = max(s.id for s in sessions if s.trigger == "manual")
    for r in range(model.rowCount()):
        row = model.record(r)
        assert row.last_run is not None and row.last_run.id == newest_run
        assert "(Success)" in model.index(r, ReplicasModel.LAST_RUN).data()
        assert model.index(r, ReplicasModel.POINTS).data() == "2"
        assert len(row.point_sizes) == 2 and all(s is not None for s in row.point_sizes)
        assert model.index(r, ReplicasModel.LAST_SIZE).data(Role.SORT) == row.point_sizes[-1]
        assert not row.test_running
    points = RestorePointsModel()
    points.set_replica(rows[0])
    assert points.rowCount() == 2
    first = rows[0].points[0]
    task = next(
        t
        for t in dr.store.sessions.tasks(first.session_id or 0)
        if t.vm_moref == rows[0].replica.vm_moref
    )
    row0 = points.row_of((first.replica_id, first.number))
    assert points.index(row0, RestorePointsModel.SIZE).data(Role.SORT) == (
        task.stats.transferred_bytes
    )
    points.set_replica(None)
    assert points.rowCount() == 0


def test_operations_follow_the_replica_state(dr: DrLab) -> None:
    row = read_home(dr.store).replicas[0]
    job = dr.store.jobs.get(JOB)
    assert availability(Op.FAILOVER, row) == ""
    assert "needs the replica" in availability(Op.UNDO_FAILOVER, row)
    assert "No test failover" in availability(Op.TEST_CLEANUP, row)
    assert "in progress" in availability(Op.FAILOVER, row, busy=True)
    failed_over = dataclasses.replace(
        row, replica=dataclasses.replace(row.replica, state=ReplicaState.FAILOVER)
    )
    for op in (Op.UNDO_FAILOVER, Op.PERMANENT_FAILOVER, Op.FAILBACK, Op.TEST_FAILOVER):
        assert availability(op, failed_over) == "", op
    assert availability(Op.FAILOVER, failed_over)
    testing = dataclasses.replace(row, test_running=True)
    assert availability(Op.TEST_CLEANUP, testing) == ""
    assert "clean it up first" in availability(Op.TEST_FAILOVER, testing)
    empty = dataclasses.replace(row, points=(), point_sizes=())
    assert "no restore point" in availability(Op.FAILOVER, empty)
    text = describe(Op.TEST_FAILOVER, row, job, 1)
    assert f"{row.replica.replica_name}_test" in text and "restore point 1 of" in text
    assert "isolated network" in text
    text = describe(Op.FAILBACK, failed_over, job, target=_new_location("n1"))
    assert "a new VM n1 is created at production" in text and "commit or undo" in text


def _new_location(name: str) -> object:
    from core.failover.failback import NewLocation

    return NewLocation(name, "host-1", "datastore-1")


def _step(n: int, kind: StepKind, item: str, severity: Severity = Severity.INFO) -> PlanStep:
    at = dt.datetime(2026, 11, 26, 1, 2, n, tzinfo=dt.UTC)
    return PlanStep(n, 7, at, kind, f"{item} {kind}", item, severity=severity)


def test_plan_models_and_live_progress_without_a_window(dr: DrLab) -> None:
    plan = FailoverPlan(
        "Tiers",
        (
            PlanItem("web-01", priority=4),
            PlanItem("dc01", priority=1),
            PlanItem("db", priority=2, delay_after=5),
            PlanItem("db2", priority=2, depends_on=("db",)),
        ),
    )
    items = PlanItemsModel()
    from gui.models.plans import item_rows

    items.set_rows(item_rows(plan))
    order = [items.record(r).name for r in range(items.rowCount())]
    assert order == ["dc01", "db", "db2", "web-01"]
    assert items.index(2, PlanItemsModel.GROUP).data() == "2 (#2)"
    assert items.index(2, PlanItemsModel.DEPENDS).data() == "db"
    assert items.index(1, PlanItemsModel.DELAY).data() == "0:05"

    start = dt.datetime(2026, 11, 26, 1, 2, tzinfo=dt.UTC)
    running = PlanSession(7, "Tiers", PlanAction.RUN, RunStatus.RUNNING, start)
    assert {p.step for p in item_progress(plan, running)} == {"Waiting"}
    steps = (
        _step(1, StepKind.START, "dc01"),
        _step(2, StepKind.POWERED_ON, "dc01"),
        _step(3, StepKind.HEARTBEAT, "dc01"),
        _step(4, StepKind.UP, "dc01"),
        _step(5, StepKind.START, "db"),
        _step(6, StepKind.INFO, "db", Severity.WARNING),
    )
    live = dataclasses.replace(running, steps=steps)
    progress = {p.name: p for p in item_progress(plan, live)}
    assert progress["dc01"].step == "Up" and progress["dc01"].status == RunStatus.SUCCESS
    assert progress["db"].step == "Starting" and progress["db"].warnings == 1
    assert progress["db2"].step == "Waiting" and progress["web-01"].step == "Waiting"
    model = PlanProgressModel()
    model.set_rows(item_progress(plan, live))
    r = model.row_of("db")
    assert model.index(r, PlanProgressModel.STEP).data() == "Starting (1 warning(s))"
    assert model.index(r, 0).data(Role.STATUS) == RunStatus.RUNNING
    failed = dataclasses.replace(
        live, steps=(*steps, _step(7, StepKind.FAILED, "db", Severity.ERROR))
    )
    model.set_rows(item_progress(plan, failed))
    assert model.index(r, 0).data(Role.STATUS) == RunStatus.FAILED

    plans = PlansModel()
    data = read_plans(dr.store)
    plans.set_rows([*data.plans, PlanRow(plan, live)])
    row = plans.row_of("Tiers")
    assert plans.index(row, PlansModel.VMS).data() == "4"
    assert plans.index(row, PlansModel.GROUPS).data() == "1: 1, 2: 2, 4: 1"
    assert plans.index(row, PlansModel.LAST).data().endswith("(running)")

    problems = ProblemsModel()
    problems.set_rows([Problem("network", "NIC 1 has no mapping", "add a row", "db")])
    assert problems.index(0, ProblemsModel.CHECK).data() == "Network mapping"
    assert problems.index(0, ProblemsModel.FIX).data() == "add a row"
    timings = TimingsModel()
    timings.set_rows([ItemTiming("db", 42.0, True), ItemTiming("dc01", 30.0, False)])
    assert timings.index(0, TimingsModel.SECONDS).data() == "0:42"
    assert timings.index(1, TimingsModel.MEASURED).data().startswith("assumed")


def test_day_profile_of_a_throttled_link() -> None:
    from core.model.schedule import BackupWindow

    link = Link(100, (throttle_hours(20, 22, 6),), sharing_jobs=2)
    closed = frozenset(range(24)) - {12}
    window = BackupWindow((closed,) * 7)
    hours = day_profile(link, window, dt.date(2026, 11, 26))
    assert [h.throttle_mbit for h in hours[22:]] == [20, 20]
    assert hours[3].available_mbit == 10  # 20 Mbit/s shared by two jobs
    assert hours[10].available_mbit == 50 and hours[10].throttle_mbit is None
    assert hours[12].available_mbit == 0 and not hours[12].in_window
    with pytest.raises(Exception, match="covers no hour"):
        throttle_hours(10, 5, 5)


# -- cancel, started, failback, test failover and the plan editor ---------------------------------


def points_of(store: Store, replica_id: int) -> list[tuple[int, dt.datetime, int | None]]:
    return [(p.number, p.created, p.session_id) for p in store.replicas.points(replica_id)]


def power_state(lab: LabState, name: str) -> str | None:
    """The power state of DR VM `name` (None: there is no such VM)."""
    _, dr_inv = inventories(lab)
    found = dr_inv.vms_named(name)
    return found[0].power_state if found else None


def start_confirmed(
    qtbot: QtBot, window: MainWindow, dialog: ConfirmOperationDialog
) -> tuple[OperationWindow, list[str]]:
    """Accept the confirmation; the operation's window and the order its signals arrive in."""
    with qtbot.waitSignal(window.dr.operationStarted, timeout=5_000) as started:
        dialog.ok.click()
    op_window = started.args[0]
    assert isinstance(op_window, OperationWindow)
    # Connected before the event loop runs again: the worker's queued signals come after.
    seen: list[str] = []
    op_window.sessionStarted.connect(lambda sid: seen.append(f"started {sid}"))
    op_window.ended.connect(lambda ok: seen.append(f"ended {ok}"))
    return op_window, seen


def wait_ended(qtbot: QtBot, op_window: OperationWindow) -> None:
    if op_window.running:
        with qtbot.waitSignal(op_window.ended, timeout=OP_TIMEOUT):
            pass


def run_op(qtbot: QtBot, window: MainWindow, page: Page, vm: str, op: Op) -> OperationWindow:
    """`op` on `vm` from the Replicas page `page`, confirmed; it must succeed, its session
    announced before its end."""
    select_replicas(window, page, [vm])
    op_window, seen = start_confirmed(qtbot, window, open_confirmation(qtbot, window, op))
    wait_ended(qtbot, op_window)
    assert op_window.result is not None, op_window.details.toPlainText() or op_window.error
    assert seen == [f"started {op_window.result.session_id}", "ended True"]
    assert op_window.session_id == op_window.result.session_id
    return op_window


def test_failback_cancelled_then_undone_then_committed_from_the_replicas_view(
    qtbot: QtBot, window: MainWindow, dr: DrLab
) -> None:
    vm = "web 02 (canary)"
    replica = replica_row(window, vm).replica
    points = points_of(dr.store, replica.id)
    run_op(qtbot, window, Page.REPLICAS_READY, vm, Op.FAILOVER)
    wait_state(qtbot, window, vm, ReplicaState.FAILOVER)

    # Failback, cancelled from its window as soon as core says it started.
    select_replicas(window, Page.REPLICAS_ACTIVE, [vm])
    dialog = open_confirmation(qtbot, window, Op.FAILBACK)
    assert dialog.target is not None and dialog.target.target() is None  # the original VM
    op_window, seen = start_confirmed(qtbot, window, dialog)
    assert op_window.cancel_button.isVisibleTo(op_window)
    assert op_window.note.text() == SPECS[Op.FAILBACK].cancel
    op_window.sessionStarted.connect(lambda _sid: op_window.cancel_button.click())
    wait_ended(qtbot, op_window)
    assert op_window.result is None and not op_window.error, op_window.error
    assert "state Failover" in op_window.stopped  # where core stopped, and what that left
    assert op_window.state.text() == f"Cancelled {op_window.stopped}"
    assert op_window.bar.value() == 0
    assert not op_window.cancel_button.isVisibleTo(op_window)
    assert seen == [f"started {op_window.session_id}", "ended False"]
    session = dr.store.sessions.get(op_window.session_id or 0)
    assert session.trigger == "failback" and session.status == RunStatus.FAILED
    assert "cancelled" in session_text(dr.store, session.id)
    # What core promises: the replica runs again at the DR site, failed over, points intact.
    assert dr.store.replicas.get(replica.id).state == ReplicaState.FAILOVER
    assert power_state(dr.lab, replica.replica_name) == "poweredOn"
    assert points_of(dr.store, replica.id) == points
    qtbot.waitUntil(lambda: not window.dr.busy, timeout=10_000)
    assert "cancelled" in window.statusBar().currentMessage()
    op_window.close()

    # Failback again, to its end this time, then undo it: failed over as before.
    done = run_op(qtbot, window, Page.REPLICAS_ACTIVE, vm, Op.FAILBACK)
    assert done.bar.maximum() == 1  # the progress bar went to its end
    qtbot.waitUntil(lambda: "is powered on at production" in done.log.toPlainText(), timeout=10_000)
    wait_state(qtbot, window, vm, ReplicaState.FAILBACK)
    select_replicas(window, Page.REPLICAS_ACTIVE, [vm])
    enabled = {op for op, a in window.dr.op_actions.items() if a.isEnabled()}
    assert {Op.COMMIT_FAILBACK, Op.UNDO_FAILBACK} <= enabled and Op.FAILBACK not in enabled
    undo = run_op(qtbot, window, Page.REPLICAS_ACTIVE, vm, Op.UNDO_FAILBACK)
    assert not undo.cancel_button.isVisibleTo(undo)  # an undo cannot be stopped half way
    wait_state(qtbot, window, vm, ReplicaState.FAILOVER)
    assert power_state(dr.lab, replica.replica_name) == "poweredOn"

    # Failback and commit: the replica is Ready with its restore points, production runs.
    run_op(qtbot, window, Page.REPLICAS_ACTIVE, vm, Op.FAILBACK)
    wait_state(qtbot, window, vm, ReplicaState.FAILBACK)
    commit = run_op(qtbot, window, Page.REPLICAS_ACTIVE, vm, Op.COMMIT_FAILBACK)
    assert "Commit Failback done" in commit.state.text()
    wait_state(qtbot, window, vm, ReplicaState.READY)
    assert points_of(dr.store, replica.id) == points
    prod, _ = inventories(dr.lab)
    assert prod.vms_named(vm)[0].power_state == "poweredOn"


def session_text(store: Store, session_id: int) -> str:
    lines = [e.message for e in store.sessions.get(session_id).log]
    lines += [e.message for t in store.sessions.tasks(session_id) for e in t.log]
    return "\n".join(lines)


def test_test_failover_started_and_cleaned_up_from_the_console(
    qtbot: QtBot, window: MainWindow, dr: DrLab
) -> None:
    vm = "app+cache"
    replica = replica_row(window, vm).replica
    test_vm = replica.replica_name + "_test"
    points = points_of(dr.store, replica.id)
    assert power_state(dr.lab, test_vm) is None
    select_replicas(window, Page.REPLICAS_READY, [vm])
    dialog = open_confirmation(qtbot, window, Op.TEST_FAILOVER)
    assert dialog.points is not None and dialog.points.choose(1)
    op_window, seen = start_confirmed(qtbot, window, dialog)
    assert not op_window.cancel_button.isVisibleTo(op_window)
    assert "cannot be stopped half way" in op_window.note.text()
    wait_ended(qtbot, op_window)
    assert op_window.result is not None, op_window.details.toPlainText() or op_window.error
    assert seen == [f"started {op_window.result.session_id}", "ended True"]
    assert f"Test VM {test_vm} is up on " in op_window.state.text()
    assert power_state(dr.lab, test_vm) == "poweredOn"
    qtbot.waitUntil(lambda: replica_row(window, vm).test_running, timeout=10_000)
    assert replica_row(window, vm).replica.state == ReplicaState.READY  # replication goes on

    select_replicas(window, Page.REPLICAS_READY, [vm])
    enabled = {op for op, a in window.dr.op_actions.items() if a.isEnabled()}
    assert Op.TEST_CLEANUP in enabled and Op.TEST_FAILOVER not in enabled
    run_op(qtbot, window, Page.REPLICAS_READY, vm, Op.TEST_CLEANUP)
    qtbot.waitUntil(lambda: not replica_row(window, vm).test_running, timeout=10_000)
    assert power_state(dr.lab, test_vm) is None
    assert dr.store.replicas.get(replica.id).state == ReplicaState.READY
    assert points_of(dr.store, replica.id) == points


def open_run(qtbot: QtBot, window: MainWindow, name: str, action: PlanAction) -> PlanRunWindow:
    window.show_page(Page.PLANS)
    qtbot.waitUntil(lambda: window.dr.plans_model.row_of(name) >= 0, timeout=10_000)
    assert window.dr.plans_view.table.select_key(name)
    act = {
        PlanAction.RUN: window.dr.act_run_plan,
        PlanAction.TEST: window.dr.act_test_plan,
        PlanAction.UNDO: window.dr.act_undo_plan,
    }[action]
    qtbot.waitUntil(act.isEnabled, timeout=10_000)
    with qtbot.waitSignal(window.dr.confirmationShown, timeout=5_000) as asked:
        act.trigger()
    with qtbot.waitSignal(window.dr.planRunStarted, timeout=5_000) as started:
        asked.args[0].button(QMessageBox.StandardButton.Yes).click()
    run = started.args[0]
    assert isinstance(run, PlanRunWindow)
    return run


def test_a_plan_run_cancelled_in_its_delay_keeps_what_is_up(
    qtbot: QtBot, window: MainWindow, dr: DrLab
) -> None:
    first, second = "dc01", "db #2 & replica"
    name = "Cancelled in its delay"
    ids = {vm: replica_row(window, vm).replica.id for vm in (first, second)}
    points = {vm: points_of(dr.store, rid) for vm, rid in ids.items()}
    untouched = replica_folder(dr.lab, dr.store, dr.store.replicas.get(ids[second]))
    hashes = folder_hashes(untouched)
    # An hour's delay after the first group: the cancel lands in it, the second never starts.
    plan = FailoverPlan(
        name,
        (
            PlanItem(first, priority=1, delay_after=3600, wait_heartbeat=False),
            PlanItem(second, priority=2, wait_heartbeat=False),
        ),
    )
    dr.store.plans.add(plan)
    try:
        run = open_run(qtbot, window, name, PlanAction.RUN)
        assert run.cancel_button.isVisibleTo(run) and "undo the plan" in run.note.text()
        seen: list[str] = []
        run.sessionStarted.connect(lambda sid: seen.append(f"started {sid}"))

        def first_up() -> None:
            steps = {r.name: r.step for r in run.progress_model.records()}
            assert steps[first] == "Up" and steps[second] == "Waiting", steps

        qtbot.waitUntil(first_up, timeout=OP_TIMEOUT)
        assert run.session is not None and run.session.ended is None
        assert seen == [f"started {run.session_id}"]
        run.cancel_button.click()
        assert not run.cancel_button.isEnabled()
        session = wait_plan_end(qtbot, run)
        qtbot.waitUntil(lambda: run.result is not None, timeout=10_000)
        assert run.result is not None and run.result.cancelled
        assert session.status == RunStatus.FAILED
        messages = [s.message for s in session.steps]
        assert any("then cancelled" in m for m in messages), messages
        assert any(m.startswith("the plan was cancelled: 1 VM(s) up") for m in messages)
        steps = {r.name: r.step for r in run.progress_model.records()}
        assert steps == {first: "Up", second: "Skipped"}, steps
        assert "cancelled" in run.state.text() and "1 VM(s) not started" in run.state.text()
        assert run.counts.text() == "1 of 2 done, 1 not started"
        assert not run.cancel_button.isVisibleTo(run)
        # The VM up stays up (failed over); the other was not touched; every point is there.
        assert dr.store.replicas.get(ids[first]).state == ReplicaState.FAILOVER
        assert dr.store.replicas.get(ids[second]).state == ReplicaState.READY
        assert folder_hashes(untouched) == hashes
        assert {vm: points_of(dr.store, rid) for vm, rid in ids.items()} == points
        run.close()

        undo = open_run(qtbot, window, name, PlanAction.UNDO)
        assert not undo.cancel_button.isVisibleTo(undo)
        assert wait_plan_end(qtbot, undo).status == RunStatus.SUCCESS
        wait_state(qtbot, window, first, ReplicaState.READY)
        undo.close()
    finally:
        window.workers.wait_all()
        if dr.store.replicas.get(ids[first]).state == ReplicaState.FAILOVER:
            undo_plan(dr.store, name)
        dr.store.plans.remove(name)


def tree_drop(tree: GroupTree, mime: QMimeData, at: QPoint) -> bool:
    """What the end of a drag does to the tree at `at` (viewport coordinates): enter, move,
    drop. Whether the tree took it."""
    port = tree.viewport()
    pos = QPointF(at)
    actions = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(pos, actions, mime, buttons, mods)
    QApplication.sendEvent(port, enter)
    if not enter.isAccepted():
        return False
    move = QDragMoveEvent(pos, actions, mime, buttons, mods)
    QApplication.sendEvent(port, move)
    if not move.isAccepted():
        return False
    drop = QDropEvent(pos, actions, mime, buttons, mods)
    QApplication.sendEvent(port, drop)
    return drop.isAccepted()


def above(tree: GroupTree, item: QTreeWidgetItem) -> QPoint:
    rect = tree.visualItemRect(item)
    return QPoint(rect.center().x(), rect.top() + 2)


def test_plan_editor_orders_by_drag_and_saves_groups_and_delays(
    qtbot: QtBot, window: MainWindow, dr: DrLab
) -> None:
    name = "Edited by drag"
    vms = ("dc01", "db #2 & replica", "app+cache")
    dr.store.plans.add(FailoverPlan(name, tuple(PlanItem(vm, priority=3) for vm in vms)))
    try:
        window.show_page(Page.PLANS)
        qtbot.waitUntil(lambda: window.dr.plans_model.row_of(name) >= 0, timeout=10_000)
        assert window.dr.plans_view.table.select_key(name)
        with qtbot.waitSignal(window.dr.editorShown, timeout=5_000) as shown:
            window.dr.act_edit_plan.trigger()
        editor = shown.args[0]
        assert isinstance(editor, PlanEditor)
        tree = editor.tree
        assert tree.order() == [(3, vm) for vm in vms]

        # app+cache dragged above dc01: first of its group.
        app, dc = tree.item_named("app+cache"), tree.item_named("dc01")
        assert app is not None and dc is not None
        assert tree_drop(tree, tree.mimeData([app]), above(tree, dc))
        assert tree.order() == [(3, "app+cache"), (3, "dc01"), (3, "db #2 & replica")]
        # db dropped on the Priority 1 group: the end of that group.
        db = tree.item_named("db #2 & replica")
        assert db is not None
        group = tree.groups[1]
        assert tree_drop(tree, tree.mimeData([db]), tree.visualItemRect(group).center())
        assert tree.order() == [(1, "db #2 & replica"), (3, "app+cache"), (3, "dc01")]
        assert tree.currentItem() is db and editor.priority.currentData() == 1
        # Refused: another application's drag, and a VM this plan does not have.
        foreign = QMimeData()
        foreign.setText("dc01")
        assert not tree_drop(tree, foreign, above(tree, db))
        stranger = QMimeData()
        stranger.setData(MIME_PLAN_ITEM, json.dumps("web 02 (canary)").encode())
        assert not tree_drop(tree, stranger, above(tree, db))
        assert tree.order() == [(1, "db #2 & replica"), (3, "app+cache"), (3, "dc01")]

        # dc01 to priority group 5 through the box, with a delay and no heartbeat wait.
        tree.setCurrentItem(tree.item_named("dc01"))
        editor.priority.setCurrentIndex(4)
        editor.priority.activated.emit(4)
        editor.delay.setValue(42)
        editor.heartbeat.setChecked(False)
        tree.setCurrentItem(tree.item_named("db #2 & replica"))
        editor.delay.setValue(5)
        assert tree.order() == [(1, "db #2 & replica"), (3, "app+cache"), (5, "dc01")]
        with qtbot.waitSignal(editor.finished, timeout=10_000):
            editor.save_button.click()
        assert editor.result() == PlanEditor.DialogCode.Accepted

        stored = dr.store.plans.get(name)
        groups = {p: [it.name for it in items] for p, items in stored.groups()}
        assert groups == {1: ["db #2 & replica"], 3: ["app+cache"], 5: ["dc01"]}
        assert stored.item("dc01").delay_after == 42 and not stored.item("dc01").wait_heartbeat
        assert stored.item("db #2 & replica").delay_after == 5
        assert stored.item("app+cache").delay_after == DEFAULT_DELAY
        # The Plans page reads it back: the VMs in that run order, with their groups and delays.
        shown = window.dr.plans_view.items

        def run_order() -> None:
            rows = [
                (
                    shown.proxy.index(r, PlanItemsModel.VM).data(),
                    shown.proxy.index(r, PlanItemsModel.GROUP).data(),
                    shown.proxy.index(r, PlanItemsModel.DELAY).data(),
                )
                for r in range(shown.proxy.rowCount())
            ]
            assert rows == [
                ("db #2 & replica", "1 (#1)", "0:05"),
                ("app+cache", "3 (#1)", "1:00"),
                ("dc01", "5 (#1)", "0:42"),
            ], rows

        qtbot.waitUntil(run_order, timeout=10_000)
    finally:
        dr.store.plans.remove(name)
