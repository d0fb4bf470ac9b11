"""The New Replication Job wizard on the lab: a job made by dragging VMs from the inventory
trees (the wizard's own and the main window's), run from Finish, watched to its end; bad input
refused beside the field with the model's reason; Edit job round trip; Cancel stores nothing;
"Add to Replication Job" from the Inventory view and drops on the Jobs view (gui.add_to_job).

Drags are delivered as the events a drag ends in (drag enter, move, drop on the list's
viewport) carrying the MIME data the source tree's model makes for the selected rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QMimeData, QModelIndex, QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QAbstractItemView, QApplication, QToolButton, QWizard
from pytestqt.qtbot import QtBot

from core.lab.lab import LabState
from core.lab.register import DR_PROXY, lab_job
from core.lab.topology import NETWORK_MAP
from core.model.job import QuiesceFailure, ReplicationJob
from core.model.objects import DiskExclusion, ObjectKind, ObjectRef
from core.model.reip import ReIpRule
from core.model.runs import RunStatus
from core.model.schedule import Daily, JobSchedule
from core.model.seeding import ReplicaMapping, Seeding
from core.store.store import Store
from gui.main_window import MainWindow, Page
from gui.models.inventory import MIME_OBJECTS, DraggedObject
from gui.models.jobs import JobsModel
from gui.render import Relay
from gui.render_wizard import tree_index
from gui.views.session import SessionWindow
from gui.wizard.objects import ObjectListModel, ObjectListView
from gui.wizard.wizard import JobWizard, Step
from gui.workers import RunJobWorker
from tests.core.jobs.test_seeding import dr_copy
from tests.gui.conftest import wait_runs_done

RUN_TIMEOUT_MS = 180_000


@pytest.fixture
def window(qtbot: QtBot, store: Store) -> Iterator[MainWindow]:
    w = MainWindow(store, poll_ms=200)
    qtbot.addWidget(w)
    w.show()
    model = w.inventory_model
    loaded = Relay(model.modelReset, lambda: len(model.inventories) == 2)
    with qtbot.waitSignal(loaded.fired, timeout=60_000):
        w.start()
    yield w
    if w.job_wizard is not None:
        w.job_wizard.reject()
    w.workers.cancel_all()
    w.workers.wait_all()


def open_wizard(qtbot: QtBot, window: MainWindow, action: str = "new") -> JobWizard:
    act = window.act_new_job if action == "new" else window.act_edit_job
    assert act.isEnabled()
    with qtbot.waitSignal(window.wizardOpened, timeout=5_000) as opened:
        act.trigger()
    wizard = opened.args[0]
    assert isinstance(wizard, JobWizard)
    qtbot.waitUntil(lambda: not wizard.loading, timeout=30_000)
    return wizard


def drop(view: ObjectListView, mime: QMimeData, at: QPoint | None = None) -> None:
    """What the end of a drag does to the list: enter, move, drop, at `at` (default: below the
    last row, which appends)."""
    port = view.viewport()
    pos = QPointF(at if at is not None else QPoint(port.width() // 2, port.height() - 4))
    actions = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(pos, actions, mime, buttons, mods)
    QApplication.sendEvent(port, enter)
    assert enter.isAccepted(), "the list refused the drag"
    move = QDragMoveEvent(pos, actions, mime, buttons, mods)
    QApplication.sendEvent(port, move)
    assert move.isAccepted()
    QApplication.sendEvent(port, QDropEvent(pos, actions, mime, buttons, mods))


def wizard_tree_mime(wizard: JobWizard, server: str, names: tuple[str, ...]) -> QMimeData:
    """Select `names` in the VMs step's tree (multi-select) and take what a drag would carry."""
    page = wizard.vms_page
    tree = page.tree.tree
    tree.clearSelection()
    sel = tree.selectionModel()
    for name in names:
        index = page.tree.proxy.mapFromSource(tree_index(page.inventory_model, server, name))
        sel.select(index, sel.SelectionFlag.Select | sel.SelectionFlag.Rows)
    rows = sel.selectedRows(0)
    assert len(rows) == len(names)
    return page.tree.proxy.mimeData(rows)


