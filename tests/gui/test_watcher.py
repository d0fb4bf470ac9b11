"""The StoreWatcher reads on its own thread and shows runs made by other processes.

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
from core.model.runs import RunStatus, Session
from core.store.store import Store
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
