"""Sessions, task sessions, logs and the replica catalog in a real database, including a run
whose process died, and writers in several threads at once."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading
from pathlib import Path

import pytest

from core.errors import InvalidSettingError, NotFoundError, UsageError
from core.model.replicas import DiskPoint, ReplicaState
from core.model.runs import (
    REPLICATION_TRIGGERS,
    Bottleneck,
    RunStatus,
    RunTrigger,
    Severity,
    TransferStats,
)
from core.store import Store

T0 = dt.datetime(2026, 11, 30, 22, 0, tzinfo=dt.UTC)


def test_a_session_with_tasks_and_logs(store: Store) -> None:
    session = store.sessions.start("SQL tier", RunTrigger.SCHEDULE, at=T0)
    assert (session.status, session.ended, session.attempt) == (RunStatus.RUNNING, None, 0)
    store.sessions.log(session.id, Severity.INFO, "Job started by the schedule", at=T0)
    task = store.sessions.start_task(session.id, "vm-101", "SQL [primary] & co", at=T0)
    store.sessions.log(
        session.id,
        Severity.WARNING,
        "NIC 2 has no mapped network: disconnected",
        task_id=task.id,
        at=T0,
    )
    store.sessions.update_task(task.id, TransferStats(processed_bytes=1 << 30, duration=10.0))
    assert store.sessions.tasks(session.id)[0].stats.processed_bytes == 1 << 30
    stats = TransferStats(4 << 30, 3 << 30, 1 << 30, 64.0, Bottleneck.NETWORK)
    done = store.sessions.finish_task(
        task.id, RunStatus.WARNING, stats, at=T0 + dt.timedelta(minutes=2)
    )
    assert (
        done.status is RunStatus.WARNING
        and done.stats == stats
        and done.stats.rate == (4 << 30) / 64
    )
    assert [e.message for e in done.log] == ["NIC 2 has no mapped network: disconnected"]
    ended = store.sessions.finish(
        session.id, RunStatus.WARNING, stats, at=T0 + dt.timedelta(minutes=3)
    )
    assert ended.ended == T0 + dt.timedelta(minutes=3)
    assert [e.severity for e in store.sessions.get(session.id).log] == [Severity.INFO]
    with pytest.raises(UsageError, match="has already ended"):
        store.sessions.finish(session.id, RunStatus.FAILED, stats)
    with pytest.raises(UsageError, match="not running"):
        store.sessions.finish_task(task.id, RunStatus.RUNNING, stats)
    with pytest.raises(NotFoundError):
        store.sessions.get(999)


def test_sessions_are_listed_newest_first(store: Store) -> None:
    for i in range(3):
        s = store.sessions.start(
            "A" if i != 1 else "B", RunTrigger.MANUAL, at=T0 + dt.timedelta(hours=i)
        )
        if i == 0:
            store.sessions.finish(s.id, RunStatus.SUCCESS, TransferStats())
    assert [s.job for s in store.sessions.list()] == ["A", "B", "A"]
    assert [s.started for s in store.sessions.list(job="A")] == [T0 + dt.timedelta(hours=2), T0]
    assert [s.job for s in store.sessions.running()] == ["B", "A"]


def test_running_replication_only_leaves_replica_operations_out(store: Store) -> None:
    run = store.sessions.start("Tier 1 to DR", RunTrigger.SCHEDULE)
    failover = store.sessions.start("Tier 1 to DR", RunTrigger.FAILOVER)
    planned = store.sessions.start("Tier 1 to DR", RunTrigger.PLANNED_FAILOVER)
    retry = store.sessions.start("Tier 2", RunTrigger.RETRY)
    assert [s.id for s in store.sessions.running()] == [run.id, failover.id, planned.id, retry.id]
    assert [s.id for s in store.sessions.running(replication_only=True)] == [run.id, retry.id]
    assert {s.trigger for s in store.sessions.running(replication_only=True)} <= (
        REPLICATION_TRIGGERS
    )
    store.sessions.finish(run.id, RunStatus.SUCCESS, TransferStats())
    assert [s.id for s in store.sessions.running(replication_only=True)] == [retry.id]


def _start_and_die(db_path: Path) -> None:
    store = Store.open(db_path)
    session = store.sessions.start("Crashing job", RunTrigger.MANUAL)
    store.sessions.start_task(session.id, "vm-1", "vm one")
    # The process ends without finishing: as after a kill or a crash.


def test_a_session_whose_process_died_is_marked_failed(db_path: Path) -> None:
    with Store.open(db_path) as store:
        mine = store.sessions.start("Live job", RunTrigger.MANUAL)
        ctx = multiprocessing.get_context("spawn")
        child = ctx.Process(target=_start_and_die, args=(db_path,))
        child.start()
        child.join(60)
        assert child.exitcode == 0
        failed = store.sessions.fail_orphans()
        assert len(failed) == 1 and failed[0] != mine.id
        dead = store.sessions.get(failed[0])
        assert dead.status is RunStatus.FAILED and dead.ended is not None
        assert dead.log[-1].severity is Severity.ERROR
        assert dead.log[-1].message.startswith(f"The run was interrupted: process {child.pid} on ")
        assert store.sessions.tasks(dead.id)[0].status is RunStatus.FAILED
        assert store.sessions.get(mine.id).status is RunStatus.RUNNING  # ours is alive
        assert store.sessions.fail_orphans() == []


def test_many_threads_write_at_once(store: Store) -> None:
    session = store.sessions.start("Parallel", RunTrigger.MANUAL)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            task = store.sessions.start_task(session.id, f"vm-{n}", f"VM {n}")
            for i in range(20):
                store.sessions.log(session.id, Severity.INFO, f"vm {n} step {i}", task_id=task.id)
            store.sessions.finish_task(task.id, RunStatus.SUCCESS, TransferStats(n, n, n, 1.0))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    tasks = store.sessions.tasks(session.id)
    assert sorted(t.vm_moref for t in tasks) == sorted(f"vm-{n}" for n in range(8))
    assert all(len(t.log) == 20 and t.status is RunStatus.SUCCESS for t in tasks)


def test_replicas_and_restore_points(store: Store) -> None:
    r = store.replicas.ensure("SQL tier", "vc-prod", "vm-101", "SQL", "SQL_replica", "vc-dr")
    assert (r.state, r.replica_moref) == (ReplicaState.READY, None)
    again = store.replicas.ensure(
        "SQL tier", "vc-prod", "vm-101", "SQL renamed", "SQL_replica", "vc-dr"
    )
    assert again.id == r.id and again.vm_name == "SQL renamed"
    r = store.replicas.set_replica_vm(r.id, "vm-900", "host-12", "esx-dr-2")
    assert (r.replica_moref, r.target_host_name) == ("vm-900", "esx-dr-2")
    session = store.sessions.start("SQL tier", RunTrigger.MANUAL)
    p1 = store.replicas.add_point(
        r.id,
        [DiskPoint(2000, 40 << 30, "52 3c 1a/12"), DiskPoint(2001, 8 << 30, None)],
        created=T0,
        snapshot_moref="snapshot-31",
        session_id=session.id,
    )
    p2 = store.replicas.add_point(
        r.id,
        [DiskPoint(2000, 48 << 30, "52 3c 1a/19")],
        created=T0 + dt.timedelta(hours=4),
        changed_bytes=96 << 20,
        transferred_bytes=41 << 20,
    )
    assert (p1.number, p2.number) == (1, 2)
    assert (p1.changed_bytes, p1.transferred_bytes) == (0, 0)
    assert (p2.changed_bytes, p2.transferred_bytes) == (96 << 20, 41 << 20)
    assert store.replicas.points(r.id) == [p1, p2]
    assert store.replicas.latest_point(r.id) == p2
    assert p1.disk(2000) == DiskPoint(2000, 40 << 30, "52 3c 1a/12") and p1.disk(3000) is None
    store.replicas.remove_point(r.id, 1)  # retention
    p3 = store.replicas.add_point(r.id, [DiskPoint(2000, 48 << 30, "52 3c 1a/25")])
    assert p3.number == 3  # numbers are never reused
    assert [p.number for p in store.replicas.points(r.id)] == [2, 3]
    with pytest.raises(NotFoundError):
        store.replicas.remove_point(r.id, 1)
    with pytest.raises(InvalidSettingError) as err:
        store.replicas.add_point(r.id, [DiskPoint(2000, 1), DiskPoint(2000, 2)])
    assert str(err.value) == "disks[1]: disk key 2000 is listed twice"
    with pytest.raises(InvalidSettingError, match="transferred_bytes"):
        store.replicas.add_point(r.id, [DiskPoint(2000, 1)], transferred_bytes=-1)
    assert [p.number for p in store.replicas.points(r.id)] == [2, 3]


def test_replica_states_and_listing(store: Store) -> None:
    a = store.replicas.ensure("J", "vc", "vm-1", "alpha", "alpha_replica", "dr")
    b = store.replicas.ensure("J", "vc", "vm-2", "beta", "beta_replica", "dr")
    c = store.replicas.ensure("K", "vc", "vm-1", "alpha", "alpha_replica", "dr")
    assert (
        store.replicas.set_state(a.id, ReplicaState.NEEDS_RESYNC).state is ReplicaState.NEEDS_RESYNC
    )
    store.replicas.set_state(b.id, ReplicaState.PERMANENT_FAILOVER)
    assert [r.id for r in store.replicas.list()] == [a.id, c.id]
    assert [r.id for r in store.replicas.list(job="J", include_permanent=True)] == [a.id, b.id]
    assert store.replicas.find("J", "vc", "vm-2") == store.replicas.get(b.id)
    assert store.replicas.find("J", "vc", "vm-3") is None
    store.replicas.add_point(c.id, [DiskPoint(2000, 1 << 30)])
    store.replicas.remove(c.id)
    with pytest.raises(NotFoundError):
        store.replicas.points(c.id)
    with pytest.raises(ValueError):
        store.replicas.set_state(a.id, "Broken")  # type: ignore[arg-type]
