"""`PlanWatcher`: failover plans and plan sessions read on a worker thread, as `StoreWatcher` does
for jobs and sessions.

The same pattern and the same reasons (gui.store_watcher): the GUI thread never reads the
store; this object lives on its own `QThread`, asks SQLite's `PRAGMA data_version` every
`interval_ms` and reads only when another connection committed (or every `full_every` polls),
then emits frozen rows through queued signals. A plan run started here, by the CLI or by the
service shows the same way.

Plan sessions shown in a plan run window are "watched": each time the database moves, a watched
session that has not ended is read again with its steps, so the window shows every VM's step as
core.plans records it.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import traceback
from dataclasses import dataclass

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from core.errors import ReplicaDeskError
from core.model.plans import FailoverPlan, PlanSession
from core.store.store import Store
from gui.store_watcher import DEFAULT_INTERVAL_MS, FULL_EVERY

SESSIONS_LIMIT = 200


@dataclass(frozen=True)
class PlanRow:
    plan: FailoverPlan
    last: PlanSession | None  # its newest session (run, undo or test), without steps

    @property
    def name(self) -> str:
        return self.plan.name


@dataclass(frozen=True)
class PlansData:
    plans: tuple[PlanRow, ...]
    sessions: tuple[PlanSession, ...]  # newest first, without steps


def read_plans(store: Store) -> PlansData:
    sessions = tuple(store.plan_sessions.list(limit=SESSIONS_LIMIT))
    newest: dict[str, PlanSession] = {}
    for s in sessions:
        newest.setdefault(s.plan, s)
    rows = tuple(PlanRow(p, newest.get(p.name)) for p in store.plans.list())
    return PlansData(rows, sessions)


class PlanWatcher(QObject):
    plansChanged = Signal(list)  # [PlanRow]
    sessionsChanged = Signal(list)  # [PlanSession], newest first
    sessionChanged = Signal(object)  # PlanSession of a watched session, with its steps
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
        self._data: PlansData | None = None
        self._watched: dict[int, PlanSession | None] = {}
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
        thread = QThread()
        thread.setObjectName("plan-watcher")
        self.moveToThread(thread)
        thread.started.connect(self._begin)
        self._thread = thread
        thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.emit()
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
                f"Reading plan session {session_id} failed: {e}", traceback.format_exc()
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
            if (
                version != self._version
                or self._data is None
                or self._polls % self._full_every == 0
            ):
                self._version = version
                self._read()
                self._read_watched(force=False)
            self.polled.emit(dt.datetime.now(dt.UTC))
        except (ReplicaDeskError, sqlite3.Error, OSError) as e:
            self.failed.emit(f"Reading the failover plans failed: {e}", traceback.format_exc())

    def _read(self) -> None:
        data = read_plans(self._store)
        old = self._data
        self._data = data
        if old is None or data.plans != old.plans:
            self.plansChanged.emit(list(data.plans))
        if old is None or data.sessions != old.sessions:
            self.sessionsChanged.emit(list(data.sessions))

    def _read_watched(self, force: bool) -> None:
        for sid, old in list(self._watched.items()):
            if not force and old is not None and old.ended is not None:
                continue
            session = self._store.plan_sessions.get(sid)
            if session != old or force:
                self._watched[sid] = session
                self.sessionChanged.emit(session)