def names(model: ObjectListModel) -> list[str]:
    return [i.ref.name for i in model.items]


def test_a_job_made_by_dragging_vms_runs_from_finish(
    qtbot: QtBot, window: MainWindow, store: Store, lab: LabState
) -> None:
    prod, dr = lab.production.address, lab.dr.address
    wizard = open_wizard(qtbot, window)
    assert wizard.currentId() == Step.NAME
    wizard.name_page.name.setText("Dragged to DR")
    wizard.name_page.network.setChecked(True)
    wizard.next()
    assert wizard.currentId() == Step.VMS

    page = wizard.vms_page
    drop(page.objects_view, wizard_tree_mime(wizard, prod, ("dc01", "web 02 (canary)")))
    assert names(page.objects) == ["dc01", "web 02 (canary)"]
    # From the main window's Inventory view: its model's drag payload, same MIME type.
    main = window.inventory_model
    vm = main.find(next(v.moref for v in main.inventories[prod].vms if v.name == "app+cache"))
    drop(page.objects_view, main.mimeData([vm]))
    assert names(page.objects) == ["dc01", "web 02 (canary)", "app+cache"]
    # The same VM again is not added twice; a DR-site object is refused, with the reason.
    drop(page.objects_view, wizard_tree_mime(wizard, prod, ("dc01",)))
    assert len(page.objects.items) == 3
    dr_host = next(iter(main.inventories[dr].hosts))
    drop(page.objects_view, main.mimeData([main.find(dr_host.moref, dr)]))
    assert len(page.objects.items) == 3
    assert "one server" in page.drop_note.text() and page.drop_note.isVisibleTo(page)
    # Processing order by drag: app+cache dragged onto the first row goes first.
    view = page.objects_view
    own = page.objects.mimeData([page.objects.index(2, 0)])
    drop(view, own, view.visualRect(page.objects.index(0, 0)).center())
    assert names(page.objects) == ["app+cache", "dc01", "web 02 (canary)"]
    wizard.next()

    dest = wizard.destination_page
    assert wizard.currentId() == Step.DESTINATION
    dest.server.setCurrentIndex(dest.server.findData(dr))
    qtbot.waitUntil(lambda: dr not in wizard.loading and dest.target.count() > 0, timeout=30_000)
    assert dest.datastore.count() > 0
    wizard.next()

    assert wizard.currentId() == Step.NETWORK
    net = wizard.network_page
    rows = {
        net._combo(r, 0).currentText(): net._combo(r, 1).currentText()
        for r in range(net.table.rowCount())
    }
    assert rows and all(NETWORK_MAP[s] == t for s, t in rows.items()), rows
    wizard.next()
    assert wizard.currentId() == Step.SETTINGS  # Re-IP was not ticked: no Re-IP step
    wizard.settings_page.points.setValue(3)
    wizard.next()
    transfer = wizard.transfer_page
    transfer.target.chosen.setChecked(True)
    transfer.target.set_names((DR_PROXY,))
    wizard.next()
    assert wizard.currentId() == Step.GUEST  # Seeding was not ticked: no Seeding step
    wizard.next()
    wizard.next()
    assert wizard.currentId() == Step.SUMMARY
    assert "app+cache" in wizard.summary_page.text.toPlainText()
    wizard.summary_page.run_now.setChecked(True)
    with qtbot.waitSignal(window.runStarted, timeout=30_000) as started:
        wizard.button(QWizard.WizardButton.FinishButton).click()
    worker = started.args[0]
    assert isinstance(worker, RunJobWorker) and worker.job == "Dragged to DR"
    assert window.job_wizard is None

    stored = store.jobs.get("Dragged to DR")
    assert [o.name for o in stored.source.objects] == ["app+cache", "dc01", "web 02 (canary)"]
    assert stored.settings.restore_points == 3
    assert stored.transfer.target_proxies.proxies == (DR_PROXY,)

    relay = Relay(worker.sessionStarted)
    if worker.session_id is None:
        with qtbot.waitSignal(relay.fired, timeout=30_000):
            pass
    assert worker.session_id is not None
    session = window.open_session(worker.session_id)
    assert isinstance(session, SessionWindow)
    if session.detail is None or session.detail.session.ended is None:
        with qtbot.waitSignal(
            session.updated,
            timeout=RUN_TIMEOUT_MS,
            check_params_cb=lambda d: d.session.ended is not None,
        ):
            pass
    assert session.detail is not None
    detail = session.detail
    assert detail.session.status == RunStatus.SUCCESS, [e.message for e in detail.session.log]
    assert {t.vm_name for t in detail.tasks} == {"app+cache", "dc01", "web 02 (canary)"}
    assert "%" in session.fields["Bottleneck"].text()
    wait_runs_done(qtbot, window)


