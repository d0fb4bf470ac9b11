"""The console from the keyboard, on the lab: every action of the main window in the menu bar
with a mnemonic or behind a shortcut, no shortcut used twice, each page's table or tree
reached with Ctrl+1..0; the job wizard opened and walked with keys only; and in every wizard
step, dialog and secondary window, Tab following the reading order, no text box that swallows
Tab, buttons with unique mnemonics, and Escape closing it.

Keys are pressed with `QTest.keyClick`, which goes through Qt's shortcut map like a real key
press: a shortcut that is ambiguous, or whose window is not active, does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QShortcut
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
    QWizard,
)
from pytestqt.qtbot import QtBot

from core.lab.lab import LabState
from core.model.plans import FailoverPlan, PlanAction, PlanItem
from gui.dr_workers import ReplicaOperationWorker
from gui.main_window import PAGE_ORDER, MainWindow, Page
from gui.render import Relay
from gui.replica_ops import ORDER, Op, OpRequest, availability
from gui.views.bandwidth import BandwidthDialog
from gui.views.operations import ConfirmOperationDialog, OperationWindow
from gui.views.plan_editor import PlanEditor, ReplicaPicker
from gui.views.plans import PlanRunWindow, ReadinessDialog
from gui.views.session import SessionWindow
from gui.views.table import RecordTable
from gui.wizard.wizard import JobWizard, Step
from tests.gui.conftest import JOB, JOB_VMS, Ran
from tests.gui.keyboard import mnemonic, mnemonic_problems, out_of_order, tab_chain, tab_traps
from tests.gui.test_wizard import stored_job

CTRL = Qt.KeyboardModifier.ControlModifier
ALT = Qt.KeyboardModifier.AltModifier
PLAN = "Keyboard plan"
EDITED = "Edited"  # stored_job's name: a job with a value in every wizard step


@pytest.fixture(scope="module")
def stored(ran: Ran, lab: LabState) -> Ran:
    """`ran`, with a job that uses every wizard step and a plan of the replicated VMs."""
    ran.store.jobs.add(stored_job(lab))
    items = tuple(PlanItem(vm=vm, job=JOB) for vm in JOB_VMS)
    ran.store.plans.add(FailoverPlan(PLAN, items, description="Tab order"))
    return ran


@pytest.fixture
def window(qtbot: QtBot, stored: Ran) -> Iterator[MainWindow]:
    w = MainWindow(stored.store, poll_ms=200)
    qtbot.addWidget(w)
    w.show()
    model = w.inventory_model
    loaded = Relay(model.modelReset, lambda: len(model.inventories) == 2)
    with qtbot.waitSignal(loaded.fired, timeout=60_000):
        w.start()
    qtbot.waitUntil(lambda: w.replicas_model.rowCount() == len(JOB_VMS), timeout=10_000)
    activate(qtbot, w)
    yield w
    if w.job_wizard is not None:
        w.job_wizard.reject()
    w.workers.wait_all()


def activate(qtbot: QtBot, widget: QWidget) -> None:
    """Make `widget`'s window the active one (window shortcuts only work there)."""
    widget.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is widget.window(), timeout=5_000)


def key(
    widget: QWidget, k: Qt.Key, modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier
) -> None:
    """Press `k` where the keyboard is: the focused widget of `widget`'s window."""
    QTest.keyClick(widget.window().focusWidget() or widget, k, modifier)


def window_actions(window: MainWindow) -> set[QAction]:
    """Every action the main window offers: its own, the toolbars' of every page, the
    right-click menus' of every table and of the inventory tree."""
    found = set(window.actions())
    for actions in window.page_actions.values():
        found |= set(actions)
    for table in window.findChildren(RecordTable):
        found |= set(getattr(table, "actions_for_menu", []))
    found |= set(window.inventory_view.tree.actions())
    return {a for a in found if not a.isSeparator()}


