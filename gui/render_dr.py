"""The DR side of `replicadesk console --render`: replica operations, failover plans, planning.

Called by `gui.render.render_views` with the console open on the lab after its job ran twice.
Drives the console as a user would (select, confirm, watch): fails a replica over to an older
restore point through its confirmation and operation window, shows the Replicas > Active page
with it, every operation's confirmation, a failback cancelled from its window (running with its
Cancel, then what the cancel left), a plan made in one click from a selection, its editor and
readiness report, a run of it with every VM's step and its undo, a run cancelled in its delay,
and the bandwidth estimation chart. Waiting is on signals, as in gui.render.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QWidget

from core.errors import ReplicaDeskError
from core.model.plans import PlanAction
from core.model.replicas import ReplicaState
from gui.replica_ops import ORDER, Op, OpRequest
from gui.snapshot import ReplicaRow
from gui.views.operations import ConfirmOperationDialog

Save = Callable[[QWidget, str], Path]

FAILED_OVER_VM = "dc01"
READY_VM = "web 02 (canary)"
PLAN_VMS = ("db #2 & replica", "app+cache", "web 02 (canary)")
DIALOG_SIZE = (720, 0)  # width; the height is the dialog's own


def _row(window: object, vm: str) -> ReplicaRow:
    from gui.main_window import MainWindow

    assert isinstance(window, MainWindow)
    for r in window.replicas_model.records():
        if isinstance(r, ReplicaRow) and r.replica.vm_name == vm:
            return r
    raise ReplicaDeskError(f"the console shows no replica of {vm!r}")


def render_dr(window: object, save: Save, job: str) -> list[Path]:
    from gui.main_window import MainWindow, Page
    from gui.render import settle, wait_for

    assert isinstance(window, MainWindow)
    dr = window.dr
    paths: list[Path] = []

    def select(page: Page, vms: tuple[str, ...]) -> None:
        window.show_page(page)
        table = window.ready_view.table if page == Page.REPLICAS_READY else window.active_view.table
        table.view.clearSelection()
        from PySide6.QtCore import QItemSelectionModel

        from gui.models.base import Role

        ids = {_row(window, vm).replica.id for vm in vms}
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        model = table.view.selectionModel()
        for r in range(table.proxy.rowCount()):
            index = table.proxy.index(r, 0)
            if index.data(Role.KEY) in ids:
                # Current first: the restore points follow the current row when selected.
                model.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.NoUpdate)
                model.select(index, flags)
        settle()

    def shot(dialog: QWidget, name: str) -> None:
        dialog.adjustSize()
        dialog.resize(max(dialog.width(), DIALOG_SIZE[0]), dialog.sizeHint().height())
        paths.append(save(dialog, name))

    # Failover Now to the older point, confirmed, followed in its operation window.
    select(Page.REPLICAS_READY, (FAILED_OVER_VM,))
    confirm = dr.confirm(Op.FAILOVER)
    if confirm is None:
        raise ReplicaDeskError(f"Failover Now is not offered for {FAILED_OVER_VM}")
    if confirm.points is not None:
        confirm.points.choose(1)
    shot(confirm, "confirm-failover-now")
    with_window: list[object] = []
    dr.operationStarted.connect(with_window.append)
    confirm.ok.click()
    op_window = with_window[0]
    from gui.views.operations import OperationWindow

    assert isinstance(op_window, OperationWindow)
    op_window.resize(760, 460)
    wait_for(op_window.ended, 120, lambda: not op_window.running)
    wait_for(window.watcher.sessionChanged, 10, lambda: "powered on" in op_window.log.toPlainText())
    paths.append(save(op_window, "operation-failover"))
    op_window.close()
    wait_for(
        window.watcher.replicasChanged,
        10,
        lambda: _row(window, FAILED_OVER_VM).replica.state != ReplicaState.READY,
    )
    select(Page.REPLICAS_ACTIVE, (FAILED_OVER_VM,))
    window.active_view.table.fit_columns()
    paths.append(save(window, "replicas-failed-over"))

    # Every other confirmation, on a replica in a state that offers it.
    failed_over = _row(window, FAILED_OVER_VM)
    ready = _row(window, READY_VM)
    rows = {
        Op.PLANNED_FAILOVER: ready,
        Op.TEST_FAILOVER: ready,
        Op.UNDO_FAILOVER: failed_over,
        Op.PERMANENT_FAILOVER: failed_over,
        Op.FAILBACK: failed_over,
        # States the lab run has not reached: the dialogs of those rows, as they would be.
        Op.COMMIT_FAILBACK: dataclasses.replace(
            failed_over,
            replica=dataclasses.replace(failed_over.replica, state=ReplicaState.FAILBACK),
        ),
        Op.UNDO_FAILBACK: dataclasses.replace(
            failed_over,
            replica=dataclasses.replace(failed_over.replica, state=ReplicaState.FAILBACK),
        ),
        Op.TEST_CLEANUP: dataclasses.replace(ready, test_running=True),
    }
    inventory = window.inventory_model.inventories.get(failed_over.replica.source_server)
    for op in ORDER:
        if op == Op.FAILOVER:
            continue
        row = rows[op]
        dialog = ConfirmOperationDialog(op, row, dr.job_of(row.replica.job), inventory, window)
        dialog.show()
        slug = str(op).lower().replace(" ", "-")
        shot(dialog, f"confirm-{slug}")
        if op == Op.FAILBACK and dialog.target is not None:
            dialog.target.new.setChecked(True)
            shot(dialog, "confirm-failback-new-location")
        dialog.reject()
        dialog.deleteLater()

    # A failback, cancelled from its window as soon as core has started it: the replica runs on.
    from gui.views.operations import OperationWindow

    failback = dr.start_operation(OpRequest(Op.FAILBACK, failed_over.replica))
    if not isinstance(failback, OperationWindow):
        raise ReplicaDeskError(f"Failback of {FAILED_OVER_VM} did not start")
    failback.resize(760, 460)

    def started(_session: int) -> None:
        paths.append(save(failback, "operation-failback-cancel"))
        failback.cancel_button.click()

    failback.sessionStarted.connect(started)
    wait_for(failback.ended, 120, lambda: not failback.running)
    wait_for(window.watcher.sessionChanged, 10, lambda: "cancelled" in failback.log.toPlainText())
    paths.append(save(failback, "operation-failback-cancelled"))
    failback.close()

    # One click from a selection to a plan; its editor and readiness report.
    select(Page.REPLICAS_READY, PLAN_VMS)
    created: list[object] = []
    dr.planCreated.connect(created.append)
    dr.plan_from_selection()
    wait_for(dr.planCreated, 60, lambda: bool(created))
    if not created:
        raise ReplicaDeskError("one-click planning did not make a plan in 60 s")
    plan = created[0].plan  # type: ignore[attr-defined]
    wait_for(dr.plan_watcher.plansChanged, 10, lambda: dr.plans_view.selected_plan() is not None)
    # Short delays, so the run in the picture takes seconds (what the editor would save).
    quick = dataclasses.replace(
        plan, items=tuple(dataclasses.replace(it, delay_after=2) for it in plan.items)
    )
    window.store.plans.update(quick)
    dr.plan_watcher.refresh()
    wait_for(
        dr.plan_watcher.plansChanged,
        10,
        lambda: dr.plans_view.selected_plan() == quick,
    )
    editor = dr.edit_plan(quick)
    editor.resize(1000, 680)
    chosen = editor.tree.item_named(PLAN_VMS[1])
    if chosen is not None:
        editor.tree.setCurrentItem(chosen)
    paths.append(save(editor, "plan-editor"))
    editor.reject()
    report = dr.open_readiness(quick.name)
    report.resize(1000, 640)
    wait_for(report.reported, 60, lambda: report.report is not None)
    report.fit_problems()
    paths.append(save(report, "plan-readiness"))
    report.close()
    # The same report with a network mapping gone: what blocks, and how to fix it.
    definition = window.store.jobs.get(job)
    used = {
        n.network_name
        for inv in window.inventory_model.inventories.values()
        for v in inv.vms
        if v.name in PLAN_VMS
        for n in v.nics
    }
    kept = tuple(m for m in definition.network.mappings if m.source not in used)
    window.store.jobs.update(
        dataclasses.replace(
            definition, network=dataclasses.replace(definition.network, mappings=kept)
        )
    )
    try:
        report = dr.open_readiness(quick.name)
        report.resize(1000, 640)
        wait_for(report.reported, 60, lambda: report.report is not None)
        report.fit_problems()
        paths.append(save(report, "plan-readiness-missing-mapping"))
        report.close()
    finally:
        window.store.jobs.update(definition)

    # Run it, every VM's step live, then undo it.
    run = dr.start_plan(quick, PlanAction.RUN)
    run.resize(1100, 620)
    wait_for(run.updated, 180, lambda: run.session is not None and run.session.ended is not None)
    run.progress.fit_columns()
    run.steps.fit_columns()
    paths.append(save(run, "plan-run"))
    run.close()
    undo = dr.start_plan(quick, PlanAction.UNDO)
    wait_for(undo.updated, 180, lambda: undo.session is not None and undo.session.ended is not None)
    undo.close()

    # A run with an hour's delay after its first group, cancelled in it: what is up stays up.
    first = quick.groups()[0][1][0].name
    slow = dataclasses.replace(
        quick,
        items=tuple(
            dataclasses.replace(it, delay_after=3600 if it.name == first else 2)
            for it in quick.items
        ),
    )
    window.store.plans.update(slow)

    def first_up() -> bool:
        steps = {r.name: r.step for r in run.progress_model.records()}
        return steps.get(first) == "Up" or (
            run.session is not None and run.session.ended is not None
        )

    try:
        run = dr.start_plan(slow, PlanAction.RUN)
        run.resize(1100, 620)
        wait_for(run.updated, 180, first_up)
        run.progress.fit_columns()
        run.steps.fit_columns()
        paths.append(save(run, "plan-run-cancel"))
        run.cancel_button.click()
        wait_for(run.updated, 60, lambda: run.session is not None and run.session.ended is not None)
        wait_for(run.updated, 10, lambda: run.result is not None)
        run.steps.fit_columns()
        paths.append(save(run, "plan-run-cancelled"))
        run.close()
        undo = dr.start_plan(slow, PlanAction.UNDO)
        wait_for(
            undo.updated, 180, lambda: undo.session is not None and undo.session.ended is not None
        )
        undo.close()
    finally:
        window.store.plans.update(quick)
    window.show_page(Page.PLANS)
    dr.plans_view.table.select_key(quick.name)
    wait_for(
        dr.plan_watcher.sessionsChanged, 10, lambda: dr.plans_view.sessions_model.rowCount() >= 2
    )
    dr.plans_view.table.fit_columns()
    dr.plans_view.items.fit_columns()
    dr.plans_view.sessions.fit_columns()
    paths.append(save(window, "failover-plans"))

    # Bandwidth estimation for the job, over a link throttled in office hours.
    window.show_page(Page.JOBS)
    window.jobs_view.select_key(job)
    bandwidth = dr.open_bandwidth(job)
    bandwidth.resize(1200, 640)
    bandwidth.link.setValue(100)
    bandwidth.add_throttle(20, 8, 18)
    bandwidth.request()
    wait_for(bandwidth.estimated, 60, lambda: bandwidth.estimate is not None)
    paths.append(save(bandwidth, "bandwidth"))
    bandwidth.close()
    return paths
