"""The scheduler: starts replication jobs on time, retries failed VMs, chains jobs, keeps windows.

It sits between the store (jobs, each job's `ScheduleState`, sessions, locks) and the job runner
(`core.jobs.runner.run_job`, one worker thread per running job, several jobs at once). What it
decides is persisted in the job's ScheduleState before the run starts, so a restart neither
loses a due run nor runs one twice:

- `next_run` is the due start (a Daily or Periodic slot, or the end of the job an AfterJob job
  follows). When it is due the next slot is written first, then the run starts. A run missed
  while the service was down (several slots count once) runs at start if the job's window
  allows it now; otherwise it is dropped and the next slot waits.
- A run that ends Failed schedules a retry of its failed VMs (`RetryPolicy`: `retry_at`, and
  `retries_done` counts them); a retry re-runs only the failed tasks' VMs (the whole job when the
  run failed before any VM), trigger RETRY, attempt n. A run that ends Success or Warning clears
  the retry and makes the jobs that run after it due.
- A run still going when its job's backup window closes is stopped through its cancel event
  (the runner keeps nothing partial: a restore point is whole or absent), and its session says
  why. The clock is checked on every progress event of the run and on every tick.
- The job's store lock is the one authority on "running": a due run whose job is locked by a
  run from the command line is skipped (its slot passes) and the skip is reported; a retry
  whose job is locked is dropped, since that run processes the VMs anyway.
- At start, sessions of dead processes are marked failed (their scheduled runs get the retries
  their policy gives) and locks of dead processes are cleared. One scheduler per database: it
  holds the store lock `service`.

The clock is injectable (aware UTC datetimes); schedules are read in `zone` (the machine's by
default). Sleeping is an Event wait capped at `tick` seconds, so `stop()` is prompt.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType

from core.errors import (
    LockHeldError,
    NotFoundError,
    ReplicaDeskError,
    ServiceRunningError,
    UsageError,
)
from core.jobs.events import Event, EventSink, ignore
from core.jobs.runner import run_job
from core.model.job import ReplicationJob
from core.model.runs import (
    REPLICATION_TRIGGERS,
    RunStatus,
    RunTrigger,
    ScheduleState,
    Session,
    Severity,
)
from core.model.schedule import AfterJob
from core.planning.rpo import violations as rpo_violations
from core.service.clock import Clock, local_zone, utc_now
from core.service.events import EventKind, ServiceEvent, ServiceSink
from core.service.events import ignore as ignore_service
from core.store.locks import Lease
from core.store.store import Store

log = logging.getLogger("core.service")

SERVICE_LOCK = "service"
DEFAULT_TICK = 1.0  # seconds between looks at the store; an Event wait, so stop() is prompt


@dataclass
class _Run:
    """A job the scheduler is running now."""

    job: ReplicationJob
    trigger: RunTrigger
    attempt: int
    only_vms: tuple[str, ...] | None
    started: dt.datetime  # by the scheduler's clock
    closes: dt.datetime | None  # when the job's window closes (None: it does not)
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    stop_reason: str = ""


class _Nothing:
    """The latest run of a job did not fail: a pending retry has nothing to do."""


NOTHING_TO_RETRY = _Nothing()


class Scheduler:
    """Runs the store's jobs as their schedules say, until `stop()` or the `cancel` event.

    with Scheduler(db_path, events=print_event) as scheduler:
        scheduler.run_forever()      # or run_once(), or run_pending() + wait_idle()
    """

    def __init__(
        self,
        store_path: Path,
        *,
        clock: Clock = utc_now,
        cancel: threading.Event | None = None,
        zone: dt.tzinfo | None = None,
        events: ServiceSink = ignore_service,
        run_events: EventSink = ignore,
        tick: float = DEFAULT_TICK,
        key_file: Path | None = None,
    ) -> None:
        if tick <= 0:
            raise UsageError(f"the scheduler's tick must be positive, not {tick}")
        self.store_path = store_path
        self.clock = clock
        self.zone = zone or local_zone()
        self.tick = tick
        self._key_file = key_file
        self._events = events
        self._run_events = run_events
        self._cancel = cancel or threading.Event()
        self._wake = threading.Event()
        self._rpo_alarms: set[tuple[str, int]] = set()
        self._lock = threading.Lock()  # guards _running, _finished and each run's stop
        self._state_lock = threading.Lock()  # one read-modify-write of ScheduleState at a time
        self._running: dict[str, _Run] = {}
        self._finished: list[Session] = []
        self._bad_jobs: set[str] = set()
        self._store: Store | None = None
        self._lease: Lease | None = None

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Open the store, take the service lock, and recover from a previous process's end."""
        if self._store is not None:
            return
        store = Store.open(self.store_path, key_file=self._key_file)
        try:
            cleared = store.locks.clear_stale()
            try:
                self._lease = store.locks.acquire([SERVICE_LOCK], "replicadesk service")
            except LockHeldError as e:
                raise ServiceRunningError(self.store_path, e.args[1]) from None
        except BaseException:
            store.close()
            raise
        self._store = store
        if cleared:
            self._emit(
                EventKind.RECOVERED,
                "",
                "cleared locks of processes that ended without releasing them: "
                + ", ".join(cleared),
            )
        for sid in store.sessions.fail_orphans():
            self._recover(sid)

    def stop(self) -> None:
        """Ask the loop to end; `close()` (or leaving the `with`) then stops running jobs."""
        self._cancel.set()
        self._wake.set()

    def close(self) -> None:
        """Stop the running jobs (their sessions say why), wait for them, release the store."""
        self._cancel.set()
        if self._store is not None:
            self._stop_all()
        store, self._store = self._store, None
        if store is None:
            return
        try:
            if self._lease is not None:
                store.locks.release(self._lease)
                self._lease = None
        finally:
            store.close()

    def _stop_all(self) -> None:
        with self._lock:
            runs = list(self._running.values())
        for run in runs:
            self._stop_run(run, "the ReplicaDesk service is stopping")
        self.wait_idle()

    def __enter__(self) -> Scheduler:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def store(self) -> Store:
        if self._store is None:
            raise UsageError("the scheduler is not started (call start() or use `with`)")
        return self._store

    @property
    def stopping(self) -> bool:
        return self._cancel.is_set()

    def running(self) -> list[str]:
        """Names of the jobs this scheduler runs now."""
        with self._lock:
            return sorted(self._running)

    # -- loops ---------------------------------------------------------------------------------

    def run_forever(self) -> None:
        """Start due jobs every tick until `stop()` or the cancel event; then `close()` stops
        what still runs."""
        self.store  # noqa: B018 - fails early when not started
        while not self._cancel.is_set():
            try:
                self.run_pending()
            except ReplicaDeskError as e:
                # The database busy or unreadable for a moment: say so, try again next tick.
                self._emit(EventKind.ERROR, "", f"could not read the jobs: {e}")
            self._wake.wait(self.tick)
            self._wake.clear()

    def run_once(self) -> list[Session]:
        """Run what is due now (and the jobs chained after it), wait for it, and return the
        sessions those runs made. Each job starts at most once (a chain loop cannot spin).
        Stopped early (`stop()`, the cancel event), it stops the runs it started and waits."""
        done_before = len(self._finished)
        launched: set[str] = set()
        while not self._cancel.is_set():
            launched.update(self.run_pending(skip=launched))
            if not self.running():
                break
            self._wake.wait(self.tick)
            self._wake.clear()
        if self._cancel.is_set():
            self._stop_all()
        with self._lock:
            return self._finished[done_before:]

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no job runs; False when `timeout` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                threads = [r.thread for r in self._running.values() if r.thread is not None]
            if not threads:
                return True
            for t in threads:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                t.join(remaining)

    def run_pending(self, skip: Collection[str] = ()) -> list[str]:
        """One look at the store: stop runs whose window closed, start the due ones. Returns the
        names of the jobs started (a run the job's lock then refuses is reported as skipped)."""
        store = self.store
        now = self._now()
        self._check_windows(now)
        self._check_rpo(now)
        started: list[str] = []
        for name in store.jobs.names():
            if self._cancel.is_set():
                break
            if name in skip:
                continue
            job = self._job(name)
            if job is None or not job.schedule.enabled:
                continue
            with self._state_lock:
                try:
                    if self._consider(job, now):
                        started.append(name)
                except NotFoundError:
                    continue  # deleted since we listed it
        return started

    # -- decisions -----------------------------------------------------------------------------

    def _job(self, name: str) -> ReplicationJob | None:
        try:
            job = self.store.jobs.get(name)
        except NotFoundError:
            return None
        except ReplicaDeskError as e:
            if name not in self._bad_jobs:
                self._bad_jobs.add(name)
                self._emit(EventKind.ERROR, name, f"not scheduled: {e}")
            return None
        self._bad_jobs.discard(name)
        return job

    def _consider(self, job: ReplicationJob, now: dt.datetime) -> bool:
        """Start `job` if a run or a retry of it is due; persist what was decided first."""
        store = self.store
        schedule = job.schedule
        trigger = schedule.trigger
        state = store.jobs.schedule_state(job.name)
        timed = trigger is not None and not isinstance(trigger, AfterJob)
        with self._lock:
            busy = job.name in self._running
        if state.next_run is None:
            if timed:
                state = replace(state, next_run=schedule.next_run(now))
                store.jobs.set_schedule_state(state)
        elif state.next_run <= now:
            due = state.next_run
            following = schedule.next_run(now)  # None for AfterJob and on-demand jobs
            if trigger is None:
                store.jobs.set_schedule_state(replace(state, next_run=None))
                return False
            if busy:
                store.jobs.set_schedule_state(replace(state, next_run=following))
                self._emit(
                    EventKind.SKIPPED,
                    job.name,
                    f"the run due at {self._show(due)} was not started: the previous run "
                    f"is still going{self._next(following)}",
                )
                return False
            if not schedule.in_window(now):
                store.jobs.set_schedule_state(replace(state, next_run=following))
                self._emit(
                    EventKind.MISSED,
                    job.name,
                    f"the run due at {self._show(due)} was not started: it is outside the "
                    f"job's backup window now{self._next(following)}",
                )
                return False
            store.jobs.set_schedule_state(
                replace(state, next_run=following, retries_done=0, retry_at=None)
            )
            how = RunTrigger.AFTER_JOB if isinstance(trigger, AfterJob) else RunTrigger.SCHEDULE
            self._launch(job, how, 0, None, now)
            return True
        if busy or state.retry_at is None or state.retry_at > now:
            return False
        attempt = state.retries_done + 1
        vms = self._failed_vms(job.name)
        if isinstance(vms, _Nothing):
            store.jobs.set_schedule_state(replace(state, retry_at=None))
            self._emit(
                EventKind.MISSED,
                job.name,
                f"retry {attempt} not needed: the latest run of the job did not fail",
            )
            return False
        if not schedule.in_window(now):
            store.jobs.set_schedule_state(replace(state, retry_at=None))
            self._emit(
                EventKind.MISSED,
                job.name,
                f"retry {attempt} was not started: it is outside the job's backup window; "
                "the next scheduled run processes the failed VMs",
            )
            return False
        store.jobs.set_schedule_state(replace(state, retries_done=attempt, retry_at=None))
        self._launch(job, RunTrigger.RETRY, attempt, vms, now)
        return True

    def _failed_vms(self, job: str) -> tuple[str, ...] | _Nothing | None:
        """The VMs to retry: the failed tasks of the job's latest session; None (the whole
        job) when it failed before any VM."""
        # Failover operations are sessions of the job too: the latest replication run counts.
        runs = [
            s for s in self.store.sessions.list(job, limit=50) if s.trigger in REPLICATION_TRIGGERS
        ]
        latest = runs[:1]
        if not latest or latest[0].status != RunStatus.FAILED:
            return NOTHING_TO_RETRY
        tasks = self.store.sessions.tasks(latest[0].id)
        if not tasks:
            return None
        failed = tuple(dict.fromkeys(t.vm_moref for t in tasks if t.status == RunStatus.FAILED))
        return failed or NOTHING_TO_RETRY

    # -- running a job -------------------------------------------------------------------------

    def _launch(
        self,
        job: ReplicationJob,
        trigger: RunTrigger,
        attempt: int,
        only_vms: tuple[str, ...] | None,
        now: dt.datetime,
    ) -> None:
        run = _Run(job, trigger, attempt, only_vms, now, job.schedule.window_closes(now))
        run.thread = threading.Thread(
            target=self._work, args=(run,), name=f"job {job.name}", daemon=True
        )
        with self._lock:
            self._running[job.name] = run
        self._emit(EventKind.STARTED, job.name, _describe(run), trigger=trigger, attempt=attempt)
        run.thread.start()

    def _work(self, run: _Run) -> None:
        name = run.job.name
        session: Session | None = None
        failed = False
        try:
            session = run_job(
                self.store,
                name,
                trigger=run.trigger,
                attempt=run.attempt,
                only_vms=run.only_vms,
                cancel=run.cancel,
                events=lambda event: self._on_run_event(run, event),
            )
        except LockHeldError as e:
            self._emit(
                EventKind.SKIPPED,
                name,
                f"not started: {e}"
                + ("; this retry is dropped" if run.trigger == RunTrigger.RETRY else ""),
                trigger=run.trigger,
                attempt=run.attempt,
            )
        except ReplicaDeskError as e:
            failed = True
            self._emit(EventKind.ERROR, name, f"could not run: {e}", trigger=run.trigger)
        except Exception as e:
            # A bug in one run must not end the service; run_job has already failed the session.
            failed = True
            log.exception("job %s: internal error", name)
            self._emit(
                EventKind.ERROR,
                name,
                f"internal error: {type(e).__name__}: {e}",
                trigger=run.trigger,
            )
        finally:
            try:
                with self._state_lock:
                    self._after_run(run, session, failed)
            except ReplicaDeskError as e:
                self._emit(EventKind.ERROR, name, f"could not record the run's outcome: {e}")
            finally:
                with self._lock:
                    self._running.pop(name, None)
                    if session is not None:
                        self._finished.append(session)
                self._wake.set()

    def _on_run_event(self, run: _Run, event: Event) -> None:
        self._run_events(event)
        if run.closes is not None and not run.cancel.is_set() and self._now() >= run.closes:
            self._stop_run(run, self._window_reason(run.closes))

    def _after_run(self, run: _Run, session: Session | None, failed: bool) -> None:
        """Record the outcome in the job's ScheduleState: retries after a failure, the jobs
        that run after it after a success."""
        if session is None and not failed:
            return  # skipped: the job was locked
        store = self.store
        name = run.job.name
        status = session.status if session is not None else RunStatus.FAILED
        if session is not None:
            self._emit(
                EventKind.FINISHED,
                name,
                f"finished: {status} (session {session.id})"
                + (f"; {run.stop_reason}" if run.stop_reason else ""),
                session_id=session.id,
                status=status,
                trigger=run.trigger,
                attempt=run.attempt,
            )
        try:
            state = store.jobs.schedule_state(name)
        except NotFoundError:
            return  # the job was deleted while it ran
        state = replace(state, last_run=run.started, last_status=status)
        if status == RunStatus.FAILED:
            state = self._plan_retry(run.job, state)
        else:
            state = replace(state, retry_at=None)
        store.jobs.set_schedule_state(state)
        if status != RunStatus.FAILED:
            self._chain(name)

    def _plan_retry(self, job: ReplicationJob, state: ScheduleState) -> ScheduleState:
        policy = job.schedule.retry
        at = policy.retry_at(self._now(), state.retries_done)
        if at is None:
            if policy.times:
                self._emit(
                    EventKind.MISSED,
                    job.name,
                    f"no retry left ({state.retries_done} of {policy.times} made): the next "
                    "scheduled run processes the failed VMs",
                )
            return replace(state, retry_at=None)
        self._emit(
            EventKind.RETRY_SCHEDULED,
            job.name,
            f"retry {state.retries_done + 1} of {policy.times} of the failed VMs at "
            f"{self._show(at)}",
            attempt=state.retries_done + 1,
        )
        return replace(state, retry_at=at)

    def _chain(self, name: str) -> None:
        """Make due the enabled jobs scheduled to run after `name`."""
        now = self._now()
        for other in self.store.jobs.names():
            job = self._job(other)
            if job is None or not job.schedule.enabled:
                continue
            trigger = job.schedule.trigger
            if isinstance(trigger, AfterJob) and trigger.job == name:
                state = self.store.jobs.schedule_state(other)
                self.store.jobs.set_schedule_state(replace(state, next_run=now))

    # -- stopping runs -------------------------------------------------------------------------

    def _check_windows(self, now: dt.datetime) -> None:
        with self._lock:
            runs = list(self._running.values())
        for run in runs:
            if run.closes is not None and now >= run.closes:
                self._stop_run(run, self._window_reason(run.closes))

    def _window_reason(self, closes: dt.datetime) -> str:
        return f"stopped: the job's backup window closed at {self._show(closes)}"

    def _stop_run(self, run: _Run, reason: str) -> None:
        with self._lock:
            if run.cancel.is_set():
                return
            run.stop_reason = reason
            run.cancel.set()
        name = run.job.name
        for s in self.store.sessions.running():
            if s.job == name:
                self.store.sessions.log(
                    s.id,
                    Severity.WARNING,
                    f"The job is being stopped: {reason.removeprefix('stopped: ')}. What this "
                    "run had not finished is not kept; earlier restore points are untouched.",
                )
        self._emit(EventKind.STOPPING, name, reason, trigger=run.trigger, attempt=run.attempt)

    # -- recovery ------------------------------------------------------------------------------

    def _recover(self, session_id: int) -> None:
        """A run whose process died: say so, and give a scheduled run the retries it has."""
        session = self.store.sessions.get(session_id)
        self._emit(
            EventKind.RECOVERED,
            session.job,
            f"session {session_id} ({session.trigger}) was left running by a process that "
            "ended; marked failed",
            session_id=session_id,
            status=RunStatus.FAILED,
            trigger=session.trigger,
            attempt=session.attempt,
        )
        if session.trigger == RunTrigger.MANUAL:
            return  # a run from the command line: its user saw it fail
        job = self._job(session.job)
        if job is None:
            return
        with self._state_lock:
            state = self.store.jobs.schedule_state(job.name)
            if state.retry_at is not None:
                return
            state = replace(state, last_run=session.started, last_status=RunStatus.FAILED)
            self.store.jobs.set_schedule_state(self._plan_retry(job, state))

    # -- helpers -------------------------------------------------------------------------------

    def _now(self) -> dt.datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise UsageError("the scheduler's clock must give times with a zone")
        return now.astimezone(self.zone)

    def _show(self, when: dt.datetime) -> str:
        return f"{when.astimezone(self.zone):%Y-%m-%d %H:%M}"

    def _next(self, following: dt.datetime | None) -> str:
        return f"; next run {self._show(following)}" if following is not None else ""

    def _check_rpo(self, now: dt.datetime) -> None:
        """Raise an RPO alarm once per VM when its newest point gets older than the job's RPO,
        and say so when a run brings it back within it."""
        current = {(v.job, v.replica_id): v for v in rpo_violations(self.store, at=now)}
        for key, v in current.items():
            if key not in self._rpo_alarms:
                self._emit(EventKind.RPO_VIOLATED, v.job, v.message)
        for key in self._rpo_alarms - current.keys():
            self._emit(EventKind.RPO_MET, key[0], f"replica {key[1]} is within its RPO again")
        self._rpo_alarms = set(current)

    def _emit(
        self,
        kind: EventKind,
        job: str,
        message: str,
        *,
        session_id: int | None = None,
        status: RunStatus | None = None,
        trigger: RunTrigger | None = None,
        attempt: int = 0,
    ) -> None:
        event = ServiceEvent(self._now(), kind, job, message, session_id, status, trigger, attempt)
        level = logging.WARNING if kind in (EventKind.ERROR, EventKind.MISSED) else logging.INFO
        log.log(level, "%s", event.line())
        self._events(event)


def _describe(run: _Run) -> str:
    if run.trigger == RunTrigger.RETRY:
        vms = "the whole job" if run.only_vms is None else f"{len(run.only_vms)} failed VM(s)"
        return f"started: retry {run.attempt} of {run.job.schedule.retry.times} ({vms})"
    if run.trigger == RunTrigger.AFTER_JOB:
        trigger = run.job.schedule.trigger
        after = trigger.job if isinstance(trigger, AfterJob) else "another job"
        return f"started: after job {after}"
    return "started: scheduled run"