def test_bad_input_is_shown_beside_its_field(
    qtbot: QtBot, window: MainWindow, lab: LabState
) -> None:
    wizard = open_wizard(qtbot, window)
    wizard.next()  # no name
    assert wizard.currentId() == Step.NAME
    assert wizard.name_page.errors.shown() == {"name": "must not be empty"}
    wizard.name_page.name.setText("Bad input")
    wizard.name_page.reip.setChecked(True)
    wizard.next()
    wizard.next()  # no VM
    assert wizard.currentId() == Step.VMS
    assert "add at least one VM" in wizard.vms_page.errors.shown()["source"]
    drop(wizard.vms_page.objects_view, wizard_tree_mime(wizard, lab.production.address, ("dc01",)))
    wizard.next()
    dest = wizard.destination_page
    dest.server.setCurrentIndex(dest.server.findData(lab.dr.address))
    qtbot.waitUntil(lambda: not wizard.loading and dest.target.count() > 0, timeout=30_000)
    wizard.next()

    assert wizard.currentId() == Step.REIP
    reip = wizard.reip_page
    reip.add_rule(
        {
            "source": "10.10.*.*",
            "target": "172.20.*.*",
            "target_mask": "255.255.0.0",
            "gateway": "172.21.0.1",
        }
    )
    wizard.next()
    assert wizard.currentId() == Step.REIP
    shown = reip.errors.shown()["reip"]
    assert shown.startswith("Rule 1, Gateway:") and "outside the target subnet" in shown
    assert reip.invalid_cell() == (0, 4)
    reip.set_cell(0, "gateway", "172.20.0.1")
    reip.probe.setText("10.10.7.9")
    assert reip.probe_result.text() == "rule 1: 172.20.7.9 255.255.0.0, gateway 172.20.0.1"
    wizard.next()

    assert wizard.currentId() == Step.SETTINGS
    settings = wizard.settings_page
    settings.points.setValue(29)
    wizard.next()
    assert wizard.currentId() == Step.SETTINGS
    assert settings.errors.shown() == {"settings.restore_points": "29 is out of range (1 to 28)"}
    assert settings.points.property("invalid") == "true"
    settings.points.setValue(28)
    settings.use_cbt.setChecked(False)  # enabling CBT needs using it: the model says so
    wizard.next()
    assert "needs use_cbt" in settings.errors.shown()["settings.enable_cbt"]
    settings.use_cbt.setChecked(True)
    wizard.next()
    assert wizard.currentId() == Step.TRANSFER
    assert settings.points.property("invalid") == "false"


def stored_job(lab: LabState) -> ReplicationJob:
    """A job with a value in every step, as the CLI or a job file would have made it."""
    job = lab_job(lab, "Edited", ("db #2 & replica", "app+cache"), folders=("Apps/Web",), keep=5)
    db = job.source.objects[0]
    return dataclasses.replace(
        job,
        description="Databases and the web folder",
        source=dataclasses.replace(
            job.source,
            exclude_disks=(DiskExclusion(ObjectRef(ObjectKind.VM, db.moref, db.name), (2001,)),),
        ),
        reip=(
            ReIpRule(
                "10.10.*.*",
                "172.20.*.*",
                target_mask="255.255.0.0",
                gateway="172.20.0.1",
                dns=("172.20.0.10",),
            ),
        ),
        schedule=JobSchedule(Daily((dt.time(22, 30), dt.time(4, 0)), frozenset({0, 2, 4}))),
        settings=dataclasses.replace(
            job.settings, quiesce=True, quiesce_failure=QuiesceFailure.CONTINUE
        ),
        # A mapped VM the DR inventory does not list (any more): kept as the job names it.
        seeding=Seeding(
            (ReplicaMapping(db, ObjectRef(ObjectKind.VM, "vm-424242", "db restored earlier")),)
        ),
    )


