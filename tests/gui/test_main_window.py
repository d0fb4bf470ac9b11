"""The main window against a real store on the lab: navigation, runs from the Jobs view with the
session window following them, Stop, errors in words, the inventory, and an event loop that
keeps turning while a job runs."""

from __future__ import annotations

import itertools
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from pytestqt.qtbot import QtBot

from core.jobs.runner import job_lock_key
from core.lab.lab import LabState
from core.lab.register import lab_job
from core.lab.topology import LabOptions
from core.model.runs import RunStatus
from core.store.store import Store
from gui.main_window import PAGE_ORDER, MainWindow, Page
from gui.models.jobs import JobsModel
from gui.render import Relay
from gui.snapshot import SessionDetail
from gui.views.session import SessionWindow
from gui.workers import RunJobWorker
from tests.core.jobs.test_runner import check_points, churn_vm, source_copies
from tests.gui.conftest import JOB, wait_runs_done

# Disks big enough that a first copy lasts seconds: long enough to stop it, and to watch the
# event loop while it runs.
LAB_OPTIONS = LabOptions(vms=6, disk_mib=(96, 160))
RUN_TIMEOUT_MS = 180_000


# Each test that runs the job replicates VMs of its own: replicas of one test's runs stay on the
# lab's DR datastore, and the next test's store knows nothing of them.
FIRST_VMS = ("dc01", "web 02 (canary)")
SECOND_VMS = ("db #2 & replica", "app+cache")
THIRD_VMS = ("50% batch", "Zürich fileserver [fs]")


@pytest.fixture
def window(
    request: pytest.FixtureRequest, qtbot: QtBot, store: Store, lab: LabState
) -> Iterator[MainWindow]:
    vms = getattr(request, "param", FIRST_VMS)
    store.jobs.add(lab_job(lab, JOB, vms))
    w = MainWindow(store, poll_ms=200)
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.jobs_model.rowsInserted, timeout=10_000):
        w.start()
    yield w
    w.workers.cancel_all()
    w.workers.wait_all()


def run_from_jobs_view(qtbot: QtBot, window: MainWindow, job: str = JOB) -> RunJobWorker:
    window.show_page(Page.JOBS)
    assert window.jobs_view.select_key(job)
    assert window.act_run.isEnabled()
    with qtbot.waitSignal(window.runStarted, timeout=5_000) as started:
        window.act_run.trigger()
    worker = started.args[0]
    assert isinstance(worker, RunJobWorker) and worker.job == job
    return worker


def open_session(qtbot: QtBot, window: MainWindow) -> SessionWindow:
    """The Statistics action: at once when the run has a session, else when it gets one."""
    with qtbot.waitSignal(window.sessionOpened, timeout=30_000) as opened:
        window.act_stats.trigger()
    session = opened.args[0]
    assert isinstance(session, SessionWindow)
    return session


def wait_session_end(qtbot: QtBot, session: SessionWindow) -> SessionDetail:
    if session.detail is None or session.detail.session.ended is None:
        with qtbot.waitSignal(
            session.updated,
            timeout=RUN_TIMEOUT_MS,
            check_params_cb=lambda d: d.session.ended is not None,
        ):
            pass
    assert session.detail is not None
    return session.detail


def test_navigation_switches_views_and_the_toolbar_follows(
    qtbot: QtBot, window: MainWindow
) -> None:
    for page in PAGE_ORDER:
        with qtbot.waitSignal(window.pageChanged, timeout=1_000) as changed:
            window.page_shortcuts[page].trigger()
        assert changed.args == [str(page)]
        assert window.stack.currentWidget() is window.pages[page]
        assert window.nav.currentItem() is window.nav_items[page]
        shown = [a for a in window.toolbar.actions() if not a.isSeparator()]
        assert set(window.page_actions[page]) <= set(shown)
    window.nav.setCurrentItem(window.nav_items[Page.REPLICAS_ACTIVE])
    assert window.page == Page.REPLICAS_ACTIVE
    window.show_page(Page.JOBS)
    assert window.act_run in window.toolbar.actions()
    assert window.act_reload_inventory not in window.toolbar.actions()
    assert window.jobs_view.actions_for_menu[:5] == [
        window.act_new_job,
        window.act_edit_job,
        window.act_run,
        window.act_stop,
        window.act_stats,
    ]  # then the DR actions of a job (gui.disaster_recovery): plan from it, bandwidth
    # Nothing selected: the selection's actions are off; every action has a shortcut.
    window.jobs_view.view.clearSelection()
    assert not window.act_run.isEnabled() and not window.act_stop.isEnabled()
    assert window.act_new_job.isEnabled() and not window.act_edit_job.isEnabled()
    for action in (
        window.act_new_job,
        window.act_edit_job,
        window.act_run,
        window.act_stop,
        window.act_stats,
        window.act_refresh,
    ):
        assert not action.shortcut().isEmpty()


