"""Workers: the console's long operations, each a QObject on its own QThread.

A view asks for a run or an inventory; the worker calls core on its thread and reports through
queued signals; the view only updates (Vorta's jobs, Dangerzone's ConvertTask). Nothing here
touches a widget.

- `RunJobWorker` calls `core.jobs.runner.run_job` with a cancel Event and turns the runner's
  typed events into signals carrying the same dataclasses. Progress events come per MiB copied
  (thousands a second on a fast link); they are coalesced to one per task every 100 ms (and the
  last one of each disk always), so the GUI thread repaints at a human rate whatever the data
  rate.
- `InventoryWorker` logs in to managed servers and reads their inventories
  (`read_inventory`), one server after the other, each reported when read.
- `Workers` starts them on threads, keeps them alive while they run, and says which jobs the
  console is running (the Stop action and the close-with-runs-going question need it).

Cancel: a run stops at its next check (the runner removes what it started and keeps every
existing restore point). An inventory read is one vSphere call that cannot be interrupted: a
cancelled one stops before the next server and its results are dropped.
"""

from __future__ import annotations

import threading
import time
import traceback

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from core.errors import ReplicaDeskError
from core.jobs import events as ev
from core.jobs.runner import run_job
from core.jobs.servers import connect_stored
from core.store.store import Store
from core.vsphere.inventory import read_inventory

PROGRESS_EVERY = 0.1  # seconds between progress signals of one task


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
    finished = Signal(object)  # the Session run_job returned

    def __init__(self, store: Store, job: str) -> None:
        super().__init__()
        self.store = store
        self.job = job
        self.session_id: int | None = None
        self._lock = threading.Lock()
        self._last_progress: dict[int, float] = {}

    def work(self) -> None:
        session = run_job(self.store, self.job, cancel=self.cancel_event, events=self._event)
        self.finished.emit(session)

    def _event(self, event: ev.Event) -> None:
        """The runner's sink: called on its VM threads, so it only emits (queued) signals."""
        if isinstance(event, ev.TaskProgress):
            if not self._due(event):
                return
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
            self.sessionFinished.emit(event)

    def _due(self, event: ev.TaskProgress) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last_progress.get(event.task_id, 0.0)
            if event.done < event.total and now - last < PROGRESS_EVERY:
                return False
            self._last_progress[event.task_id] = now
            return True


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
        if not isinstance(thread, QThread):
            return
        worker = self._threads.pop(thread, None)
        if isinstance(worker, RunJobWorker) and self.runs.get(worker.job) is worker:
            del self.runs[worker.job]
            self.runsChanged.emit()
        if not self._threads:
            self.idle.emit()

    @property
    def busy(self) -> bool:
        return bool(self._threads)

    def cancel_all(self) -> None:
        for worker in self._threads.values():
            worker.cancel()

    def wait_all(self) -> None:
        """Block until every worker has ended (only at shutdown, after `cancel_all`)."""
        for thread in list(self._threads):
            thread.wait()
