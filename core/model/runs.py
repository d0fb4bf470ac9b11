"""Sessions: one run of a job (`Session`), one VM within it (`TaskSession`), and their logs.

Statistics are the ones DOMAIN.md lists: processed, read and transferred bytes, duration,
processing rate (processed / duration) and the bottleneck in Veeam's words. Times are
timezone-aware (the store keeps UTC); log messages are meant for an administrator to read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from core.errors import InvalidSettingError
from core.model import fields


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    WARNING = "warning"
    FAILED = "failed"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Bottleneck(StrEnum):
    SOURCE = "Source"
    PROXY = "Proxy"
    NETWORK = "Network"
    TARGET = "Target"
    THROTTLING = "Throttling"


class RunTrigger(StrEnum):
    MANUAL = "manual"
    SCHEDULE = "schedule"
    RETRY = "retry"
    AFTER_JOB = "after_job"
    # Replica operations (core.failover) run as sessions of the replica's job too.
    FAILOVER = "failover"
    PLANNED_FAILOVER = "planned_failover"
    UNDO_FAILOVER = "undo_failover"
    PERMANENT_FAILOVER = "permanent_failover"
    FAILBACK = "failback"
    COMMIT_FAILBACK = "commit_failback"
    UNDO_FAILBACK = "undo_failback"
    TEST_FAILOVER = "test_failover"
    TEST_CLEANUP = "test_cleanup"


REPLICATION_TRIGGERS = frozenset(
    {RunTrigger.MANUAL, RunTrigger.SCHEDULE, RunTrigger.RETRY, RunTrigger.AFTER_JOB}
)
"""Triggers of replication runs (the others are replica operations on the job's replicas)."""


def aware(field: str, value: object) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise InvalidSettingError(field, f"{fields.show(str(value))} is not a time with a zone")
    return value


@dataclass(frozen=True)
class TransferStats:
    processed_bytes: int = 0
    read_bytes: int = 0
    transferred_bytes: int = 0
    duration: float = 0.0  # seconds
    bottleneck: Bottleneck | None = None
    # Busy share of each stage over the run, 0 to 1: "source", "proxy", "network", "target".
    busy: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        for name in ("processed_bytes", "read_bytes", "transferred_bytes"):
            fields.integer(name, getattr(self, name), 0, 2**63 - 1)
        if not isinstance(self.duration, int | float) or self.duration < 0:
            raise InvalidSettingError("duration", f"{self.duration!r} is not a duration")
        if self.bottleneck is not None:
            fields.choice("bottleneck", self.bottleneck, Bottleneck)

    @property
    def bottleneck_line(self) -> str:
        """ "Source 12% > Proxy 80% > Network 35% > Target 20%", as the backup consoles show it."""
        shares = dict(self.busy)
        return " > ".join(
            f"{stage.capitalize()} {shares[stage]:.0%}"
            for stage in ("source", "proxy", "network", "target")
            if stage in shares
        )

    @property
    def rate(self) -> float:
        """Processing rate in bytes per second."""
        return self.processed_bytes / self.duration if self.duration > 0 else 0.0


def combine(parts: Iterable[TransferStats]) -> TransferStats:
    """The totals of several runs (a VM's disks, a job's VMs): bytes and time added, each
    stage's busy share weighted by duration, the busiest stage the bottleneck."""
    items = list(parts)
    duration = sum(p.duration for p in items)
    busy: dict[str, float] = {}
    for p in items:
        for stage, share in p.busy:
            busy[stage] = busy.get(stage, 0.0) + share * p.duration
    shares = {k: min(1.0, v / duration) for k, v in busy.items()} if duration > 0 else {}
    top = max(shares, key=lambda k: shares[k]) if shares else None
    bottleneck = (
        Bottleneck(top.capitalize())
        if top
        else next((p.bottleneck for p in reversed(items) if p.bottleneck), None)
    )
    return TransferStats(
        sum(p.processed_bytes for p in items),
        sum(p.read_bytes for p in items),
        sum(p.transferred_bytes for p in items),
        duration,
        bottleneck,
        tuple(sorted(shares.items())),
    )


@dataclass(frozen=True)
class LogEntry:
    time: dt.datetime
    severity: Severity
    message: str

    def __post_init__(self) -> None:
        aware("time", self.time)
        fields.choice("severity", self.severity, Severity)
        fields.text("message", self.message, max_len=10_000)


@dataclass(frozen=True)
class TaskSession:
    """One VM in one run."""

    id: int
    session_id: int
    vm_moref: str
    vm_name: str
    status: RunStatus
    started: dt.datetime
    ended: dt.datetime | None = None
    stats: TransferStats = TransferStats()
    log: tuple[LogEntry, ...] = ()


@dataclass(frozen=True)
class Session:
    """One run of a job."""

    id: int
    job: str
    trigger: RunTrigger
    attempt: int  # 0 for the run itself, 1.. for its retries
    status: RunStatus
    started: dt.datetime
    ended: dt.datetime | None = None
    stats: TransferStats = TransferStats()
    log: tuple[LogEntry, ...] = ()


@dataclass(frozen=True)
class ScheduleState:
    """What the scheduler remembers of a job between restarts."""

    job: str
    last_run: dt.datetime | None = None
    last_status: RunStatus | None = None
    next_run: dt.datetime | None = None
    retries_done: int = 0  # retries made after the last scheduled run
    retry_at: dt.datetime | None = None  # when the next retry of failed VMs is due

    def __post_init__(self) -> None:
        for name in ("last_run", "next_run", "retry_at"):
            value = getattr(self, name)
            if value is not None:
                aware(name, value)
        fields.integer("retries_done", self.retries_done, 0, 99)
