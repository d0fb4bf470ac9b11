"""`replicadesk console --lab` (`make demo`): the console opened on a lab it starts itself, and the
clear refusal without a display."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtWidgets import QApplication

from core.cli.labdemo import JOB
from core.store.store import Store
from gui.lab_console import DB_NAME, has_display, run_lab_console
from gui.main_window import MainWindow

ROOT = Path(__file__).resolve().parents[2]


class Interrupter(QObject):
    """Once the console shows the demo job selected, sends this process a SIGINT (what Ctrl-C
    at the terminal does)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.seen: list[str] = []
        self.timer = QTimer(self)
        self.timer.setInterval(50)
        self.timer.timeout.connect(self.check)
        self.timer.start()

    @Slot()
    def check(self) -> None:
        if [j.name for j in self.window.selected_jobs()] == [JOB]:
            self.seen = [r.name for r in self.window.jobs_model.records()]
            self.timer.stop()
            os.kill(os.getpid(), signal.SIGINT)


def test_lab_console_opens_on_the_job_and_stops_the_lab(tmp_path: Path, qapp: QApplication):
    folder = tmp_path / "demo"
    windows: list[MainWindow] = []
    watchers: list[Interrupter] = []
    lines: list[str] = []

    def ready(window: MainWindow) -> None:
        windows.append(window)
        watchers.append(Interrupter(window))
        # The test's own deadline: a console that never selects the job must not hang here.
        QTimer.singleShot(120_000, window.close)

    before = signal.getsignal(signal.SIGINT)
    code = run_lab_console(folder, vms=6, ready=ready, say=lines.append)
    assert code == 0
    assert watchers[0].seen == [JOB], "the console did not show the demo job selected"
    assert signal.getsignal(signal.SIGINT) is before
    assert any("production vCenter" in line for line in lines)
    # The database stays in the given folder, the lab's files are gone.
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(DB_NAME)) == [
        "metadata"
    ]
    with Store.open(folder / DB_NAME) as store:
        assert store.jobs.names() == [JOB]
    # A second start in the same folder refuses rather than mixing two labs in one database.
    proc = subprocess.run(
        [sys.executable, "-m", "core", "console", "--lab", "--dir", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert proc.returncode == 2 and "already exists" in proc.stderr


def test_without_a_display_it_says_so_and_points_to_the_headless_demo() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    assert not has_display(env)
    for argv in (["console", "--lab"], ["console"]):
        proc = subprocess.run(
            [sys.executable, "-m", "core", *argv],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert proc.returncode == 2, proc.stderr
        assert "needs a display" in proc.stderr and "make demo-headless" in proc.stderr
        assert "Starting the two-site lab" not in proc.stdout
