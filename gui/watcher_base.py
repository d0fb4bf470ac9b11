"""`StorePoller`: the base of the console's store watchers, a QObject on its own thread that polls
the store and emits what changed (gui.store_watcher: jobs, sessions, replicas, infrastructure;
gui.plan_watcher: failover plans and plan sessions).

Why a worker: reading SQLite in WAL mode takes a few milliseconds, but a reader can still wait
on the disk (a cold page cache, a checkpoint, a writer's `fsync` with `synchronous=FULL`), and
the console's rule is that the GUI thread never waits on a disk. So the GUI thread never calls
the store: a watcher lives on a `QThread`, polls, and emits frozen rows through queued signals;
models only compare and repaint.

Polling, not notifications: runs and plans are written by other processes too (`replicadesk job
run`, `replicadesk plan run`, the service), and SQLite has no cross-process change notification.
Every `interval_ms` the watcher asks SQLite's `PRAGMA data_version` (a counter that moves when
another connection commits; one cheap query on a private read-only connection) and reads only
when it moved, or every `full_every` polls anyway (next-run times and "Last 24 hours" depend on
the clock). A change made anywhere shows within about a second.

Sessions shown in a window are "watched": each time the database moves, a watched session that
has not ended is read again (with its tasks and logs, or its steps) and emitted as
`sessionChanged`. What a subclass reads, and how, is its own: `_read` (the overview, emitting its
own signals), `_read_session` and `_session_ended`.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import traceback
from typing import Generic, TypeVar

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from core.errors import ReplicaDeskError
from core.store.store import Store

DEFAULT_INTERVAL_MS = 1000
FULL_EVERY = 10  # polls between unconditional reads

Detail = TypeVar("Detail")  # what a watched session is read as


class StorePoller(QObject, Generic[Detail]):
    sessionChanged = Signal(object)  # Detail of a watched session
    polled = Signal(object)  # the UTC time of a read that completed
    failed = Signal(str, str)  # message, detail

    _watch = Signal(int)
    _unwatch = Signal(int)
    _poll_now = Signal()
    _stop = Signal()

    thread_name = "store-poller"
    what = "the database"  # "Reading {what} failed"
    session_words = "session"  # "Reading {session_words} 12 failed"

    def __init__(
        self, store: Store, interval_ms: int = DEFAULT_INTERVAL_MS, full_every: int = FULL_EVERY
    ) -> None:
        super().__init__()
        self._store = store
        self._interval = interval_ms
        self._full_every = full_every
        self._loaded = False  # a first read completed
        self._watched: dict[int, Detail | None] = {}
        self._version: int | None = None
        self._polls = 0
        self._counter: sqlite3.Connection | None = None
        self._timer: QTimer | None = None
        self._thread: QThread | None = None
        self._watch.connect(self._add_watch)
        self._unwatch.connect(self._remove_watch)
        self._poll_now.connect(self.poll)
        self._stop.connect(self._end)

    # -- what a watcher reads (on its thread) ------------------------------------------------------

    def _read(self) -> None:
        """Read the overview and emit what changed since the last read."""
        raise NotImplementedError

    def _read_session(self, session_id: int) -> Detail:
        raise NotImplementedError

    def _session_ended(self, detail: Detail) -> bool:
        """An ended session does not change any more: it is not read again."""
        raise NotImplementedError

    # -- called from the GUI thread ---------------------------------------------------------------

    def start(self) -> None:
        """Move to a new thread and start polling there (the first read happens at once)."""
        thread = QThread()
        thread.setObjectName(self.thread_name)
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

    @property
    def running(self) -> bool:
        return self._thread is not None

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
            self.failed.emit(
                f"Reading {self.session_words} {session_id} failed: {e}", traceback.format_exc()
            )

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
            self._polls += 1
            if version != self._version or not self._loaded or self._polls % self._full_every == 0:
                self._version = version
                self._read()
                self._loaded = True
                self._read_watched(force=False)
            self.polled.emit(dt.datetime.now(dt.UTC))
        except (ReplicaDeskError, sqlite3.Error, OSError) as e:
            self.failed.emit(f"Reading {self.what} failed: {e}", traceback.format_exc())

    def _read_watched(self, force: bool) -> None:
        for sid, old in list(self._watched.items()):
            if not force and old is not None and self._session_ended(old):
                continue
            detail = self._read_session(sid)
            if detail != old or force:
                self._watched[sid] = detail
                self.sessionChanged.emit(detail)