def test_edit_job_round_trip(qtbot: QtBot, window: MainWindow, store: Store, lab: LabState) -> None:
    original = stored_job(lab)
    store.jobs.add(original)
    window.watcher.refresh()
    qtbot.waitUntil(lambda: window.jobs_model.row_of("Edited") >= 0, timeout=10_000)
    window.show_page(Page.JOBS)
    assert window.jobs_view.select_key("Edited")
    wizard = open_wizard(qtbot, window, "edit")
    assert wizard.windowTitle() == "Edit Replication Job"
    assert wizard.name_page.name.isReadOnly()
    assert wizard.name_page.network.isChecked() and wizard.name_page.reip.isChecked()
    assert wizard.name_page.seeding.isChecked()
    assert wizard.guest_page.enabled.isChecked() and wizard.guest_page.go_on.isChecked()
    assert wizard.build_job() == original  # every step shows what is stored
    visited = [Step(wizard.currentId())]
    while wizard.currentId() != Step.SUMMARY:
        wizard.next()
        visited.append(Step(wizard.currentId()))
    assert visited == list(Step)  # every step is on: the job uses each of them
    assert wizard.seeding_page.combo(0, 1).currentText() == "db restored earlier"
    assert wizard.build_job() == original  # and walking through them changes nothing
    while wizard.currentId() != Step.SETTINGS:
        wizard.back()
    wizard.settings_page.points.setValue(9)
    while wizard.currentId() != Step.SUMMARY:
        wizard.next()
    with qtbot.waitSignal(wizard.jobSaved, timeout=10_000):
        wizard.button(QWizard.WizardButton.FinishButton).click()
    assert store.jobs.get("Edited") == dataclasses.replace(
        original, settings=dataclasses.replace(original.settings, restore_points=9)
    )


def test_cancel_stores_nothing(
    qtbot: QtBot, window: MainWindow, store: Store, lab: LabState
) -> None:
    before = store.jobs.names()
    wizard = open_wizard(qtbot, window)
    wizard.name_page.name.setText("Never stored")
    wizard.next()
    drop(wizard.vms_page.objects_view, wizard_tree_mime(wizard, lab.production.address, ("dc01",)))
    wizard.next()
    with qtbot.waitSignal(wizard.rejected, timeout=5_000):
        wizard.button(QWizard.WizardButton.CancelButton).click()
    assert window.job_wizard is None and window.act_new_job.isEnabled()
    assert store.jobs.names() == before


def test_object_list_takes_only_good_drops(qtbot: QtBot) -> None:
    """Without a lab: a drop from another application, a kind that cannot be replicated, a
    second server, and reordering by the list's own drag."""
    model = ObjectListModel(set(ObjectKind) - {ObjectKind.DATASTORE})
    refused = Relay(model.refused)
    a, b, c = (ObjectRef(ObjectKind.VM, f"vm-{n}", f"vm {n}") for n in (1, 2, 3))
    model.add([DraggedObject("vc1", a), DraggedObject("vc1", b), DraggedObject("vc1", c)])
    foreign = QMimeData()
    foreign.setData(MIME_OBJECTS, b"not json")
    assert not model.dropMimeData(foreign, Qt.DropAction.CopyAction, -1, 0, QModelIndex())
    assert "unreadable" in str(refused.args[0])
    other = QMimeData()
    item = {"server": "vc2", "kind": "vm", "moref": "vm-9", "name": "elsewhere"}
    other.setData(MIME_OBJECTS, json.dumps([item]).encode())
    model.dropMimeData(other, Qt.DropAction.CopyAction, -1, 0, QModelIndex())
    assert "one server" in str(refused.args[0]) and len(model.items) == 3
    own = model.mimeData([model.index(0, 0), model.index(1, 0)])
    model.dropMimeData(own, Qt.DropAction.CopyAction, -1, 0, QModelIndex())
    assert [i.ref.name for i in model.items] == ["vm 3", "vm 1", "vm 2"]
    # Another list's row payload is not a reorder of this one: its objects are added instead.
    elsewhere = ObjectListModel({ObjectKind.VM})
    elsewhere.add([DraggedObject("vc1", ObjectRef(ObjectKind.VM, "vm-4", "vm 4"))])
    model.dropMimeData(
        elsewhere.mimeData([elsewhere.index(0, 0)]), Qt.DropAction.CopyAction, 0, 0, QModelIndex()
    )
    assert [i.ref.name for i in model.items] == ["vm 4", "vm 3", "vm 1", "vm 2"]


