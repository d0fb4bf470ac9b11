"""`replicadesk console --lab` (and `make demo`): the console opened on the built-in two-site lab.

Starts the lab in this process (as `replicadesk demo` and `console --render` do), registers it
in a new database as an administrator would (both vCenters, the proxies, a metadata
repository), creates a replication job over several lab VMs and a VM folder, and opens the
console on that database with the job selected: Run (Ctrl+R) starts it and Statistics (Ctrl+I)
follows its session. The lab stops when the window closes (Ctrl-C at the terminal closes it
too, stopping a run first). A temporary folder is removed afterwards; a folder given with
`--dir` keeps the database, so `replicadesk console --db DIR/replicadesk.db` shows the runs
again later (the lab's own files go with the lab).

A console needs a display. Without $DISPLAY or $WAYLAND_DISPLAY (and no QT_QPA_PLATFORM chosen)
`require_display` says so before anything starts, and points to the same story in the terminal.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from PySide6.QtCore import QObject, QTimer, Slot

from core.cli.labdemo import DEMO_FOLDER, DEMO_VMS, JOB
from core.errors import UsageError
from core.lab.lab import Lab
from core.lab.register import lab_job, register_lab
from core.lab.topology import LabOptions
from core.store.store import Store

DB_NAME = "replicadesk.db"
HEADLESS_HINT = (
    "without one, `make demo-headless` (or `replicadesk demo`) runs the same story in the "
    "terminal, and `replicadesk console --render DIR` draws every view to PNG files offscreen"
)


def has_display(env: dict[str, str] | None = None) -> bool:
    """True when Qt can open windows: an X or Wayland display, or a platform chosen explicitly
    (QT_QPA_PLATFORM=offscreen, vnc...)."""
    e = os.environ if env is None else env
    return any(e.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def require_display() -> None:
    if not has_display():
        raise UsageError(
            "the console needs a display ($DISPLAY or $WAYLAND_DISPLAY is not set); "
            + HEADLESS_HINT
        )


class _LabSession(QObject):
    """Glue on the GUI thread: selects the demo job once the console has read it, and turns a
    Ctrl-C or SIGTERM into stopping runs and closing the window."""

    def __init__(self, window: Any, interrupted: threading.Event) -> None:
        super().__init__(window)
        self.window = window
        self.interrupted = interrupted
        self._selected = False
        self._closing = False
        window.watcher.jobsChanged.connect(self._jobs_read)
        # Python runs signal handlers only when it gets control: this timer gives it some, and
        # checks what the handler set.
        self._poll = QTimer(self)
        self._poll.setInterval(200)
        self._poll.timeout.connect(self._check_interrupt)
        self._poll.start()

    @Slot(list)
    def _jobs_read(self, _rows: list[object]) -> None:
        if not self._selected and self.window.jobs_view.select_key(JOB):
            self._selected = True

    @Slot()
    def _check_interrupt(self) -> None:
        if not self.interrupted.is_set() or self._closing:
            return
        self._closing = True
        workers = self.window.workers
        if workers.busy:
            self.window.statusBar().showMessage("Interrupted: stopping the runs, then closing...")
            workers.idle.connect(self.window.close)
            workers.cancel_all()
        else:
            self.window.close()


def run_lab_console(
    folder: Path | None,
    vms: int = 12,
    *,
    ready: Callable[[Any], None] | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """Start the lab, set ReplicaDesk up on it and run the console until its window closes.

    `ready(window)` is called once the window is shown (tests close it from there)."""
    require_display()
    from gui.app import create_app
    from gui.main_window import MainWindow

    if folder is not None:
        folder = folder.expanduser()
        if (folder / DB_NAME).exists():
            raise UsageError(
                f"{folder / DB_NAME} already exists: the lab console sets up a new database; "
                "give an empty folder (or open that one with `replicadesk console --db`)"
            )
        folder.mkdir(parents=True, exist_ok=True)
        work = folder
    else:
        work = Path(tempfile.mkdtemp(prefix="replicadesk-console-lab-"))
    app = create_app()
    interrupted = threading.Event()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        interrupted.set()

    lab = Lab(LabOptions(vms=vms), folder=work / "lab", wan=os.geteuid() == 0)
    try:
        say(f"Starting the two-site lab ({vms} production VMs) in {work} ...")
        state = lab.start()
        where = f"behind a {state.wan_mbit:g} Mbit/s WAN" if state.wan_mbit else "on loopback"
        say(f"  production vCenter {state.production.url}: {state.vms} VMs, {state.disks} disks")
        say(f"  DR vCenter {state.dr.url} {where}")
        with Store.open(work / DB_NAME) as store:
            register_lab(store, state, work / "metadata")
            store.jobs.add(lab_job(state, JOB, DEMO_VMS, folders=(DEMO_FOLDER,)))
            say(f"  job {JOB!r}: {len(DEMO_VMS)} VMs and the folder {DEMO_FOLDER}")
            say(
                "Opening the console: select the job and Run it (Ctrl+R); close the window to "
                "stop the lab."
            )
            window = MainWindow(store)
            window.setWindowTitle("ReplicaDesk - lab")
            _LabSession(window, interrupted)
            if threading.current_thread() is threading.main_thread():
                for s in previous:
                    signal.signal(s, on_signal)
            window.show()
            window.start()
            window.statusBar().showMessage(
                f"Lab: production {state.production.url}, DR {state.dr.url}. Select "
                f"{JOB!r} and Run it (Ctrl+R).",
                60_000,
            )
            if ready is not None:
                ready(window)
            code = app.exec()
            window.workers.wait_all()
            window.deleteLater()
        say("Console closed; stopping the lab.")
        return code
    finally:
        for s, handler in previous.items():
            if threading.current_thread() is threading.main_thread():
                signal.signal(s, handler)
        lab.stop()
        if folder is None:
            shutil.rmtree(work, ignore_errors=True)
