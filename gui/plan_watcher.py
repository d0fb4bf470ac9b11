"""`PlanWatcher`: failover plans and plan sessions read on a worker thread, as `StoreWatcher` does
for jobs and sessions; the polling on its own thread is their base's (gui.watcher_base). A plan
run started here, by the CLI or by the service shows the same way.

Plan sessions shown in a plan run window are "watched": each time the database moves, a watched
session that has not ended is read again with its steps, so the window shows every VM's step as
core.plans records it.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Signal

from core.model.plans import FailoverPlan, PlanSession
from core.store.store import Store
from gui.watcher_base import DEFAULT_INTERVAL_MS, FULL_EVERY, StorePoller

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


class PlanWatcher(StorePoller[PlanSession]):
    plansChanged = Signal(list)  # [PlanRow]
    sessionsChanged = Signal(list)  # [PlanSession], newest first
    # sessionChanged (the base's): a watched PlanSession, with its steps

    thread_name = "plan-watcher"
    what = "the failover plans"
    session_words = "plan session"

    def __init__(
        self, store: Store, interval_ms: int = DEFAULT_INTERVAL_MS, full_every: int = FULL_EVERY
    ) -> None:
        super().__init__(store, interval_ms, full_every)
        self._data: PlansData | None = None

    def _read(self) -> None:
        data = read_plans(self._store)
        old = self._data
        self._data = data
        if old is None or data.plans != old.plans:
            self.plansChanged.emit(list(data.plans))
        if old is None or data.sessions != old.sessions:
            self.sessionsChanged.emit(list(data.sessions))

    def _read_session(self, session_id: int) -> PlanSession:
        return self._store.plan_sessions.get(session_id)

    def _session_ended(self, detail: PlanSession) -> bool:
        return detail.ended is not None
