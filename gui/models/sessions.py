"""Sessions (job runs), the task sessions of one run (one row per VM) and a run's log.

`TasksModel` also holds the live progress a console-started run reports (`apply_progress`,
fed by `RunJobWorker.taskProgress`): per task, the bytes done of each disk seen so far. A run
started by the CLI or the service reports no progress events to this process; its running tasks
show `PROGRESS` -1 (the view says "Processing") until the store records them ended.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from core.jobs.events import TaskProgress
from core.model.runs import LogEntry, RunStatus, RunTrigger, Session, Severity, TaskSession
from gui import format as fmt
from gui.models.base import RIGHT, Column, RecordTableModel

TRIGGER_WORDS = {
    RunTrigger.MANUAL: "Manual",
    RunTrigger.SCHEDULE: "Schedule",
    RunTrigger.RETRY: "Retry",
    RunTrigger.AFTER_JOB: "After job",
}

Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def trigger_text(s: Session) -> str:
    word = TRIGGER_WORDS.get(s.trigger, str(s.trigger).replace("_", " ").capitalize())
    return f"{word} (retry {s.attempt})" if s.attempt else word


class SessionsModel(RecordTableModel):
    ID, JOB, TRIGGER, STATUS, STARTED, ENDED, DURATION, PROCESSED, TRANSFERRED, BOTTLENECK = range(
        10
    )

    def __init__(self, parent: object = None, clock: Clock = _utcnow) -> None:
        super().__init__(parent)
        self.clock = clock
        self.columns = (
            Column("Session", lambda s: str(s.id), sort=lambda s: s.id, align=RIGHT),
            Column("Job", lambda s: s.job, width=20),
            Column("Trigger", trigger_text),
            Column("Status", lambda s: fmt.status(s.status)),
            Column(
                "Start time", lambda s: fmt.when(s.started), sort=lambda s: s.started.timestamp()
            ),
            Column("End time", lambda s: fmt.when(s.ended), sort=self._end_sort),
            Column("Duration", self._duration, sort=self._seconds, align=RIGHT),
            Column(
                "Processed",
                lambda s: fmt.size(s.stats.processed_bytes),
                sort=lambda s: s.stats.processed_bytes,
                align=RIGHT,
            ),
            Column(
                "Transferred",
                lambda s: fmt.size(s.stats.transferred_bytes),
                sort=lambda s: s.stats.transferred_bytes,
                align=RIGHT,
            ),
            Column("Bottleneck", lambda s: str(s.stats.bottleneck or "")),
        )

    status_column = STATUS

    def _seconds(self, s: Session) -> float:
        return fmt.elapsed(s.started, s.ended, self.clock())

    def _duration(self, s: Session) -> str:
        return fmt.duration(self._seconds(s))

    @staticmethod
    def _end_sort(s: Session) -> float:
        return s.ended.timestamp() if s.ended else float("inf")

    def key(self, record: Session) -> Hashable:
        return record.id

    def status(self, record: Session) -> str | None:
        return record.status


@dataclass
class DiskProgress:
    phase: str
    done: int
    total: int


class TasksModel(RecordTableModel):
    VM, STATUS, PROGRESS, PROCESSED, READ, TRANSFERRED, DURATION, RATE, BOTTLENECK = range(9)

    def __init__(self, parent: object = None, clock: Clock = _utcnow) -> None:
        super().__init__(parent)
        self.clock = clock
        self._progress: dict[int, dict[int, DiskProgress]] = {}
        self.columns = (
            Column("VM", lambda t: t.vm_name, width=24),
            Column("Status", lambda t: fmt.status(t.status)),
            Column("Progress", self._progress_text, sort=self.progress, width=18),
            Column(
                "Processed",
                lambda t: fmt.size(self.processed_bytes(t)),
                sort=self.processed_bytes,
                align=RIGHT,
            ),
            Column(
                "Read",
                lambda t: fmt.size(t.stats.read_bytes),
                sort=lambda t: t.stats.read_bytes,
                align=RIGHT,
            ),
            Column(
                "Transferred",
                lambda t: fmt.size(t.stats.transferred_bytes),
                sort=lambda t: t.stats.transferred_bytes,
                align=RIGHT,
            ),
            Column("Duration", self._duration, sort=self._seconds, align=RIGHT),
            Column("Rate", self._rate, sort=self._rate_value, align=RIGHT),
            Column(
                "Bottleneck",
                lambda t: t.stats.bottleneck_line or str(t.stats.bottleneck or ""),
                tip="How busy each stage of the data path was: Source (reading), Proxy (digests "
                "and compression), Network, Target (writing)",
            ),
        )

    status_column = STATUS

    def key(self, record: TaskSession) -> Hashable:
        return record.id

    def status(self, record: TaskSession) -> str | None:
        return record.status

    # -- live progress ----------------------------------------------------------------------------

    def apply_progress(self, event: TaskProgress) -> None:
        disks = self._progress.setdefault(event.task_id, {})
        disks[event.disk_key] = DiskProgress(event.phase, event.done, event.total)
        row = self.row_of(event.task_id)
        if row >= 0:
            self.refresh_row(row)

    def _bytes(self, task_id: int) -> tuple[int, int]:
        disks = self._progress.get(task_id, {}).values()
        return sum(d.done for d in disks), sum(d.total for d in disks)

    def progress(self, record: TaskSession) -> int:
        if record.status in (RunStatus.SUCCESS, RunStatus.WARNING):
            return 100
        done, total = self._bytes(record.id)
        if total == 0:
            return -1 if record.status == RunStatus.RUNNING else 0
        return min(100, done * 100 // total)

    def _progress_text(self, t: TaskSession) -> str:
        pct = self.progress(t)
        if pct < 0:
            return "Processing"
        disks = self._progress.get(t.id, {})
        phases = {d.phase for d in disks.values() if d.done < d.total}
        if t.status == RunStatus.RUNNING and phases:
            return f"{pct}% ({', '.join(sorted(phases))})"
        return f"{pct}%"

    def processed_bytes(self, t: TaskSession) -> int:
        """The store's count grows per finished disk; live progress counts within a disk."""
        if t.status == RunStatus.RUNNING:
            return max(t.stats.processed_bytes, self._bytes(t.id)[0])
        return t.stats.processed_bytes

    def _seconds(self, t: TaskSession) -> float:
        return fmt.elapsed(t.started, t.ended, self.clock())

    def _duration(self, t: TaskSession) -> str:
        return fmt.duration(self._seconds(t))

    def _rate_value(self, t: TaskSession) -> float:
        seconds = t.stats.duration if t.ended else self._seconds(t)
        return self.processed_bytes(t) / seconds if seconds > 0 else 0.0

    def _rate(self, t: TaskSession) -> str:
        return fmt.rate(self._rate_value(t))


