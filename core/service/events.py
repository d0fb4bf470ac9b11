"""What the scheduler reports as it works: one `ServiceEvent` per thing an admin wants to see.

`replicadesk service` prints each as one line (or one JSON object per line with `--json`); the
console will show them live. The lasting record stays in the store (sessions and their logs,
each job's ScheduleState); an event that has no session to go in (a run skipped because the job
is locked by a run from the command line, a run missed while the service was down) is said here
and in the `core.service` log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.model.runs import RunStatus, RunTrigger


class EventKind(StrEnum):
    RECOVERED = "recovered"  # at start: runs of a dead process marked failed, stale locks cleared
    STARTED = "started"
    FINISHED = "finished"
    SKIPPED = "skipped"  # a due run not started (the job is locked or still running)
    MISSED = "missed"  # a due run dropped: outside the window, or nothing left to retry
    STOPPING = "stopping"  # a running job is being stopped (window closed, service stopping)
    RETRY_SCHEDULED = "retry scheduled"
    RPO_VIOLATED = "RPO violated"  # a VM's newest restore point is older than its job's RPO
    RPO_MET = "RPO met again"
    ERROR = "error"


@dataclass(frozen=True)
class ServiceEvent:
    time: dt.datetime  # by the scheduler's clock, in the zone it reads schedules in
    kind: EventKind
    job: str  # "" for events about the service itself
    message: str  # one line for an administrator
    session_id: int | None = None
    status: RunStatus | None = None
    trigger: RunTrigger | None = None
    attempt: int = 0

    def line(self) -> str:
        who = f"{self.job}: " if self.job else ""
        return f"{self.time:%Y-%m-%d %H:%M:%S} {who}{self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(),
            "event": str(self.kind),
            "job": self.job,
            "message": self.message,
            "session": self.session_id,
            "status": None if self.status is None else str(self.status),
            "trigger": None if self.trigger is None else str(self.trigger),
            "attempt": self.attempt,
        }


ServiceSink = Callable[[ServiceEvent], None]


def ignore(event: ServiceEvent) -> None:
    """The sink of a scheduler nobody watches (its log still goes to `logging`)."""
