"""Every replica operation is a session of the replica's job, with one task for its VM.

`Operation` opens the session (its trigger says which operation: `RunTrigger.FAILOVER`...), the
VM's task, logs in an administrator's words, and ends the session Success, Warning (something
was logged as a warning, e.g. a re-IP that failed) or Failed (an error, which is logged and
raised again). The replica's state machine is checked here too: `require_state` refuses an
operation the replica's state does not allow, naming the state and what to do instead.

Long operations (planned failover, failback) take a `cancel` event, looked at between their steps
(`check_cancel`); a cancelled operation ends in the state its function documents and raises
`OperationCancelledError` (a `CancelledError`), its session Failed with the line saying so. Every
operation takes `on_started(session_id)`, called as soon as its session exists, so a console
follows that session live.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from types import TracebackType

from core.errors import CancelledError, ReplicaDeskError, ReplicaStateError
from core.model.replicas import Replica, ReplicaState
from core.model.runs import RunStatus, RunTrigger, Severity, TransferStats
from core.store.locks import replica_key, vm_key
from core.store.store import Store
from core.vsphere.networks import IsolatedNetwork

FAILED_OVER = frozenset({ReplicaState.FAILOVER, ReplicaState.REIP_FAILED})
"""States of a replica whose VM runs at the DR site after a failover."""

_HINTS = {
    ReplicaState.FAILOVER: "undo the failover, make it permanent or fail back first",
    ReplicaState.REIP_FAILED: "it is failed over (re-IP failed): undo the failover, make it "
    "permanent or fail back first",
    ReplicaState.FAILBACK: "commit or undo the failback first",
    ReplicaState.PERMANENT_FAILOVER: "it was failed over permanently and is production now",
    ReplicaState.NEEDS_RESYNC: "it was changed outside ReplicaDesk; resync it first",
    ReplicaState.PROCESSING: "a replication run is processing it",
    ReplicaState.READY: "it is not failed over",
}


class OperationCancelledError(CancelledError):
    """Replica {}: cancelled: {}"""


Started = Callable[[int], None]
"""Called with the operation's (or plan run's) session ID as soon as that session exists."""


def check_cancel(cancel: threading.Event | None, replica: Replica, state: str) -> None:
    """Raise OperationCancelledError, saying the state the replica is left in, if `cancel` is
    set."""
    if cancel is not None and cancel.is_set():
        raise OperationCancelledError(replica.replica_name, state)


def locks(replica: Replica) -> list[str]:
    """The store's locks an operation on the replica holds: its source VM's and its own."""
    return [vm_key(replica.source_server, replica.vm_moref), replica_key(replica.id)]


def require_state(replica: Replica, allowed: Collection[ReplicaState], action: str) -> None:
    if replica.state in allowed:
        return
    raise ReplicaStateError(
        replica.replica_name,
        f"cannot {action} while the replica is in state {replica.state}: "
        f"{_HINTS.get(replica.state, '')}",
    )


@dataclass(frozen=True)
class OperationResult:
    session_id: int
    replica: Replica
    status: RunStatus
    warnings: tuple[str, ...] = ()
    vm: str = ""  # moref of the VM the operation brought up: replica, test VM, failback target
    network: IsolatedNetwork | None = None  # test failover: the isolated network it is on
    reip: str = ""  # failover: "verified", "failed: <why>", or "" (nothing to re-IP)


PoweredOn = Callable[[Replica, str], None]
"""Called by an operation right after it powered a VM on (the replica, the VM's moref), before
its re-IP is verified: a failover plan records the two steps apart."""


class Operation:
    """One replica operation's session; a context manager."""

    def __init__(
        self,
        store: Store,
        replica: Replica,
        trigger: RunTrigger,
        title: str,
        on_started: Started | None = None,
    ) -> None:
        self.store = store
        self.replica = replica
        self.trigger = trigger
        self.title = title
        self.warnings: list[str] = []
        self.stats = TransferStats()  # what a failback copied; nothing for the others
        self.reip = ""  # what a failover's re-IP came to (OperationResult.reip)
        self.session_id = 0
        self.task_id = 0
        self.status = RunStatus.RUNNING
        self._on_started = on_started

    def __enter__(self) -> Operation:
        session = self.store.sessions.start(self.replica.job, self.trigger)
        self.session_id = session.id
        task = self.store.sessions.start_task(
            session.id, self.replica.vm_moref, self.replica.vm_name
        )
        self.task_id = task.id
        self.store.sessions.log(
            session.id,
            Severity.INFO,
            f"{self.title} of {self.replica.vm_name!r} (replica {self.replica.replica_name!r})",
        )
        if self._on_started is not None:
            try:
                self._on_started(session.id)
            except BaseException as e:  # the session must not stay Running
                self.__exit__(type(e), e, e.__traceback__)
                raise
        return self

    def info(self, message: str) -> None:
        self.store.sessions.log(self.session_id, Severity.INFO, message, task_id=self.task_id)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.store.sessions.log(self.session_id, Severity.WARNING, message, task_id=self.task_id)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.status = RunStatus.WARNING if self.warnings else RunStatus.SUCCESS
        else:
            self.status = RunStatus.FAILED
            if isinstance(exc, ReplicaDeskError):
                message = str(exc)
            else:
                message = f"internal error: {type(exc).__name__}: {exc}"
            self.store.sessions.log(self.session_id, Severity.ERROR, message, task_id=self.task_id)
        self.store.sessions.finish_task(self.task_id, self.status, self.stats)
        self.store.sessions.finish(self.session_id, self.status, self.stats)

    def result(self, vm: str = "", network: IsolatedNetwork | None = None) -> OperationResult:
        status = RunStatus.WARNING if self.warnings else RunStatus.SUCCESS
        return OperationResult(
            self.session_id,
            self.store.replicas.get(self.replica.id),
            status,
            tuple(self.warnings),
            vm,
            network,
            self.reip,
        )
