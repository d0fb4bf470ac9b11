"""`StoreWatcher`: reads the store on its own thread and tells the console what changed.

Why a worker: reading SQLite in WAL mode takes a few milliseconds, but a reader can still wait
on the disk (a cold page cache, a checkpoint, a writer's `fsync` with `synchronous=FULL`), and
the console's rule is that the GUI thread never waits on a disk. So the GUI thread never calls
the store: this object lives on a `QThread`, polls, and emits frozen rows through queued
signals; models only compare and repaint.

Polling, not notifications: runs are written by other processes too (`replicadesk job run`,
the service), and SQLite has no cross-process change notification. Every `interval_ms` the
watcher asks SQLite's `PRAGMA data_version` (a counter that moves when another connection
commits; one cheap query on a private read-only connection) and reads everything only when it
moved, or every `full_every` polls anyway (next-run times and "Last 24 hours" depend on the
clock). A run started anywhere shows within about a second.

Sessions shown in a session window are "watched": their tasks and logs are read on each change.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import traceback

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from core.errors import ReplicaDeskError
from core.store.store import Store
from gui.snapshot import HomeData, SessionDetail, read_home, read_session

DEFAULT_INTERVAL_MS = 1000
FULL_EVERY = 10  # polls between unconditional reads


class StoreWatcher(QObject):
    jobsChanged = Signal(list)  # [JobRow]
    sessionsChanged = Signal(list)  # [Session], newest first
    replicasChanged = Signal(list)  # [ReplicaRow]
    serversChanged = Signal(list)  # [ManagedServer]
    proxiesChanged = Signal(list)  # [BackupProxy]
    repositoriesChanged = Signal(list)  # [Repository]
    sessionChanged = Signal(object)  # SessionDetail of a watched session
    polled = Signal(object)  # the UTC time of a read that completed
    failed = Signal(str, str)  # message, detail

    _watch = Signal(int)
    _unwatch = Signal(int)
    _poll_now = Signal()
    _stop = Signal()

    def __init__(
        self, store: Store, interval_ms: int = DEFAULT_INTERVAL_MS, full_every: int = FULL_EVERY
    ) -> None:
        super().__init__()
        self._store = store
        self._interval = interval_ms
        self._full_every = full_every
        self._home: HomeData | None = None
        self._watched: dict[int, SessionDetail | None] = {}
        self._version: int | None = None
        self._polls = 0
        self._counter: sqlite3.Connection | None = None
        self._timer: QTimer | None = None
        self._thread: QThread | None = None
        self._watch.connect(self._add_watch)
        self._unwatch.connect(self._remove_watch)
        self._poll_now.connect(self.poll)
        self._stop.connect(self._end)

    # -- called from the GUI thread ---------------------------------------------------------------

    def start(self) -> None:
        """Move to a new thread and start polling there (the first read happens at once)."""
        thread = QThread()
        thread.setObjectName("store-watcher")
        self.moveToThread(thread)
        thread.started.connect(self._begin)
        self._thread = thread
        thread.start()

    def stop(self) -> None:
        """Stop polling and end the thread (a read in progress finishes first: milliseconds)."""
        if self._thread is not None:
            self._stop.emit()  # queued: the timer stops on its own thread, which then quits
            self._thread.wait()
            self._thread = None

    def watch(self, session_id: int) -> None:
        self._watch.emit(session_id)

    def unwatch(self, session_id: int) -> None:
        self._unwatch.emit(session_id)

    def refresh(self) -> None:
        """Read everything now (after the console itself changed something)."""
        self._poll_now.emit()

    # -- on the watcher's thread ------------------------------------------------------------------

    @Slot()
    def _begin(self) -> None:
        timer = QTimer(self)
        timer.setInterval(self._interval)
        timer.timeout.connect(self.poll)
        self._timer = timer
        timer.start()
        self._version = None
        self.poll()

    @Slot()
    def _end(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer.deleteLater()
            self._timer = None
        if self._counter is not None:
            self._counter.close()
            self._counter = None
        self.thread().quit()

    @Slot(int)
    def _add_watch(self, session_id: int) -> None:
        self._watched[session_id] = None
        try:
            self._read_watched(force=True)
        except (ReplicaDeskError, sqlite3.Error, OSError) as e:
            self.failed.emit(f"Reading session {session_id} failed: {e}", traceback.format_exc())

    @Slot(int)
    def _remove_watch(self, session_id: int) -> None:
        self._watched.pop(session_id, None)

    def _data_version(self) -> int:
        if self._counter is None:
            uri = self._store.path.resolve().as_uri() + "?mode=ro"
            self._counter = sqlite3.connect(uri, uri=True, check_same_thread=False)
        row = self._counter.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    @Slot()
    def poll(self) -> None:
        try:
            version = self._data_version()
            changed = version != self._version
            self._polls += 1
            if changed or self._home is None or self._polls % self._full_every == 0:
                self._version = version
                self._read_home()
                self._read_watched(force=False)
            self.polled.emit(dt.datetime.now(dt.UTC))
        except (ReplicaDeskError, sqlite3.Error, OSError) as e:
            self.failed.emit(f"Reading the database failed: {e}", traceback.format_exc())

    def _read_home(self) -> None:
        home = read_home(self._store)
        old = self._home
        self._home = home
        if old is None or home.jobs != old.jobs:
            self.jobsChanged.emit(list(home.jobs))
        if old is None or home.sessions != old.sessions:
            self.sessionsChanged.emit(list(home.sessions))
        if old is None or home.replicas != old.replicas:
            self.replicasChanged.emit(list(home.replicas))
        if old is None or home.servers != old.servers:
            self.serversChanged.emit(list(home.servers))
        if old is None or home.proxies != old.proxies:
            self.proxiesChanged.emit(list(home.proxies))
        if old is None or home.repositories != old.repositories:
            self.repositoriesChanged.emit(list(home.repositories))

    def _read_watched(self, force: bool) -> None:
        for sid, old in list(self._watched.items()):
            if not force and old is not None and old.session.ended is not None:
                continue  # an ended session does not change any more
            detail = read_session(self._store, sid)
            if detail != old or force:
                self._watched[sid] = detail
                self.sessionChanged.emit(detail)
