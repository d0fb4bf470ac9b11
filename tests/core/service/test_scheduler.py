"""The scheduler against the real lab and the real runner: runs on time, a restart that neither
loses nor repeats a due run, retries of only the failed VM, a chain of jobs, a backup window that
closes on a running job, and a job already running from the command line."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from core.jobs.events import Event, SessionStarted, TaskProgress
from core.jobs.runner import job_lock_key, run_job
from core.lab.lab import LabState
from core.lab.register import inventories
from core.lab.topology import NETWORK_MAP
from core.model.network import NetworkMap, NetworkMapping
from core.model.replicas import ReplicaState
from core.model.runs import RunStatus, RunTrigger, Session
from core.model.schedule import (
    AfterJob,
    BackupWindow,
    Daily,
    IntervalUnit,
    JobSchedule,
    Periodic,
    RetryPolicy,
)
from core.service.events import EventKind
from core.service.scheduler import Scheduler
from core.store.store import Store
from core.vsphere import power
from tests.core.jobs.test_runner import check_points, source_copies, task_log, vm
from tests.core.jobs.test_runner_failures import client
from tests.core.service.conftest import Events, FakeClock, at, state

HOURLY = Periodic(1, IntervalUnit.HOURS)
OK = (RunStatus.SUCCESS, RunStatus.WARNING)
Make = Callable[..., Scheduler]


def sessions(store: Store, job: str) -> list[Session]:
    """Oldest first."""
    return list(reversed(store.sessions.list(job)))


def session_log(store: Store, session_id: int) -> str:
    return "\n".join(e.message for e in store.sessions.get(session_id).log)


def test_a_periodic_job_starts_on_time_once_per_slot(
    store: Store, add_job: Callable[..., str], scheduler: Make, events: Events
) -> None:
    job = add_job("hourly", ["dc01"], JobSchedule(HOURLY))
    clock = FakeClock(at(9, 30))
    s = scheduler(clock)

    assert s.run_pending() == []
    assert state(store, job).next_run == at(10)  # the first slot after the job was seen
    clock.set(at(9, 59, 59))
    assert s.run_pending() == []
    clock.set(at(10))
    assert s.run_pending() == [job]
    assert s.wait_idle(120)
    (first,) = sessions(store, job)
    assert first.trigger == RunTrigger.SCHEDULE and first.attempt == 0
    assert first.status in OK, session_log(store, first.id)
    st = state(store, job)
    assert (st.next_run, st.last_run, st.last_status) == (at(11), at(10), first.status)
    assert s.run_pending() == []  # the same instant again: no second run
    assert [e.job for e in events.of(EventKind.STARTED)] == [job]
    assert events.of(EventKind.FINISHED)[0].session_id == first.id


def test_the_loop_starts_a_due_run_by_itself(
    store: Store, add_job: Callable[..., str], scheduler: Make, events: Events
) -> None:
    job = add_job("looped", ["dc01"], JobSchedule(HOURLY))
    clock = FakeClock(at(9, 30))
    s = scheduler(clock)
    thread = threading.Thread(target=s.run_forever)
    thread.start()
    try:
        clock.set(at(10, 0, 2))
        events.wait_for(EventKind.FINISHED, job)
        started = time.monotonic()
        s.stop()
        thread.join(5)
        assert time.monotonic() - started < 1.0
    finally:
        s.stop()
        thread.join(5)
    (run,) = sessions(store, job)
    assert run.trigger == RunTrigger.SCHEDULE and run.status in OK
    assert state(store, job).next_run == at(11)


def test_stopping_the_service_stops_its_runs_cleanly_and_the_retry_outlives_the_restart(
    store: Store, add_job: Callable[..., str], scheduler: Make, events: Events
) -> None:
    job = add_job("interrupted", ["web 02 (canary)"], JobSchedule(HOURLY), use_cbt=False)
    clock = FakeClock(at(9, 30))
    holder: list[Scheduler] = []

    def stop_while_copying(event: Event) -> None:
        if isinstance(event, TaskProgress):
            holder[0].stop()  # what SIGTERM does through the CLI's cancel event

    s = scheduler(clock, run_events=stop_while_copying)
    holder.append(s)
    thread = threading.Thread(target=s.run_forever)
    thread.start()
    clock.set(at(10, 0, 1))
    thread.join(120)
    assert not thread.is_alive()
    s.close()  # stops the run and waits for it
    (stopped,) = sessions(store, job)
    assert stopped.status == RunStatus.FAILED
    assert "the ReplicaDesk service is stopping" in session_log(store, stopped.id)
    assert "cancelled: nothing of this run was kept" in task_log(store, stopped.id)
    assert state(store, job).retry_at == at(10, 10, 1)

    # The next service picks the retry up from the store.
    clock.set(at(10, 10, 1))
    restarted = scheduler(clock)
    assert restarted.run_pending() == [job]
    assert restarted.wait_idle(120)
    retry = sessions(store, job)[-1]
    assert (retry.trigger, retry.attempt) == (RunTrigger.RETRY, 1)
    assert retry.status in OK, session_log(store, retry.id)
    (replica,) = store.replicas.list(job)
    assert [p.number for p in store.replicas.points(replica.id)] == [1]
    assert state(store, job).retry_at is None


def test_a_restart_runs_a_missed_run_once_recovers_a_crashed_one_and_drops_one_outside_the_window(
    store: Store, add_job: Callable[..., str], scheduler: Make, events: Events
) -> None:
    window = BackupWindow((frozenset(range(8, 13)),) * 7)  # 08:00 to 12:59 every day
    job = add_job("restarted", ["dc01"], JobSchedule(HOURLY, window=window))
    clock = FakeClock(at(9, 30))
    first = scheduler(clock)
    first.run_pending()
    assert state(store, job).next_run == at(10)
    first.close()

    # While the service is down, a run of the job crashes: a process opens a scheduled session,
    # takes the job's lock and dies without ending either.
    crash = (
        "import sys\n"
        "from pathlib import Path\n"
        "from core.model.runs import RunTrigger\n"
        "from core.store.store import Store\n"
        "s = Store.open(Path(sys.argv[1]))\n"
        "s.sessions.start(sys.argv[2], RunTrigger.SCHEDULE)\n"
        "s.locks.acquire([sys.argv[3]], 'job ' + sys.argv[2])\n"
    )
    subprocess.run(
        [sys.executable, "-c", crash, str(store.path), job, job_lock_key(job)], check=True
    )
    (orphan,) = store.sessions.running()

    # Back at 12:15: the 10, 11 and 12 o'clock slots were missed; one run makes up for them.
    clock.set(at(12, 15))
    second = scheduler(clock)
    assert store.sessions.get(orphan.id).status == RunStatus.FAILED
    assert "interrupted" in session_log(store, orphan.id)
    assert [e.session_id for e in events.of(EventKind.RECOVERED, job)] == [orphan.id]
    assert any(job_lock_key(job) in e.message for e in events.of(EventKind.RECOVERED, ""))
    assert state(store, job).retry_at == at(12, 25)  # the crashed run's first retry
    assert second.run_pending() == [job]
    assert second.wait_idle(120)
    runs = sessions(store, job)
    assert [r.id for r in runs[:-1]] == [orphan.id]
    assert runs[-1].trigger == RunTrigger.SCHEDULE and runs[-1].status in OK
    st = state(store, job)
    # 13:00 is outside the window: the next slot is tomorrow at 08:00; the new run made the
    # pending retry pointless.
    assert (st.next_run, st.retry_at, st.retries_done) == (at(8, days=1), None, 0)
    clock.set(at(12, 16))
    assert second.run_pending() == []
    second.close()

    # Down again until tomorrow 13:30: the 08:00-12:00 slots were missed and the window is shut
    # now, so nothing runs and the next slot is the day after at 08:00.
    clock.set(at(13, 30, days=1))
    third = scheduler(clock)
    assert third.run_pending() == []
    assert len(sessions(store, job)) == 2
    assert state(store, job).next_run == at(8, days=2)
    (missed,) = events.of(EventKind.MISSED, job)
    assert "outside the job's backup window" in missed.message


def test_retries_rerun_only_the_failed_vm_and_stop_after_the_policy(
    lab: LabState, store: Store, add_job: Callable[..., str], scheduler: Make, events: Events
) -> None:
    names = ["web 02 (canary)", "db #2 & replica"]
    schedule = JobSchedule(HOURLY, retry=RetryPolicy(times=2, wait_minutes=5))
    job = add_job("retried", names, schedule)
    assert run_job(store, job).status in OK  # both replicas exist
    broken = next(r for r in store.replicas.list(job) if r.vm_name == names[1])
    prod, _ = inventories(lab)
    broken_vm = vm(prod, names[1]).moref
    with client(lab, "dr") as c:
        power.power_on(c, broken.replica_moref or "")  # started by hand: Needs resync
    try:
        clock = FakeClock(at(9, 30))
        s = scheduler(clock)
        s.run_pending()
        clock.set(at(10))
        assert s.run_pending() == [job]
        assert s.wait_idle(120)
        scheduled = sessions(store, job)[-1]
        assert scheduled.status == RunStatus.FAILED
        tasks = {t.vm_name: t.status for t in store.sessions.tasks(scheduled.id)}
        assert tasks[names[0]] in OK and tasks[names[1]] == RunStatus.FAILED
        assert "Needs resync" in task_log(store, scheduled.id)
        st = state(store, job)
        assert (st.retry_at, st.retries_done, st.last_status) == (at(10, 5), 0, RunStatus.FAILED)

        clock.set(at(10, 4))
        assert s.run_pending() == []
        for attempt in (1, 2):
            clock.set(at(10, 5 * attempt))
            assert s.run_pending() == [job]
            assert s.wait_idle(120)
            retry = sessions(store, job)[-1]
            assert (retry.trigger, retry.attempt, retry.status) == (
                RunTrigger.RETRY,
                attempt,
                RunStatus.FAILED,
            )
            (task,) = store.sessions.tasks(retry.id)  # only the failed VM
            assert task.vm_moref == broken_vm
            assert state(store, job).retries_done == attempt
        st = state(store, job)
        assert st.retry_at is None  # two retries made: none left
        assert "no retry left (2 of 2 made)" in events.of(EventKind.MISSED, job)[-1].message
        assert len(events.of(EventKind.RETRY_SCHEDULED, job)) == 2
        clock.set(at(10, 45))
        assert s.run_pending() == []
        assert len(sessions(store, job)) == 4  # the manual run, the scheduled one, two retries
        assert store.replicas.get(broken.id).state == ReplicaState.NEEDS_RESYNC
    finally:
        with client(lab, "dr") as c:
            power.power_off(c, broken.replica_moref or "")


def test_a_job_chained_after_another_starts_when_it_succeeds(
    store: Store, add_job: Callable[..., str], scheduler: Make
) -> None:
    first = add_job("first", ["dc01"], JobSchedule(HOURLY))
    second = add_job("second", ["web 02 (canary)"], JobSchedule(AfterJob(first)))
    clock = FakeClock(at(9, 30))
    s = scheduler(clock)
    s.run_pending()
    assert state(store, second).next_run is None  # no time of its own
    clock.set(at(10))
    done = s.run_once()
    assert [(r.job, r.trigger) for r in done] == [
        (first, RunTrigger.SCHEDULE),
        (second, RunTrigger.AFTER_JOB),
    ]
    assert all(r.status in OK for r in done)
    assert done[1].started >= done[0].ended  # type: ignore[operator]
    assert state(store, second).next_run is None and state(store, second).last_run == at(10)
    assert s.run_pending() == []


def test_jobs_due_together_run_in_parallel_and_a_failed_job_chains_nothing(
    store: Store, add_job: Callable[..., str], scheduler: Make, events: Events
) -> None:
    left = add_job("left", ["dc01"], JobSchedule(HOURLY))
    right = add_job("right", ["web 02 (canary)"], JobSchedule(HOURLY, retry=RetryPolicy(1, 15)))
    follower = add_job("follower", ["db #2 & replica"], JobSchedule(AfterJob(right)))
    # "right" fails in its pre-flight: every network maps to one the DR site does not have.
    nowhere = NetworkMap(tuple(NetworkMapping(s, "No Such Net") for s in NETWORK_MAP))
    store.jobs.update(replace(store.jobs.get(right), network=nowhere))
    both = threading.Barrier(2, timeout=60)

    def meet(event: Event) -> None:
        if isinstance(event, SessionStarted):
            both.wait()  # each run waits here until the other one has started too

    clock = FakeClock(at(9, 30))
    s = scheduler(clock, run_events=meet)
    s.run_pending()
    clock.set(at(10))
    assert sorted(s.run_pending()) == sorted([left, right])
    assert s.wait_idle(120)
    assert not both.broken
    assert sessions(store, left)[-1].status in OK
    failed = sessions(store, right)[-1]
    assert failed.status == RunStatus.FAILED
    assert "No Such Net" in task_log(store, failed.id)
    assert state(store, right).retry_at == at(10, 15)
    assert state(store, follower).next_run is None
    assert s.run_pending() == []
    assert not sessions(store, follower)


def test_a_closing_window_stops_the_run_and_keeps_every_restore_point(
    lab: LabState,
    store: Store,
    add_job: Callable[..., str],
    scheduler: Make,
    events: Events,
    tmp_path: Path,
) -> None:
    name = "db #2 & replica"
    nightly = JobSchedule(
        Daily((dt.time(22, 0),)),
        retry=RetryPolicy(times=0),
        window=BackupWindow((frozenset({22}),) * 7),  # 22:00 to 22:59
    )
    job = add_job("nightly", [name], nightly, use_cbt=False)  # digests: the run reads the disk
    clock = FakeClock(at(21))
    closed = threading.Event()

    def watch(event: Event) -> None:
        # The run is copying: the clock jumps past the window's end.
        if closed.is_set() and isinstance(event, TaskProgress):
            clock.set(at(23, 0, 30, days=1))

    s = scheduler(clock, run_events=watch)
    s.run_pending()
    clock.set(at(22))
    copies = source_copies(lab, [name], tmp_path / "run1")
    s.run_pending()
    assert s.wait_idle(120)
    assert sessions(store, job)[-1].status in OK
    (replica,) = store.replicas.list(job)
    (point,) = store.replicas.points(replica.id)

    clock.set(at(22, days=1))
    closed.set()
    assert s.run_pending() == [job]
    assert s.wait_idle(120)
    stopped = sessions(store, job)[-1]
    assert stopped.status == RunStatus.FAILED
    log = session_log(store, stopped.id)
    assert "backup window closed at 2030-03-05 23:00" in log and "cancelled" in log
    assert "cancelled: nothing of this run was kept" in task_log(store, stopped.id)
    (stopping,) = events.of(EventKind.STOPPING, job)
    assert "backup window closed" in stopping.message
    finished = events.of(EventKind.FINISHED, job)[-1]
    assert "backup window closed" in finished.message

    # Every restore point intact: the one point, its snapshot on the replica VM, its disk.
    assert [p.number for p in store.replicas.points(replica.id)] == [point.number]
    _, dr = inventories(lab)
    replica_vm = vm(dr, replica.replica_name)
    assert {x.moref for x in replica_vm.all_snapshots()} == {point.snapshot_moref}
    check_points(lab, store, job, copies)
    st = state(store, job)
    assert (st.retry_at, st.next_run) == (None, at(22, days=2))


def test_a_job_running_from_the_command_line_makes_the_service_skip_its_slot(
    store: Store, add_job: Callable[..., str], scheduler: Make, events: Events
) -> None:
    job = add_job("busy", ["dc01"], JobSchedule(HOURLY))
    clock = FakeClock(at(9, 30))
    s = scheduler(clock)
    s.run_pending()

    running, release = threading.Event(), threading.Event()

    def cli_events(event: Event) -> None:
        if isinstance(event, SessionStarted):
            running.set()
            release.wait(60)

    manual: list[Session] = []
    cli = threading.Thread(target=lambda: manual.append(run_job(store, job, events=cli_events)))
    cli.start()
    try:
        assert running.wait(60)
        clock.set(at(10))
        s.run_pending()
        assert s.wait_idle(60)
    finally:
        release.set()
        cli.join(120)
    (skipped,) = events.of(EventKind.SKIPPED, job)
    assert "is being processed by another run" in skipped.message
    assert f"job:{job}" in skipped.message
    assert not events.of(EventKind.FINISHED, job)
    (only,) = sessions(store, job)
    assert only.trigger == RunTrigger.MANUAL and manual[0].status in OK
    st = state(store, job)
    assert (st.next_run, st.last_run, st.retry_at) == (at(11), None, None)


def test_an_rpo_violation_raises_one_alarm_until_a_run_meets_it_again(
    store: Store, add_job: Callable[..., str], scheduler: Make, events: Events
) -> None:
    job = add_job("rpo watched", ["dc01"], JobSchedule(None))
    assert run_job(store, job).status in OK
    now = dt.datetime.now(dt.UTC)
    clock = FakeClock(now)
    s = scheduler(clock)
    s.run_pending()
    assert events.of(EventKind.RPO_VIOLATED) == []
    clock.set(now + dt.timedelta(hours=25))  # the job's RPO is the default 24 h
    s.run_pending()
    s.run_pending()
    (alarm,) = events.of(EventKind.RPO_VIOLATED)
    assert alarm.job == job and "beyond the RPO of 24 h" in alarm.message
    assert run_job(store, job).status in OK
    clock.set(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    s.run_pending()
    assert len(events.of(EventKind.RPO_MET)) == 1
    assert len(events.of(EventKind.RPO_VIOLATED)) == 1