def test_seeding_and_guest_processing_steps(
    qtbot: QtBot, window: MainWindow, store: Store, lab: LabState
) -> None:
    copy = dr_copy(lab, "dc01", "dc01 restored")
    grown = dr_copy(lab, "dc01", "dc01 grown", grow_mib=1)
    wizard = open_wizard(qtbot, window)
    # The Seeding step comes and goes with its box on the Name step; Guest Processing is always on.
    assert Step.SEEDING not in wizard.active_steps() and Step.GUEST in wizard.active_steps()
    wizard.name_page.seeding.setChecked(True)
    assert Step.SEEDING in wizard.active_steps()
    assert "Seeding" in [wizard.steps.item(i).text() for i in range(wizard.steps.count())]
    wizard.name_page.seeding.setChecked(False)
    assert Step.SEEDING not in wizard.active_steps()
    wizard.name_page.seeding.setChecked(True)
    wizard.name_page.name.setText("Seeded from DR copies")
    wizard.next()
    drop(wizard.vms_page.objects_view, wizard_tree_mime(wizard, lab.production.address, ("dc01",)))
    wizard.next()
    dest = wizard.destination_page
    dest.server.setCurrentIndex(dest.server.findData(lab.dr.address))
    qtbot.waitUntil(lambda: not wizard.loading and dest.target.count() > 0, timeout=30_000)
    wizard.next()
    assert wizard.currentId() == Step.SETTINGS
    assert not hasattr(wizard.settings_page, "quiesce")  # moved to Guest Processing
    wizard.next()
    wizard.next()

    assert wizard.currentId() == Step.SEEDING
    seeding = wizard.seeding_page
    assert seeding.table.rowCount() == 1
    wizard.next()  # the empty row
    assert wizard.currentId() == Step.SEEDING
    assert seeding.errors.shown() == {"seeding": "Row 1, source VM: choose a source VM"}
    assert seeding.combo(0, 0).property("invalid") == "true"
    source = seeding.combo(0, 0)
    source.setCurrentIndex(source.findText("dc01"))
    target = seeding.combo(0, 1)
    assert target.findText("dc01 restored") > 0 and target.findText("dc01 grown") > 0
    target.setCurrentIndex(target.findText("dc01 grown"))
    wizard.next()
    assert wizard.currentId() == Step.SEEDING
    shown = seeding.errors.shown()["seeding"]
    assert shown.startswith("Row 1, existing VM: disk 1 of dc01 grown has ")
    assert shown.endswith("the capacities must be the same")
    assert seeding.combo(0, 1).property("invalid") == "true"
    target.setCurrentIndex(target.findText("dc01 restored"))
    wizard.next()

    assert wizard.currentId() == Step.GUEST
    guest = wizard.guest_page
    assert not guest.enabled.isChecked() and not guest.on_failure.isEnabled()
    guest.enabled.setChecked(True)
    assert guest.on_failure.isEnabled() and guest.fail.isChecked()
    guest.go_on.setChecked(True)
    wizard.next()
    wizard.next()
    assert wizard.currentId() == Step.SUMMARY
    summary = wizard.summary_page.text.toPlainText()
    assert "dc01 \u2192 existing VM dc01 restored" in summary
    assert "continue crash-consistent with a warning" in summary
    with qtbot.waitSignal(wizard.jobSaved, timeout=10_000):
        wizard.button(QWizard.WizardButton.FinishButton).click()
    stored = store.jobs.get("Seeded from DR copies")
    (mapping,) = stored.seeding.mappings
    assert (mapping.vm.name, mapping.replica.moref) == ("dc01", copy.moref)
    assert stored.settings.quiesce
    assert stored.settings.quiesce_failure == QuiesceFailure.CONTINUE
    assert grown.moref != copy.moref


