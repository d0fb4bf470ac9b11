"""What the console shows, read from the store in one go: rows for every table, no Qt.

`read_home` is what the `StoreWatcher` calls on its worker thread; `read_session` reads one
session with its tasks and logs for a session window. The rows are frozen dataclasses, so the
watcher tells a change by comparing them, and models compare rows to emit `dataChanged` only
for what moved.

A job's "last result" is its newest session, whoever ran it (console, CLI or service). Its
"next run" is what the service scheduled (`ScheduleState.next_run`) when it did; otherwise it is
computed from the job's schedule, the way the service would, so a console started before the
service still shows when the job is due.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from core.model.infra import BackupProxy, ManagedServer, Repository
from core.model.job import ReplicationJob
from core.model.replicas import Replica, ReplicaState, RestorePoint
from core.model.runs import (
    REPLICATION_TRIGGERS,
    RunStatus,
    RunTrigger,
    ScheduleState,
    Session,
    TaskSession,
)
from core.model.schedule import AfterJob
from core.store.store import Store

TEST_TRIGGERS = frozenset({RunTrigger.TEST_FAILOVER, RunTrigger.TEST_CLEANUP})
HISTORY_LIMIT = 500  # sessions kept in the History and Last 24 hours views

# Replicas in these states are listed under Replicas > Active (Veeam's grouping): a failover
# or failback in progress, or a failover that needs attention. The others are under Ready.
ACTIVE_STATES = frozenset({ReplicaState.FAILOVER, ReplicaState.FAILBACK, ReplicaState.REIP_FAILED})


@dataclass(frozen=True)
class JobRow:
    job: ReplicationJob
    state: ScheduleState
    last: Session | None  # the newest session, running or ended
    running: Session | None
    next_run: dt.datetime | None
    next_text: str  # what the Next run column says when there is no time

    @property
    def name(self) -> str:
        return self.job.name


@dataclass(frozen=True)
class ReplicaRow:
    replica: Replica
    points: tuple[RestorePoint, ...]  # oldest first
    # Per point (same order): the bytes its run sent for this VM (what the point added at the
    # DR site, compressed when offsite); None when the run's task is not known any more.
    point_sizes: tuple[int | None, ...] = ()
    last_run: Session | None = None  # the newest replication run of the job with this VM
    test_running: bool = False  # a test failover of it is up (its cleanup has not run)

    def point_size(self, number: int) -> int | None:
        for p, size in zip(self.points, self.point_sizes, strict=False):
            if p.number == number:
                return size
        return None

    @property
    def latest(self) -> RestorePoint | None:
        return self.points[-1] if self.points else None

    @property
    def active(self) -> bool:
        return self.replica.state in ACTIVE_STATES


@dataclass(frozen=True)
class HomeData:
    jobs: tuple[JobRow, ...]
    sessions: tuple[Session, ...]  # newest first, without logs
    replicas: tuple[ReplicaRow, ...]
    servers: tuple[ManagedServer, ...]
    proxies: tuple[BackupProxy, ...]
    repositories: tuple[Repository, ...]


@dataclass(frozen=True)
class SessionDetail:
    session: Session  # with its log
    tasks: tuple[TaskSession, ...]  # with their logs


def next_run(
    job: ReplicationJob, state: ScheduleState, now: dt.datetime
) -> tuple[dt.datetime | None, str]:
    schedule = job.schedule
    if not schedule.enabled:
        return None, "Disabled"
    if state.retry_at is not None:
        return state.retry_at, ""
    if state.next_run is not None:
        return state.next_run, ""
    trigger = schedule.trigger
    if trigger is None:
        return None, "Not scheduled"
    if isinstance(trigger, AfterJob):
        return None, f"After {trigger.job}"
    at = schedule.next_run(now.astimezone())
    return at, "" if at is not None else "Not scheduled"


def read_home(store: Store, now: dt.datetime | None = None) -> HomeData:
    now = now or dt.datetime.now(dt.UTC)
    sessions = tuple(store.sessions.list(limit=HISTORY_LIMIT))
    running = {s.job: s for s in store.sessions.running(replication_only=True)}
    newest: dict[str, Session] = {}
    for s in sessions:
        newest.setdefault(s.job, s)
    jobs = []
    for job in store.jobs.list():
        state = store.jobs.schedule_state(job.name)
        last = newest.get(job.name)
        if last is None:
            older = store.sessions.list(job.name, limit=1)
            last = older[0] if older else None
        at, text = next_run(job, state, now)
        jobs.append(JobRow(job, state, last, running.get(job.name), at, text))
    replicas = tuple(_replica_row(store, r, sessions) for r in store.replicas.list())
    return HomeData(
        jobs=tuple(jobs),
        sessions=sessions,
        replicas=replicas,
        servers=tuple(store.servers.list()),
        proxies=tuple(store.proxies.list()),
        repositories=tuple(store.repositories.list()),
    )


def _replica_row(store: Store, replica: Replica, sessions: tuple[Session, ...]) -> ReplicaRow:
    """The replica with its points, each point's size (its run's task for the VM), the job's
    newest replication run that had the VM, and whether a test failover of it is up (its newest
    test session is a test that did not fail, not a cleanup)."""
    points = tuple(store.replicas.points(replica.id))
    tasks: dict[int, TaskSession | None] = {}

    def task_of(session_id: int) -> TaskSession | None:
        if session_id not in tasks:
            tasks[session_id] = next(
                (t for t in store.sessions.tasks(session_id) if t.vm_moref == replica.vm_moref),
                None,
            )
        return tasks[session_id]

    sizes: list[int | None] = []
    for p in points:
        task = task_of(p.session_id) if p.session_id is not None else None
        sizes.append(task.stats.transferred_bytes if task is not None else None)
    last_run = None
    test = None
    for s in sessions:  # newest first
        if s.job != replica.job:
            continue
        if last_run is None and s.trigger in REPLICATION_TRIGGERS and task_of(s.id) is not None:
            last_run = s
        if test is None and s.trigger in TEST_TRIGGERS and task_of(s.id) is not None:
            test = s
        if last_run is not None and test is not None:
            break
    # A test that failed cleaned up after itself; a cleanup that failed left the test up.
    running = test is not None and (
        (test.trigger == RunTrigger.TEST_FAILOVER) == (test.status != RunStatus.FAILED)
    )
    return ReplicaRow(replica, points, tuple(sizes), last_run, running)


def read_session(store: Store, session_id: int) -> SessionDetail:
    return SessionDetail(store.sessions.get(session_id), tuple(store.sessions.tasks(session_id)))