@dataclass(frozen=True)
class LogLine:
    key: tuple[int, int]  # (task id or 0 for the session, position in that log)
    vm: str
    entry: LogEntry


def log_lines(
    session: Session, tasks: tuple[TaskSession, ...] | list[TaskSession]
) -> list[LogLine]:
    """The session's log and its tasks' logs as one list in time order."""
    lines = [LogLine((0, i), "", e) for i, e in enumerate(session.log)]
    for t in tasks:
        lines.extend(LogLine((t.id, i), t.vm_name, e) for i, e in enumerate(t.log))
    return sorted(lines, key=lambda line: (line.entry.time, line.key))


SEVERITY_WORDS = {Severity.INFO: "Info", Severity.WARNING: "Warning", Severity.ERROR: "Error"}


class LogModel(RecordTableModel):
    TIME, SEVERITY, VM, MESSAGE = range(4)
    columns = (
        Column(
            "Time",
            lambda line: fmt.when(line.entry.time),
            sort=lambda line: line.entry.time.timestamp(),
        ),
        Column("Severity", lambda line: SEVERITY_WORDS[line.entry.severity]),
        Column("VM", lambda line: line.vm),
        Column("Message", lambda line: line.entry.message),
    )
    status_column = SEVERITY

    def key(self, record: LogLine) -> Hashable:
        return record.key

    def status(self, record: LogLine) -> str | None:
        return {
            Severity.WARNING: str(RunStatus.WARNING),
            Severity.ERROR: str(RunStatus.FAILED),
        }.get(record.entry.severity)