# -- "Add to Replication Job" from the Inventory view, and drops on the Jobs view ------------------


EXISTING = "Web & DB"  # a name with "&", which a menu would take for a mnemonic
ZURICH = "Zürich fileserver [fs]"


def existing_job(qtbot: QtBot, window: MainWindow, store: Store, lab: LabState) -> ReplicationJob:
    """A stored job of dc01 and the Apps/Web folder (web 02 (canary) is in it, Zürich
    fileserver [fs] too but excluded), shown."""
    job = lab_job(lab, EXISTING, ("dc01",), folders=("Apps/Web",))
    [zurich] = window.inventory_model.inventories[lab.production.address].vms_named(ZURICH)
    excluded = ObjectRef(ObjectKind.VM, zurich.moref, ZURICH)
    job = dataclasses.replace(job, source=dataclasses.replace(job.source, exclude_vms=(excluded,)))
    store.jobs.add(job)
    window.watcher.refresh()
    qtbot.waitUntil(lambda: window.jobs_model.row_of(job.name) >= 0, timeout=10_000)
    return job


def select_in_inventory(window: MainWindow, server: str, vms: tuple[str, ...]) -> None:
    """Select `vms` (multi-select) in the main window's Inventory view."""
    window.show_page(Page.INVENTORY)
    view = window.inventory_view
    view.tree.clearSelection()
    assert not window.add_to_job.action.isEnabled()  # nothing selected, nothing to add
    sel = view.tree.selectionModel()
    for name in vms:
        index = view.proxy.mapFromSource(tree_index(window.inventory_model, server, name))
        sel.select(index, sel.SelectionFlag.Select | sel.SelectionFlag.Rows)
    assert len(view.selected_nodes()) == len(vms)


def add_to_job_menu(qtbot: QtBot, window: MainWindow, job: str) -> JobWizard:
    """The right-click menu's "Add to Replication Job" > `job` ("": New Replication Job...);
    the wizard it opens."""
    action = window.add_to_job.action
    assert action in window.inventory_view.tree.actions() and action.isEnabled()
    menu = window.add_to_job.menu
    assert action.menu() is menu
    menu.popup(window.inventory_view.tree.mapToGlobal(QPoint(20, 20)))  # fills it
    [item] = [a for a in menu.actions() if not a.isSeparator() and a.data() == job]
    assert item.text() == (job.replace("&", "&&") if job else "&New Replication Job...")
    with qtbot.waitSignal(window.add_to_job.added, timeout=10_000) as added:
        item.trigger()
    menu.hide()
    wizard = added.args[0]
    assert isinstance(wizard, JobWizard) and wizard is window.job_wizard
    return wizard


def finish(qtbot: QtBot, wizard: JobWizard) -> None:
    while wizard.currentId() != Step.SUMMARY:
        before = wizard.currentId()
        wizard.next()
        assert wizard.currentId() != before, wizard.step_pages[Step(before)].message.text()
    with qtbot.waitSignal(wizard.jobSaved, timeout=10_000):
        wizard.button(QWizard.WizardButton.FinishButton).click()