def test_every_action_is_reachable_and_no_shortcut_is_ambiguous(window: MainWindow) -> None:
    bar = window.menuBar()
    titles = [m.text() for m in bar.actions()]
    assert all(mnemonic(t) for t in titles), titles
    assert len({mnemonic(t) for t in titles}) == len(titles), titles
    in_menus: set[QAction] = set()
    for menu_action in bar.actions():
        menu = menu_action.menu()
        assert isinstance(menu, QMenu)
        entries = [a for a in menu.actions() if not a.isSeparator()]
        texts = [a.text() for a in entries]
        assert all(mnemonic(t) for t in texts), f"{menu_action.text()}: {texts}"
        keys = [mnemonic(t) for t in texts]
        assert len(set(keys)) == len(keys), f"{menu_action.text()}: {texts}"
        in_menus |= set(entries)
    actions = window_actions(window)
    assert len(actions) > 30
    unreachable = [
        a.text()
        for a in actions
        if a not in in_menus and (a.shortcut().isEmpty() or a not in window.actions())
    ]
    assert not unreachable
    # Qt ignores a shortcut two enabled actions share (both do nothing): none is shared, even
    # by actions of different pages, so no page can make one ambiguous.
    owners: dict[str, list[str]] = {}
    for a in actions:
        for sequence in a.shortcuts():
            owners.setdefault(sequence.toString(), []).append(a.text())
    for shortcut in window.findChildren(QShortcut):
        owner = shortcut.parent()
        if isinstance(owner, QWidget) and owner.window() is window:
            for sequence in shortcut.keys():  # noqa: SIM118 (its key sequences)
                owners.setdefault(sequence.toString(), []).append("QShortcut")
    for title in titles:
        owners.setdefault(f"Alt+{mnemonic(title).upper()}", []).append(title)
    shared = {k: v for k, v in owners.items() if len(v) > 1}
    assert not shared
    # The page shortcuts: Ctrl+1 to Ctrl+9, then Ctrl+0, in the navigation's order.
    assert [window.page_shortcuts[p].shortcut().toString() for p in PAGE_ORDER] == [
        f"Ctrl+{n % 10}" for n in range(1, len(PAGE_ORDER) + 1)
    ]


def test_each_page_is_reached_and_its_view_focused_by_keys(
    qtbot: QtBot, window: MainWindow
) -> None:
    for n, page in enumerate(PAGE_ORDER, start=1):
        with qtbot.waitSignal(window.pageChanged, timeout=2_000) as changed:
            key(window, Qt.Key(Qt.Key.Key_0 + n % 10), CTRL)
        assert changed.args == [str(page)]
        focused = window.focusWidget()
        assert isinstance(focused, QAbstractItemView), (page, focused)
        assert window.pages[page].isAncestorOf(focused)
        # Tab leaves the view for the rest of the window, and comes back to it.
        chain = tab_chain(window)
        assert window.nav in chain and focused in chain
    # The menu bar's mnemonic opens its menu; the entry's mnemonic triggers it.
    key(window, Qt.Key.Key_1, CTRL)
    go = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Go")
    assert isinstance(go, QMenu)
    with qtbot.waitSignal(go.aboutToShow, timeout=2_000):
        key(window, Qt.Key.Key_G, ALT)
    qtbot.waitUntil(go.isVisible, timeout=2_000)
    with qtbot.waitSignal(window.pageChanged, timeout=2_000) as changed:
        QTest.keyClick(go, Qt.Key.Key_H)
    assert changed.args == [str(Page.HISTORY)]


def test_keys_open_the_job_wizard_and_walk_its_steps(qtbot: QtBot, window: MainWindow) -> None:
    key(window, Qt.Key.Key_1, CTRL)
    table = window.jobs_view.view
    assert window.focusWidget() is table
    QTest.keyClicks(table, "Tier")  # type-ahead selects the job
    assert [j.name for j in window.selected_jobs()] == [JOB]
    with qtbot.waitSignal(window.wizardOpened, timeout=5_000) as opened:
        key(window, Qt.Key.Key_E, CTRL)
    wizard = opened.args[0]
    assert isinstance(wizard, JobWizard) and wizard.windowTitle() == "Edit Replication Job"
    qtbot.waitUntil(lambda: not wizard.loading, timeout=30_000)
    activate(qtbot, wizard)
    steps = wizard.active_steps()
    for step in steps[1:]:
        with qtbot.waitSignal(wizard.currentIdChanged, timeout=5_000):
            key(wizard, Qt.Key.Key_N, ALT)
        assert wizard.currentId() == int(step)
    with qtbot.waitSignal(wizard.currentIdChanged, timeout=5_000):
        key(wizard, Qt.Key.Key_B, ALT)
    assert wizard.currentId() == int(steps[-2])
    with qtbot.waitSignal(wizard.rejected, timeout=5_000):
        key(wizard, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: window.job_wizard is None, timeout=5_000)

    activate(qtbot, window)
    with qtbot.waitSignal(window.wizardOpened, timeout=5_000) as opened:
        key(window, Qt.Key.Key_N, CTRL)
    wizard = opened.args[0]
    assert isinstance(wizard, JobWizard)
    qtbot.waitUntil(lambda: not wizard.loading, timeout=30_000)
    activate(qtbot, wizard)
    assert wizard.focusWidget() is wizard.name_page.name  # typing names the job at once
    QTest.keyClicks(wizard.name_page.name, "Typed")
    with qtbot.waitSignal(wizard.currentIdChanged, timeout=5_000):
        key(wizard, Qt.Key.Key_Return)  # Next is the default button
    assert wizard.currentId() == int(Step.VMS)
    with qtbot.waitSignal(wizard.rejected, timeout=5_000):
        key(wizard, Qt.Key.Key_Escape)
    assert "Typed" not in window.store.jobs.names()


