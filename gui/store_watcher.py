"""`StoreWatcher`: reads the store on its own thread and tells the console what changed: jobs,
sessions, replicas and the infrastructure (`gui.snapshot.read_home`), and the sessions shown in a
session window with their tasks and logs (`read_session`).

How and why it polls on a thread of its own is its base's (gui.watcher_base.StorePoller): the
GUI thread never reads the store, and a run started anywhere shows within about a second.
"""

from __future__ import annotations

from PySide6.QtCore import Signal

from core.store.store import Store
from gui.snapshot import HomeData, SessionDetail, read_home, read_session
from gui.watcher_base import DEFAULT_INTERVAL_MS, FULL_EVERY, StorePoller

__all__ = ["DEFAULT_INTERVAL_MS", "FULL_EVERY", "StoreWatcher"]


class StoreWatcher(StorePoller[SessionDetail]):
    jobsChanged = Signal(list)  # [JobRow]
    sessionsChanged = Signal(list)  # [Session], newest first
    replicasChanged = Signal(list)  # [ReplicaRow]
    serversChanged = Signal(list)  # [ManagedServer]
    proxiesChanged = Signal(list)  # [BackupProxy]
    repositoriesChanged = Signal(list)  # [Repository]
    # sessionChanged (the base's): the SessionDetail of a watched session

    thread_name = "store-watcher"

    def __init__(
        self, store: Store, interval_ms: int = DEFAULT_INTERVAL_MS, full_every: int = FULL_EVERY
    ) -> None:
        super().__init__(store, interval_ms, full_every)
        self._home: HomeData | None = None

    def _read(self) -> None:
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

    def _read_session(self, session_id: int) -> SessionDetail:
        return read_session(self._store, session_id)

    def _session_ended(self, detail: SessionDetail) -> bool:
        return detail.session.ended is not None