def test_add_to_job_from_the_inventory_view_saves_on_finish(
    qtbot: QtBot, window: MainWindow, store: Store, lab: LabState
) -> None:
    original = existing_job(qtbot, window, store, lab)
    prod = lab.production.address
    # dc01 is in the job, web 02 (canary) in its folder: only the other two are added.
    select_in_inventory(window, prod, ("dc01", "web 02 (canary)", "app+cache", "db #2 & replica"))
    # On the Inventory page's toolbar, its menu at one click, after any page change too.
    for shown in (Page.JOBS, Page.INVENTORY):
        window.show_page(shown)
    button = window.toolbar.widgetForAction(window.add_to_job.action)
    assert isinstance(button, QToolButton)
    assert button.popupMode() == QToolButton.ToolButtonPopupMode.InstantPopup
    wizard = add_to_job_menu(qtbot, window, EXISTING)
    assert wizard.windowTitle() == "Edit Replication Job"
    assert wizard.currentId() == Step.VMS
    page = wizard.vms_page
    listed = names(page.objects)
    assert listed[:2] == ["dc01", "Web"] and set(listed[2:]) == {"app+cache", "db #2 & replica"}
    said = page.message.text()
    assert said.startswith(f"Added from the Inventory: {listed[2]}, {listed[3]}.")
    assert "Already in the job: dc01, web 02 (canary) (through Web)." in said
    assert page.message.isVisibleTo(page)
    assert "app+cache" in window.statusBar().currentMessage()
    assert store.jobs.get(EXISTING) == original  # nothing stored before Finish
    # Again, with the wizard open: the same job's wizard takes them, nothing is doubled.
    again = add_to_job_menu(qtbot, window, EXISTING)
    assert again is wizard and len(page.objects.items) == 4
    assert page.message.text().startswith("Nothing added from the Inventory.")
    finish(qtbot, wizard)
    stored = store.jobs.get(EXISTING)
    assert [o.name for o in stored.source.objects] == listed
    assert stored == dataclasses.replace(
        original,
        source=dataclasses.replace(original.source, objects=stored.source.objects),
    )


def test_add_to_job_then_cancel_leaves_the_job_as_it_was(
    qtbot: QtBot, window: MainWindow, store: Store, lab: LabState
) -> None:
    original = existing_job(qtbot, window, store, lab)
    select_in_inventory(window, lab.production.address, ("app+cache", ZURICH))
    wizard = add_to_job_menu(qtbot, window, EXISTING)
    page = wizard.vms_page
    listed = names(page.objects)
    assert listed[:2] == ["dc01", "Web"] and set(listed[2:]) == {"app+cache", ZURICH}
    # Added, the excluded VM is no longer excluded (a VM both added and excluded is refused).
    assert names(page.excluded) == []
    assert f"No longer excluded: {ZURICH}." in page.message.text()
    assert wizard.build_job().source.exclude_vms == ()
    with qtbot.waitSignal(wizard.rejected, timeout=5_000):
        wizard.button(QWizard.WizardButton.CancelButton).click()
    assert window.job_wizard is None
    assert store.jobs.get(EXISTING) == original
    assert store.jobs.names() == [EXISTING]
    # New Replication Job...: a free name, on the VMs step; cancelled, nothing is stored.
    wizard = add_to_job_menu(qtbot, window, "")
    assert wizard.windowTitle() == "New Replication Job" and wizard.currentId() == Step.VMS
    assert wizard.name_page.name.text() == "Replication Job 1"
    assert set(names(wizard.vms_page.objects)) == {"app+cache", ZURICH}
    wizard.reject()
    assert store.jobs.names() == [EXISTING]


def drag_on_jobs(window: MainWindow, mime: QMimeData, at: QPoint) -> QDragMoveEvent:
    """Enter and move over the Jobs view's table at `at`; the move event (accepted or not)."""
    port = window.jobs_view.view.viewport()
    actions, buttons = Qt.DropAction.CopyAction, Qt.MouseButton.LeftButton
    mods = Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(QPointF(at), actions, mime, buttons, mods)
    QApplication.sendEvent(port, enter)
    move = QDragMoveEvent(QPointF(at), actions, mime, buttons, mods)
    if enter.isAccepted():
        QApplication.sendEvent(port, move)
    return move