def check_window(qtbot: QtBot, widget: QWidget, exempt: tuple[QWidget, ...] = ()) -> list[str]:
    """What is wrong with `widget`'s keyboard use, in words (shown and active first)."""
    widget.show()
    activate(qtbot, widget)
    chain = tab_chain(widget)
    problems = [str(p) for p in out_of_order(widget, chain)]
    problems += [f"{t} takes Tab as a character" for t in tab_traps(chain)]
    problems += mnemonic_problems(widget, exempt)
    if not chain:
        problems.append("nothing takes the focus")
    return [f"{widget.windowTitle()}: {p}" for p in problems]


def closes_on_escape(qtbot: QtBot, widget: QWidget) -> None:
    activate(qtbot, widget)
    key(widget, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not widget.isVisible(), timeout=5_000)


def test_every_wizard_step_tabs_in_reading_order(qtbot: QtBot, window: MainWindow) -> None:
    window.show_page(Page.JOBS)
    assert window.jobs_view.select_key(EDITED)
    with qtbot.waitSignal(window.wizardOpened, timeout=5_000) as opened:
        window.act_edit_job.trigger()
    wizard = opened.args[0]
    assert isinstance(wizard, JobWizard)
    qtbot.waitUntil(lambda: not wizard.loading, timeout=30_000)
    assert wizard.active_steps() == list(Step)
    # Cancel is Escape's; the seven day boxes of the schedule are one row Tab walks through
    # (seven more letters would leave none for the step's own fields).
    exempt = (wizard.button(QWizard.WizardButton.CancelButton), *wizard.schedule_page.days)
    problems: list[str] = []
    for step in Step:
        assert wizard.currentId() == int(step)
        problems += [f"{step.name}: {p}" for p in check_window(qtbot, wizard, exempt)]
        if step != Step.SUMMARY:
            wizard.next()
    assert not problems, "\n".join(problems)
    closes_on_escape(qtbot, wizard)


