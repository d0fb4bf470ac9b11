"""What a running job tells the world: typed progress events.

The runner calls an `EventSink` (a plain callable) from its worker threads; the CLI prints the
events, the console turns them into Qt signals, the service ignores most of them. The store holds
the lasting record (sessions, task sessions, their logs); events are only for watching live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.model.runs import RunStatus, Severity


@dataclass(frozen=True)
class SessionStarted:
    session_id: int
    job: str
    vms: int


@dataclass(frozen=True)
class TaskStarted:
    session_id: int
    task_id: int
    vm: str


@dataclass(frozen=True)
class TaskProgress:
    session_id: int
    task_id: int
    vm: str
    disk_key: int
    phase: str  # "copy", "rebuild"
    done: int
    total: int


@dataclass(frozen=True)
class TaskLog:
    session_id: int
    task_id: int | None
    vm: str
    severity: Severity
    message: str


@dataclass(frozen=True)
class TaskFinished:
    session_id: int
    task_id: int
    vm: str
    status: RunStatus
    processed_bytes: int
    transferred_bytes: int


@dataclass(frozen=True)
class SessionFinished:
    session_id: int
    job: str
    status: RunStatus


Event = SessionStarted | TaskStarted | TaskProgress | TaskLog | TaskFinished | SessionFinished
EventSink = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The sink of a run nobody watches."""
