"""Console tests: pytest-qt, offscreen, against a running lab, a real store and real runs.

`QT_QPA_PLATFORM=offscreen` is set before any Qt import, so the tests need no display. One lab
per test module (a few seconds to start); `ran_store` is a store on it in which a job has run
once (read-only for the model tests), `store` a fresh one per test. Waiting is on signals
(`qtbot.waitSignal`, `qtbot.waitUntil`), never on sleeps.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from core.jobs.runner import run_job
from core.lab.lab import Lab, LabState
from core.lab.register import lab_job, register_lab
from core.lab.topology import LabOptions
from core.model.runs import RunStatus, Session
from core.store.store import Store
from gui.app import create_app
from gui.main_window import MainWindow

JOB = "Tier 1 to DR"
JOB_VMS = ("dc01", "web 02 (canary)", "db #2 & replica")
IDLE_JOB = "Never run"
IDLE_VMS = ("app+cache",)


@pytest.fixture(scope="session")
def qapp() -> QApplication:
    """The console's own application object (Fusion style, names), for pytest-qt."""
    return create_app(["replicadesk-tests"])


@pytest.fixture(scope="module")
def lab(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabState]:
    """The module's `LAB_OPTIONS` when it has some (bigger disks make runs last)."""
    options = getattr(request.module, "LAB_OPTIONS", LabOptions(vms=6, disk_mib=(16, 40)))
    folder = tmp_path_factory.mktemp("lab")
    with Lab(options, folder=folder, wan=os.geteuid() == 0) as state:
        yield state


@pytest.fixture
def store(tmp_path: Path, lab: LabState) -> Iterator[Store]:
    with Store.open(tmp_path / "replicadesk.db") as s:
        register_lab(s, lab, tmp_path / "metadata")
        yield s


@dataclass(frozen=True)
class Ran:
    store: Store
    session: Session
    lab: LabState


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory, lab: LabState) -> Iterator[Ran]:
    """A store in which JOB ran once (successfully) and IDLE_JOB never did."""
    folder = tmp_path_factory.mktemp("ran")
    with Store.open(folder / "replicadesk.db") as s:
        register_lab(s, lab, folder / "metadata")
        s.jobs.add(lab_job(lab, JOB, JOB_VMS))
        s.jobs.add(lab_job(lab, IDLE_JOB, IDLE_VMS))
        session = run_job(s, JOB)
        assert session.status == RunStatus.SUCCESS, s.sessions.get(session.id).log
        yield Ran(s, session, lab)


def wait_runs_done(qtbot: QtBot, window: MainWindow) -> None:
    """Until the console's runs have ended: a run's child process exits a moment after the
    store shows its session ended (closing the window before would ask to stop it)."""
    qtbot.waitUntil(lambda: not window.workers.runs, timeout=30_000)
