"""Workers: the console's long operations, each a QObject on its own QThread.

A view asks for a run or an inventory; the worker calls core on its thread and reports through
queued signals; the view only updates (Vorta's jobs, Dangerzone's ConvertTask). Nothing here
touches a widget.

- `RunJobWorker` runs the job in a child process, `python -m core --db DB job run NAME --events`
  (the CLI's run: `core.jobs.runner.run_job`), and turns the JSON lines it prints
  (`core.jobs.events.event_from_json`) into signals carrying the runner's dataclasses. In a
  child, the run's VM threads (one per VM in progress, and their digest and compression work)
  do not compete with the GUI thread for this process's GIL: in the console's benchmark, a
  50-VM run inside the console stalled the event loop 100-870 ms at times, on 2 cores. The
  worker's thread only reads the pipe. Progress events come per MiB copied (thousands a second
  on a fast link); they are coalesced to one per task every 100 ms (and the last one of each
  disk always), so the GUI thread repaints at a human rate whatever the data rate. The session
  records the child as its owner, like a run of the CLI; the store watcher follows it the same
  way.
- `InventoryWorker` logs in to managed servers and reads their inventories
  (`read_inventory`), one server after the other, each reported when read.
- `Workers` starts them on threads, keeps them alive while they run, and says which jobs the
  console is running (the Stop action and the close-with-runs-going question need it).

Cancel: a run gets SIGTERM, which the CLI takes as Ctrl-C: the run stops at its next check (the
runner removes what it started and keeps every existing restore point) and the child exits. A
child that dies otherwise is reported in words, its stderr as the detail; its session, left
running, is marked failed (`fail_orphans`). The child also gets SIGTERM if the console dies
(`--events` asks for it), so a run never outlives the console that owns it.

An inventory read is one vSphere call that cannot be interrupted: a cancelled one stops before
the next server and its results are dropped.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from core.errors import EventStreamError, ReplicaDeskError
from core.jobs import events as ev
from core.jobs.servers import connect_stored
from core.store.store import Store
from core.vsphere.inventory import read_inventory

PROGRESS_EVERY = 0.1  # seconds between progress signals of one task
STDERR_SHOWN = 64 * 1024  # the end of a failed child's stderr shown as the error's detail


def run_command(db: Path, job: str) -> list[str]:
    """The child that runs `job`: core's CLI under this interpreter (in the installed bundle,
    `sys.executable` is the console's program, which runs core's CLI for `-m core`)."""
    return [sys.executable, "-m", "core", "--db", str(db), "job", "run", job, "--events"]


class Worker(QObject):
    """Base: `run` (on the worker's thread) ends by emitting `done`, whatever happened."""

    failed = Signal(str, str)  # message, detail (a traceback for internal errors)
    done = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.cancel_event = threading.Event()

    def cancel(self) -> None:
        """Ask the work to stop; safe from any thread."""
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    @Slot()
    def run(self) -> None:
        try:
            self.work()
        except ReplicaDeskError as e:
            self.failed.emit(str(e), "")
        except Exception as e:
            self.failed.emit(f"Internal error: {type(e).__name__}: {e}", traceback.format_exc())
        finally:
            self.done.emit()

    def work(self) -> None:
        raise NotImplementedError


class RunJobWorker(Worker):
    sessionStarted = Signal(object)  # events.SessionStarted
    taskStarted = Signal(object)  # events.TaskStarted
    taskProgress = Signal(object)  # events.TaskProgress (coalesced)
    taskLog = Signal(object)  # events.TaskLog
    taskFinished = Signal(object)  # events.TaskFinished
    sessionFinished = Signal(object)  # events.SessionFinished
    finished = Signal(object)  # the run's Session, as the store has it once it ended

    def __init__(self, store: Store, job: str) -> None:
        super().__init__()
        self.store = store
        self.job = job
        self.session_id: int | None = None
        self.pid: int | None = None  # the child's, once started
        self.exit_code: int | None = None  # the child's, once it ended (-N: killed by signal N)
        self._proc: subprocess.Popen[bytes] | None = None
        self._proc_lock = threading.Lock()  # the child is started and signalled under it
        self._signalled = False
        self._ended: ev.SessionFinished | None = None
        self._error: ev.RunError | None = None
        self._unreadable: list[str] = []  # stdout lines that were not events
        self._last_progress: dict[int, float] = {}

    def cancel(self) -> None:
        """SIGTERM to the child, once (a second one would kill it); safe from any thread."""
        with self._proc_lock:
            self.cancel_event.set()
            self._terminate()

    def _terminate(self) -> None:
        if self._proc is not None and not self._signalled and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            self._signalled = True

    def work(self) -> None:
        with tempfile.TemporaryFile() as stderr:
            with self._proc_lock:
                if self.cancelled:
                    return  # stopped before it started: nothing ran
                proc = subprocess.Popen(
                    run_command(self.store.path, self.job),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                )
                self._proc = proc
                self.pid = proc.pid
            assert proc.stdout is not None
            with proc.stdout:
                for line in proc.stdout:
                    self._line(line)
            code = self.exit_code = proc.wait()
            stderr.seek(0, 2)
            stderr.seek(max(0, stderr.tell() - STDERR_SHOWN))
            errors = stderr.read().decode("utf-8", "replace")
        self._report(code, errors)

    def _line(self, untrusted_line: bytes) -> None:
        try:
            event = ev.event_from_json(untrusted_line)
        except EventStreamError as e:
            self._unreadable.append(str(e))
            return
        if isinstance(event, ev.TaskProgress):
            if self._due(event):
                self.taskProgress.emit(event)
        elif isinstance(event, ev.SessionStarted):
            self.session_id = event.session_id
            self.sessionStarted.emit(event)
        elif isinstance(event, ev.TaskStarted):
            self.taskStarted.emit(event)
        elif isinstance(event, ev.TaskLog):
            self.taskLog.emit(event)
        elif isinstance(event, ev.TaskFinished):
            self.taskFinished.emit(event)
        elif isinstance(event, ev.SessionFinished):
            self._ended = event
            self.sessionFinished.emit(event)
        else:
            self._error = event

    def _due(self, event: ev.TaskProgress) -> bool:
        now = time.monotonic()
        last = self._last_progress.get(event.task_id, 0.0)
        if event.done < event.total and now - last < PROGRESS_EVERY:
            return False
        self._last_progress[event.task_id] = now
        return True

    def _report(self, code: int, errors: str) -> None:
        """The run ended (SessionFinished), was refused or failed in core's words (RunError), or
        its process died: each said in words, stderr as the detail."""
        detail = errors.strip()
        if self._unreadable:
            detail += "\n\nLines of its output that were not events:\n" + "\n".join(
                self._unreadable
            )
        if self._ended is not None:
            self.finished.emit(self.store.sessions.get(self._ended.session_id))
            return
        if self._error is not None:
            self.failed.emit(self._error.message, detail)
            return
        if self.cancelled and self.session_id is None and code == -signal.SIGTERM:
            return  # stopped while the child was starting, before it ran anything
        if code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:  # a real-time signal has no name
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        message = (
            f"The run of job {self.job} stopped unexpectedly: its process (pid {self.pid}) {how}"
        )
        if self.session_id is not None:
            # Its session is still 'running' in the store, its owner gone: end it as failed.
            self.store.sessions.fail_orphans()
            message += f"; session {self.session_id} is marked failed"
        self.failed.emit(message + ".", detail or "It printed nothing on stderr.")


class InventoryWorker(Worker):
    loaded = Signal(str, object)  # server address, Inventory
    serverFailed = Signal(str, str)  # server address, message

    def __init__(self, store: Store, addresses: list[str]) -> None:
        super().__init__()
        self.store = store
        self.addresses = addresses

    def work(self) -> None:
        for address in self.addresses:
            if self.cancelled:
                return
            try:
                with connect_stored(self.store, address, keepalive=False) as client:
                    inventory = read_inventory(client)
            except ReplicaDeskError as e:
                self.serverFailed.emit(address, str(e))
                continue
            if not self.cancelled:
                self.loaded.emit(address, inventory)


class Workers(QObject):
    """Starts workers on their own threads and keeps both alive until the work is done."""

    runsChanged = Signal()  # a console-started run began or ended
    idle = Signal()  # the last running worker ended

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._threads: dict[QThread, Worker] = {}
        self.runs: dict[str, RunJobWorker] = {}  # job name -> its run, while it runs

    def start(self, worker: Worker) -> Worker:
        thread = QThread()
        thread.setObjectName(type(worker).__name__)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        # Direct: the thread ends itself (QThread.quit is thread-safe), so `wait_all` can block
        # the GUI thread without waiting on a quit queued to that very thread.
        worker.done.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        # A bound slot of this GUI-thread object: queued, so the bookkeeping runs here.
        thread.finished.connect(self._thread_finished)
        self._threads[thread] = worker
        if isinstance(worker, RunJobWorker):
            self.runs[worker.job] = worker
            self.runsChanged.emit()
        thread.start()
        return worker

    def run_job(self, store: Store, job: str) -> RunJobWorker:
        worker = RunJobWorker(store, job)
        self.start(worker)
        return worker

    def load_inventory(self, store: Store, addresses: list[str]) -> InventoryWorker:
        worker = InventoryWorker(store, addresses)
        self.start(worker)
        return worker

    @Slot()
    def _thread_finished(self) -> None:
        thread = self.sender()
        if isinstance(thread, QThread):
            self._forget(thread)

    def _forget(self, thread: QThread) -> None:
        if thread not in self._threads:
            return  # already forgotten by `wait_all`
        worker = self._threads.pop(thread)
        if isinstance(worker, RunJobWorker) and self.runs.get(worker.job) is worker:
            del self.runs[worker.job]
            self.runsChanged.emit()
        if not self._threads:
            self.idle.emit()

    @property
    def busy(self) -> bool:
        return bool(self._threads)

    def running(self, *kinds: type[Worker]) -> list[Worker]:
        """The workers of these kinds that have not ended (or not been waited for)."""
        return [w for w in self._threads.values() if isinstance(w, kinds)]

    def cancel_all(self) -> None:
        for worker in self._threads.values():
            worker.cancel()

    def wait_all(self) -> None:
        """Block until every worker has ended (only at shutdown, after `cancel_all`), and
        forget them now: their threads' queued `finished` would come after the caller went on
        (a run's child process takes a moment to exit after its session ended)."""
        for thread in list(self._threads):
            thread.wait()
            self._forget(thread)
