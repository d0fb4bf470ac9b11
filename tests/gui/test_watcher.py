"""The store watchers read on their own thread and show what other writers did: the
StoreWatcher a run of the CLI, the PlanWatcher plans and a plan session (gui.watcher_base is
their shared polling).

Its signals come from the watcher's thread; tests wait on them through `Relay` (a QObject on
the GUI thread), since pytest-qt's blockers are not QObjects and would be called on the
emitting thread.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from pytestqt.qtbot import QtBot

from core.lab.lab import LabState
from core.lab.register import lab_job
from core.model.plans import FailoverPlan, PlanAction, PlanItem, PlanSession, StepKind
from core.model.runs import RunStatus, Session
from core.store.store import Store
from gui.plan_watcher import PlanRow, PlanWatcher
from gui.render import Relay
from gui.snapshot import JobRow, SessionDetail
from gui.store_watcher import StoreWatcher
from tests.gui.conftest import JOB, JOB_VMS

ROOT = Path(__file__).resolve().parents[2]


def test_reads_happen_on_the_watcher_thread(qtbot: QtBot, store: Store, lab: LabState) -> None:
    store.jobs.add(lab_job(lab, JOB, JOB_VMS))
    watcher = StoreWatcher(store, interval_ms=100)
    readers: list[str] = []
    original = store.jobs.list

    def spy() -> list:  # type: ignore[type-arg]
        readers.append(threading.current_thread().name)
        return original()

    store.jobs.list = spy  # type: ignore[method-assign]
    relay = Relay(watcher.jobsChanged)
    with qtbot.waitSignal(relay.fired, timeout=10_000):
        watcher.start()
    try:
        [row] = relay.args[0]  # type: ignore[misc]
        assert isinstance(row, JobRow) and row.name == JOB and row.last is None
        assert readers and threading.main_thread().name not in readers
    finally:
        watcher.stop()
        del store.jobs.list


def test_a_run_of_the_cli_shows_live(qtbot: QtBot, store: Store, lab: LabState) -> None:
    """`replicadesk job run` in another process: the console sees its session end."""
    store.jobs.add(lab_job(lab, JOB, JOB_VMS))
    watcher = StoreWatcher(store, interval_ms=100)
    first = Relay(watcher.jobsChanged)
    with qtbot.waitSignal(first.fired, timeout=10_000):
        watcher.start()
    try:
        cli = subprocess.Popen(
            [sys.executable, "-m", "core", "--db", str(store.path), "job", "run", JOB],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

        def ended(sessions: list[Session]) -> bool:
            return any(s.job == JOB and s.ended is not None for s in sessions)

        relay = Relay(watcher.sessionsChanged, ended)
        with qtbot.waitSignal(relay.fired, timeout=120_000):
            pass
        out, _ = cli.communicate(timeout=60)
        assert cli.returncode == 0, out
        [session] = [s for s in relay.args[0] if s.job == JOB]  # type: ignore[attr-defined]
        assert session.status == RunStatus.SUCCESS

        details = Relay(watcher.sessionChanged)
        with qtbot.waitSignal(details.fired, timeout=10_000):
            watcher.watch(session.id)
        detail = details.args[0]
        assert isinstance(detail, SessionDetail)
        assert {t.vm_name for t in detail.tasks} == set(JOB_VMS)
        assert all(t.status == RunStatus.SUCCESS for t in detail.tasks)
    finally:
        watcher.stop()


def test_the_plan_watcher_shows_other_writers_and_follows_a_plan_session(
    qtbot: QtBot, store: Store
) -> None:
    """The PlanWatcher polls as the StoreWatcher does (their shared base): a plan and a plan
    session written by another connection show; a watched session is read until it ends, and
    not after."""
    watcher = PlanWatcher(store, interval_ms=100)
    readers: list[str] = []
    gets: list[int] = []
    list_plans, get_session = store.plans.list, store.plan_sessions.get

    def spy_list() -> list:  # type: ignore[type-arg]
        readers.append(threading.current_thread().name)
        return list_plans()

    def spy_get(session_id: int) -> PlanSession:
        gets.append(session_id)
        return get_session(session_id)

    store.plans.list = spy_list  # type: ignore[method-assign]
    store.plan_sessions.get = spy_get  # type: ignore[method-assign]
    first = Relay(watcher.plansChanged)
    with qtbot.waitSignal(first.fired, timeout=10_000):
        watcher.start()
    try:
        assert watcher.running and first.args[0] == []
        added = Relay(watcher.plansChanged, lambda rows: bool(rows))
        with Store.open(store.path) as other, qtbot.waitSignal(added.fired, timeout=10_000):
            other.plans.add(FailoverPlan("Tier 1", (PlanItem("dc01"),)))
            session = other.plan_sessions.start("Tier 1", PlanAction.RUN)
        [row] = added.args[0]  # type: ignore[misc]
        assert isinstance(row, PlanRow) and row.name == "Tier 1"
        assert readers and threading.main_thread().name not in readers

        shown = Relay(watcher.sessionChanged)
        with qtbot.waitSignal(shown.fired, timeout=10_000):
            watcher.watch(session.id)
        assert shown.args[0] == get_session(session.id)
        ended = Relay(watcher.sessionChanged, lambda s: s.ended is not None)
        with Store.open(store.path) as other, qtbot.waitSignal(ended.fired, timeout=10_000):
            other.plan_sessions.step(session.id, StepKind.INFO, "from another writer")
            other.plan_sessions.finish(session.id, RunStatus.SUCCESS)
        final = ended.args[0]
        assert isinstance(final, PlanSession) and final.status == RunStatus.SUCCESS
        assert [s.message for s in final.steps] == ["from another writer"]

        # Ended: the database moves again, the watcher reads, but not that session.
        reads = len(gets)
        moved = Relay(watcher.plansChanged, lambda rows: len(rows) == 2)
        # `polled` ends a poll, after its watched sessions were read: queued after `moved`.
        polled = Relay(watcher.polled, lambda _at: moved.count > 0)
        with Store.open(store.path) as other, qtbot.waitSignal(polled.fired, timeout=10_000):
            other.plans.add(FailoverPlan("Tier 2", (PlanItem("db #2 & replica"),)))
        assert len(gets) == reads
    finally:
        watcher.stop()
        del store.plans.list
        del store.plan_sessions.get
    assert not watcher.running