def test_run_from_the_jobs_view_shows_the_session_finishing(
    qtbot: QtBot, window: MainWindow
) -> None:
    worker = run_from_jobs_view(qtbot, window)
    assert window.act_stop.isEnabled() and not window.act_run.isEnabled()
    session = open_session(qtbot, window)
    assert session.cancel_button.isVisibleTo(session)
    detail = wait_session_end(qtbot, session)
    assert detail.session.status == RunStatus.SUCCESS, detail.session.log
    assert detail.session.id == worker.session_id
    model = session.tasks_model
    assert {t.vm_name for t in model.records()} == set(FIRST_VMS)
    for row in range(model.rowCount()):
        assert model.progress(model.record(row)) == 100
    assert session.fields["Status"].text() == "Success"
    assert session.fields["VMs"].text() == f"{len(FIRST_VMS)} of {len(FIRST_VMS)} done"
    line = session.fields["Bottleneck"].text()
    assert re.fullmatch(r"Source \d+% > Proxy \d+% > Network \d+% > Target \d+%", line), line
    # The chart was sampled while the run went on, from the runner's progress events.
    assert session.chart.sampled and session.chart.series.peak > 0
    assert session.log_model.rowCount() > len(FIRST_VMS)
    # The Jobs view follows: the job is no longer running and its last result is Success.
    jobs = window.jobs_model
    done = Relay(
        jobs.dataChanged,
        lambda *_: jobs.index(jobs.row_of(JOB), JobsModel.LAST_RESULT).data() == "Success",
    )
    if jobs.index(jobs.row_of(JOB), JobsModel.LAST_RESULT).data() != "Success":
        with qtbot.waitSignal(done.fired, timeout=10_000):
            pass
    assert jobs.index(jobs.row_of(JOB), JobsModel.STATUS).data() == "Stopped"
    assert not session.cancel_button.isVisibleTo(session)
    wait_runs_done(qtbot, window)


@pytest.mark.parametrize("window", [SECOND_VMS], indirect=True)
def test_the_gui_thread_keeps_turning_while_a_job_runs(qtbot: QtBot, window: MainWindow) -> None:
    """Event-loop latency: a 20 ms timer's ticks during the whole run; no gap over 500 ms.
    A functional check that nothing blocks the GUI thread, not a benchmark."""
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()
    start = time.monotonic()
    run_from_jobs_view(qtbot, window)
    session = open_session(qtbot, window)
    detail = wait_session_end(qtbot, session)
    wait_runs_done(qtbot, window)
    timer.stop()
    took = time.monotonic() - start
    assert detail.session.status == RunStatus.SUCCESS, [
        (t.vm_name, [e.message for e in t.log if e.severity != "info"]) for t in detail.tasks
    ]
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert took > 1.0, "the run was too short to say anything"
    assert len(ticks) > took / 0.1
    worst = max(gaps)
    print(f"event loop: {len(ticks)} ticks in {took:.1f} s, longest gap {worst * 1000:.0f} ms")
    assert worst < 0.5, f"the event loop stalled {worst * 1000:.0f} ms in a {took:.1f} s run"


@pytest.mark.parametrize("window", [THIRD_VMS], indirect=True)
def test_stop_cancels_the_run(qtbot: QtBot, window: MainWindow) -> None:
    worker = run_from_jobs_view(qtbot, window)
    session = open_session(qtbot, window)  # opened once the run has its session
    assert window.act_stop.isEnabled()
    with qtbot.waitSignal(window.workers.runsChanged, timeout=RUN_TIMEOUT_MS):
        window.act_stop.trigger()
        assert worker.cancelled and not window.act_stop.isEnabled()
    detail = wait_session_end(qtbot, session)
    assert detail.session.status == RunStatus.FAILED
    assert any("cancel" in e.message for e in detail.session.log)
    # Run comes back once the store watcher has seen the session end (a moment under load).
    qtbot.waitUntil(window.act_run.isEnabled, timeout=10_000)


