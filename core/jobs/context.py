"""What every VM task of one job run shares: the job, the sessions, the servers, the proxies.

Built once per run by `core.jobs.runner`; read by `core.jobs.vmtask`. The proxy pool hands out
task slots on the target proxies (each proxy's task limit), so a job never runs more disk tasks
on a proxy than it allows; a run that must write without a proxy (the target datastore is seen
by this machine) uses the backup server's own slot.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from core.engine import RemoteSpec
from core.errors import CancelledError, JobRunError
from core.jobs.events import EventSink, TaskLog
from core.model.infra import BackupProxy, ManagedServer, Repository
from core.model.job import ReplicationJob
from core.model.runs import Severity
from core.store.store import Store
from core.vsphere.connection import VSphereClient
from core.vsphere.models import Inventory

LOCAL_TASKS = 2  # disk tasks the backup server runs itself when it writes without a proxy


@dataclass
class ProxyPool:
    """Task slots on the job's target proxies."""

    proxies: list[BackupProxy]
    _free: dict[str, int] = field(default_factory=dict, init=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False)
    _refused: set[tuple[str, str]] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self._free = {p.name: p.max_tasks for p in self.proxies}
        self._free[""] = LOCAL_TASKS

    @property
    def slots(self) -> int:
        return sum(p.max_tasks for p in self.proxies) or LOCAL_TASKS

    def refuse(self, proxy: str, datastore: str) -> None:
        """This proxy cannot write to this datastore (it does not see it)."""
        with self._cond:
            self._refused.add((proxy, datastore))

    def candidates(self, datastore: str) -> list[BackupProxy]:
        with self._cond:
            return [p for p in self.proxies if (p.name, datastore) not in self._refused]

    @contextmanager
    def slot(self, proxy: str, cancel: threading.Event) -> Iterator[None]:
        """Hold one task slot of `proxy` ("" for the backup server itself)."""
        with self._cond:
            while self._free[proxy] <= 0:
                if cancel.is_set():
                    raise CancelledError("while waiting for a proxy task slot")
                self._cond.wait(0.2)
            self._free[proxy] -= 1
        try:
            yield
        finally:
            with self._cond:
                self._free[proxy] += 1
                self._cond.notify_all()


def remote_spec(proxy: BackupProxy) -> RemoteSpec:
    if proxy.tls is None:
        raise JobRunError(
            f"proxy {proxy.name}", "it has no TLS credentials to talk to its data mover"
        )
    return RemoteSpec(proxy.address, proxy.port, proxy.tls)


@dataclass
class RunContext:
    store: Store
    job: ReplicationJob
    session_id: int
    source_server: ManagedServer
    target_server: ManagedServer
    source: VSphereClient
    target: VSphereClient
    source_inventory: Inventory
    target_inventory: Inventory
    repository: Repository
    proxies: ProxyPool
    cancel: threading.Event
    events: EventSink
    placement_lock: threading.Lock = field(default_factory=threading.Lock)

    def log(
        self, severity: Severity, message: str, task_id: int | None = None, vm: str = ""
    ) -> None:
        self.store.sessions.log(self.session_id, severity, message, task_id=task_id)
        self.events(TaskLog(self.session_id, task_id, vm, severity, message))

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise CancelledError("by request")
