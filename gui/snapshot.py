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
from core.model.runs import ScheduleState, Session, TaskSession
from core.model.schedule import AfterJob
from core.store.store import Store

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
    running = {s.job: s for s in store.sessions.running()}
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
    replicas = tuple(
        ReplicaRow(r, tuple(store.replicas.points(r.id))) for r in store.replicas.list()
    )
    return HomeData(
        jobs=tuple(jobs),
        sessions=sessions,
        replicas=replicas,
        servers=tuple(store.servers.list()),
        proxies=tuple(store.proxies.list()),
        repositories=tuple(store.repositories.list()),
    )


def read_session(store: Store, session_id: int) -> SessionDetail:
    return SessionDetail(store.sessions.get(session_id), tuple(store.sessions.tasks(session_id)))