def test_a_refused_run_is_explained_in_words(
    qtbot: QtBot, window: MainWindow, store: Store
) -> None:
    """Another process holds the job (the CLI or the service runs it): the run is refused and
    the console says why."""
    with store.locks.hold([job_lock_key(JOB)], "job run by another process"):
        worker = run_from_jobs_view(qtbot, window)
        failed = Relay(worker.failed)
        with qtbot.waitSignal(failed.fired, timeout=30_000):
            pass
    message = failed.args[0]
    assert isinstance(message, str) and "another run" in message
    assert message in window.statusBar().currentMessage()


def test_inventory_loads_on_its_own_and_filters(
    qtbot: QtBot, window: MainWindow, lab: LabState
) -> None:
    model = window.inventory_model
    loaded = Relay(model.modelReset, lambda: len(model.inventories) == 2)
    if len(model.inventories) < 2:
        with qtbot.waitSignal(loaded.fired, timeout=60_000):
            pass
    window.show_page(Page.INVENTORY)
    view = window.inventory_view
    assert "2 server(s)" in view.status.text()
    view.filter.setText("canary")
    proxy = view.proxy
    names: list[str] = []
    stack = [proxy.index(r, 0) for r in range(proxy.rowCount())]
    while stack:
        index = stack.pop()
        names.append(index.data())
        stack.extend(proxy.index(r, 0, index) for r in range(proxy.rowCount(index)))
    assert "web 02 (canary)" in names
    assert "dc01" not in names
    assert lab.production.address in names  # its ancestors stay, so the match has a place
    assert view.tree.dragEnabled()


def session_owner_pid(store: Store, session_id: int) -> int:
    with sqlite3.connect(store.path) as db:
        (pid,) = db.execute("SELECT owner_pid FROM sessions WHERE id = ?", (session_id,)).fetchone()
    assert isinstance(pid, int)
    return pid


def test_a_console_run_is_a_child_process_and_stop_keeps_every_restore_point(
    qtbot: QtBot, window: MainWindow, store: Store, lab: LabState, tmp_path: Path
) -> None:
    """The run goes on in `replicadesk job run --events` (the session's owner is not this
    process), and stopping an incremental run mid-copy leaves the first run's restore points as
    they were, each still reading exactly like the source did then."""
    # The VMs of the first test, under another suffix: replica VMs of their own at the DR site.
    job = lab_job(lab, "Run in a child", FIRST_VMS)
    store.jobs.add(replace(job, settings=replace(job.settings, replica_suffix="_child")))
    window.watcher.refresh()
    qtbot.waitUntil(lambda: window.jobs_model.row_of(job.name) >= 0, timeout=10_000)

    copies = source_copies(lab, list(FIRST_VMS), tmp_path / "run1")
    first = run_from_jobs_view(qtbot, window, job.name)
    detail = wait_session_end(qtbot, open_session(qtbot, window))
    assert detail.session.status == RunStatus.SUCCESS, detail.session.log
    owner = session_owner_pid(store, detail.session.id)
    assert owner == first.pid and owner != os.getpid()
    wait_runs_done(qtbot, window)
    assert first.exit_code == 0
    check_points(lab, store, job.name, copies)
    points = {r.vm_name: store.replicas.points(r.id) for r in store.replicas.list(job.name)}
    assert sorted(points) == sorted(FIRST_VMS)
    assert all([p.number for p in kept] == [1] for kept in points.values())

    for seed, name in enumerate(FIRST_VMS):
        churn_vm(lab, name, 24 << 20, seed=30 + seed)
    qtbot.waitUntil(window.act_run.isEnabled, timeout=10_000)
    second = run_from_jobs_view(qtbot, window, job.name)
    with qtbot.waitSignal(second.taskProgress, timeout=RUN_TIMEOUT_MS):
        pass  # a disk is being copied
    with qtbot.waitSignal(window.workers.runsChanged, timeout=RUN_TIMEOUT_MS):
        window.act_stop.trigger()
    assert second.pid != first.pid and second.pid != os.getpid()
    assert second.exit_code == 4  # the CLI's "failed"
    assert second.session_id is not None
    stopped = store.sessions.get(second.session_id)
    assert stopped.status == RunStatus.FAILED
    assert any("cancel" in e.message for e in stopped.log)
    assert session_owner_pid(store, stopped.id) == second.pid
    after = {r.vm_name: store.replicas.points(r.id) for r in store.replicas.list(job.name)}
    assert after == points
    check_points(lab, store, job.name, copies)