def test_dialogs_and_windows_tab_in_reading_order_and_close_on_escape(
    qtbot: QtBot, window: MainWindow, stored: Ran
) -> None:
    problems: list[str] = []

    session = window.open_session(stored.session.id)
    assert isinstance(session, SessionWindow)
    qtbot.waitUntil(lambda: session.detail is not None, timeout=10_000)
    problems += check_window(qtbot, session)
    closes_on_escape(qtbot, session)

    # Every confirmation: those a Ready replica offers from the Replica actions, the others
    # (Failback and the like, which need a failover first) as their dialog opens.
    window.show_page(Page.REPLICAS_READY)
    window.ready_view.table.view.selectRow(0)
    row = window.dr.selected_replica()
    assert row is not None
    offered = [op for op in ORDER if not availability(op, row)]
    assert Op.FAILOVER in offered and Op.TEST_FAILOVER in offered
    job = stored.store.jobs.get(JOB)
    inventory = window.inventory_model.inventories[row.replica.source_server]
    for op in ORDER:
        activate(qtbot, window)
        if op in offered:
            with qtbot.waitSignal(window.dr.confirmationShown, timeout=5_000) as shown:
                window.dr.op_actions[op].trigger()
            dialog = shown.args[0]
        else:
            dialog = ConfirmOperationDialog(op, row, job, inventory, window)
        assert isinstance(dialog, ConfirmOperationDialog)
        problems += check_window(qtbot, dialog)
        if op == Op.FAILBACK:  # and to a new VM: the target's fields are shown
            assert dialog.target is not None
            dialog.target.new.setChecked(True)
            problems += check_window(qtbot, dialog)
        with qtbot.waitSignal(dialog.rejected, timeout=5_000):
            key(dialog, Qt.Key.Key_Escape)

    # An operation's window and a plan run's window, as they open (their work not started:
    # the keyboard is what is looked at).
    request = OpRequest(Op.FAILOVER, row.replica)
    worker = ReplicaOperationWorker(stored.store, request)
    op_window = OperationWindow(
        request, "Fail over (keyboard check)", worker, window.watcher, window
    )
    problems += check_window(qtbot, op_window)
    closes_on_escape(qtbot, op_window)
    plan = stored.store.plans.get(PLAN)
    run = PlanRunWindow(plan, PlanAction.TEST, window.dr.plan_watcher, window)
    problems += check_window(qtbot, run)
    closes_on_escape(qtbot, run)

    activate(qtbot, window)
    editor = window.dr.edit_plan(plan)
    assert isinstance(editor, PlanEditor)
    tree = editor.tree
    groups = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]
    first = next(g.child(0) for g in groups if g is not None and g.childCount())
    assert first is not None
    tree.setCurrentItem(first)  # the selected VM's fields are on
    problems += check_window(qtbot, editor)
    editor.remove_current()
    editor.add_vms()
    picker = editor.findChild(ReplicaPicker)
    assert isinstance(picker, ReplicaPicker)
    problems += check_window(qtbot, picker)
    with qtbot.waitSignal(picker.rejected, timeout=5_000):
        key(picker, Qt.Key.Key_Escape)
    with qtbot.waitSignal(editor.rejected, timeout=5_000):
        closes_on_escape(qtbot, editor)

    readiness = window.dr.open_readiness(PLAN)
    assert isinstance(readiness, ReadinessDialog)
    with qtbot.waitSignal(readiness.reported, timeout=60_000):
        pass
    problems += check_window(qtbot, readiness)
    closes_on_escape(qtbot, readiness)

    bandwidth = window.dr.open_bandwidth(JOB)
    assert isinstance(bandwidth, BandwidthDialog)
    bandwidth.add_throttle(20, 8, 18)
    bandwidth.add_throttle(50, 18, 22)
    problems += check_window(qtbot, bandwidth)
    closes_on_escape(qtbot, bandwidth)
    assert not problems, "\n".join(problems)


def test_the_checks_find_what_they_look_for(qtbot: QtBot) -> None:
    """The checks above on a window built wrong: Tab bottom-up, a text box keeping Tab, a
    button without a mnemonic, a mnemonic used twice, and no Escape."""
    bad = QWidget()
    bad.setWindowTitle("Built wrong")
    qtbot.addWidget(bad)
    layout = QVBoxLayout(bad)
    top, middle = QLineEdit(), QPlainTextEdit()
    first, second, plain = QPushButton("&Apply"), QPushButton("&Add"), QPushButton("Go")
    for w in (top, middle, first, second, plain):
        layout.addWidget(w)
    QWidget.setTabOrder(plain, second)
    QWidget.setTabOrder(second, first)
    QWidget.setTabOrder(first, middle)
    QWidget.setTabOrder(middle, top)
    problems = check_window(qtbot, bad)
    assert any("Tab reaches QLineEdit after QPlainTextEdit" in p for p in problems), problems
    assert any("QPlainTextEdit takes Tab as a character" in p for p in problems), problems
    assert any("button 'Go' has no mnemonic" in p for p in problems), problems
    assert any("Alt+A is used by ['&Apply', '&Add']" in p for p in problems), problems
    key(bad, Qt.Key.Key_Escape)
    assert bad.isVisible()
    # Built right, the same widgets pass.
    middle.setTabChangesFocus(True)
    plain.setText("&Go")
    second.setText("A&dd")
    QWidget.setTabOrder(top, middle)
    QWidget.setTabOrder(middle, first)
    QWidget.setTabOrder(first, second)
    QWidget.setTabOrder(second, plain)
    assert check_window(qtbot, bad) == []