def drop_on_jobs(window: MainWindow, mime: QMimeData, at: QPoint) -> None:
    move = drag_on_jobs(window, mime, at)
    assert move.isAccepted(), "the Jobs view refused the drag"
    port = window.jobs_view.view.viewport()
    drop_event = QDropEvent(
        QPointF(at),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(port, drop_event)
    assert drop_event.isAccepted()


def inventory_mime(window: MainWindow, server: str, vms: tuple[str, ...]) -> QMimeData:
    """What dragging `vms` from the main window's Inventory view carries."""
    model = window.inventory_model
    return model.mimeData([tree_index(model, server, name) for name in vms])


def test_drops_on_the_jobs_view(
    qtbot: QtBot, window: MainWindow, store: Store, lab: LabState
) -> None:
    original = existing_job(qtbot, window, store, lab)
    prod, dr = lab.production.address, lab.dr.address
    window.show_page(Page.JOBS)
    view = window.jobs_view.view
    row = window.jobs_view.proxy.index(0, JobsModel.OBJECTS)
    on_row = view.visualRect(row).center()
    empty = QPoint(view.viewport().width() // 2, view.viewport().height() - 10)
    assert view.indexAt(empty).isValid() is False

    # Another application's drag: refused at once, no drop indicator.
    foreign = QMimeData()
    foreign.setText("dc01")
    foreign.setData("application/x-other-app-vms", b'[{"name": "dc01"}]')
    assert not drag_on_jobs(window, foreign, on_row).isAccepted()
    assert view.state() != QAbstractItemView.State.DraggingState
    # Ours, over a job's row: the row is the drop indicator.
    mime = inventory_mime(window, prod, ("app+cache", "dc01"))
    assert drag_on_jobs(window, mime, on_row).isAccepted()
    assert view.dropIndicatorPosition() == QAbstractItemView.DropIndicatorPosition.OnItem
    view.dragLeaveEvent(QDragLeaveEvent())

    # Onto the job's row: its Edit wizard, on the VMs step, with app+cache added once.
    with qtbot.waitSignal(window.add_to_job.added, timeout=10_000) as added:
        drop_on_jobs(window, mime, on_row)
    wizard = added.args[0]
    assert isinstance(wizard, JobWizard) and wizard.original == original
    assert wizard.currentId() == Step.VMS
    assert names(wizard.vms_page.objects) == ["dc01", "Web", "app+cache"]
    # A wizard open for this job: a drop on empty space (a new job) is refused, said so.
    with qtbot.waitSignal(window.add_to_job.refused, timeout=10_000) as refused:
        drop_on_jobs(window, inventory_mime(window, prod, ("50% batch",)), empty)
    assert f"open for job {EXISTING}" in str(refused.args[0])
    assert names(wizard.vms_page.objects) == ["dc01", "Web", "app+cache"]
    wizard.reject()
    assert store.jobs.get(EXISTING) == original

    # Objects of the DR site are not the job's source server's: refused, no wizard opened.
    dr_host = window.inventory_model.inventories[dr].hosts[0]
    dr_mime = window.inventory_model.mimeData([window.inventory_model.find(dr_host.moref, dr)])
    with qtbot.waitSignal(window.add_to_job.refused, timeout=10_000) as refused:
        drop_on_jobs(window, dr_mime, on_row)
    message = str(refused.args[0])
    assert f"source server {prod}" in message and dr in message
    assert window.job_wizard is None
    assert message in window.statusBar().currentMessage()

    # Onto empty space: the New Replication Job wizard with them.
    with qtbot.waitSignal(window.add_to_job.added, timeout=10_000) as added:
        drop_on_jobs(window, inventory_mime(window, prod, ("50% batch", "app+cache")), empty)
    wizard = added.args[0]
    assert isinstance(wizard, JobWizard) and wizard.original is None
    assert wizard.currentId() == Step.VMS
    assert names(wizard.vms_page.objects) == ["50% batch", "app+cache"]
    wizard.vms_page.objects.remove([0])
    wizard.go_to(Step.NAME)
    wizard.name_page.name.setText("Dropped on the Jobs view")
    wizard.next()
    wizard.next()
    dest = wizard.destination_page
    dest.server.setCurrentIndex(dest.server.findData(dr))
    qtbot.waitUntil(lambda: not wizard.loading and dest.target.count() > 0, timeout=30_000)
    finish(qtbot, wizard)
    stored = store.jobs.get("Dropped on the Jobs view")
    assert [o.name for o in stored.source.objects] == ["app+cache"]
    assert stored.source.server == prod
