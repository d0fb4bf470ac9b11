"""Cancel and on_started of replica operations against the real lab: a planned failover cancelled
before its first run and after the source was shut down, a failback cancelled after its first
chunk (rolled back to the failover, then completed by the next failback), every operation
announcing its session while it runs, and the bytes each restore point records."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable

import pytest

from core.failover import records
from core.failover.drill import cleanup_test_failover, start_test_failover
from core.failover.failback import CHUNK, commit_failback, failback
from core.failover.operations import failover, planned_failover, undo_failover
from core.failover.session import OperationCancelledError, OperationResult
from core.lab.lab import LabState
from core.lab.register import inventories
from core.model.replicas import ReplicaState
from core.model.runs import RunStatus, RunTrigger
from core.store.store import Store
from core.vsphere import power
from tests.core.failover.conftest import (
    dr_local,
    ok,
    prod_client,
    replica_folder,
    replicate,
    the_replica,
)
from tests.core.jobs.test_runner import churn_vm, vm


def messages(store: Store, session_id: int) -> list[str]:
    return [e.message for e in store.sessions.get(session_id).log] + [
        e.message for t in store.sessions.tasks(session_id) for e in t.log
    ]


class Started:
    """An on_started callback that remembers each session and checks it is running then."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.ids: list[int] = []
        self.status: list[RunStatus] = []

    def __call__(self, session_id: int) -> None:
        self.ids.append(session_id)
        self.status.append(self.store.sessions.get(session_id).status)


def test_every_operation_announces_its_running_session(lab: LabState, store: Store) -> None:
    name = "dc01"
    job = replicate(store, lab, "Announced", [name])
    r = the_replica(store, job.name, name)
    calls: list[tuple[str, Callable[[Started], OperationResult]]] = [
        ("failover", lambda s: failover(store, r.id, on_started=s)),
        ("undo", lambda s: undo_failover(store, r.id, on_started=s)),
        ("test", lambda s: start_test_failover(store, r.id, on_started=s)),
        ("cleanup", lambda s: cleanup_test_failover(store, r.id, on_started=s)),
    ]
    for what, call in calls:
        started = Started(store)
        result = call(started)
        assert started.ids == [result.session_id], what
        assert started.status == [RunStatus.RUNNING], what
        assert store.sessions.get(started.ids[0]).status == RunStatus.SUCCESS, what
    assert store.replicas.get(r.id).state == ReplicaState.READY

    # A failover cancelled before it begins opens no session and changes nothing.
    before = [s.id for s in store.sessions.list(job.name)]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(OperationCancelledError, match="the replica is Ready as it was"):
        failover(store, r.id, cancel=cancel)
    assert [s.id for s in store.sessions.list(job.name)] == before
    assert store.replicas.get(r.id).state == ReplicaState.READY


def test_restore_points_carry_their_runs_bytes(lab: LabState, store: Store) -> None:
    name = "app+cache"
    job = replicate(store, lab, "Point bytes", [name])
    r = the_replica(store, job.name, name)
    (first,) = store.replicas.points(r.id)
    assert first.changed_bytes > 0 and first.transferred_bytes > 0
    task = store.sessions.tasks(first.session_id or 0)[0]
    assert first.transferred_bytes == task.stats.transferred_bytes
    ok(store, job.name)  # nothing changed in the guest
    second = store.replicas.points(r.id)[-1]
    assert (second.number, second.changed_bytes, second.transferred_bytes) == (2, 0, 0)
    churn_vm(lab, name, 2 << 20, seed=5)
    ok(store, job.name)
    third = store.replicas.points(r.id)[-1]
    assert third.changed_bytes >= 2 << 20 and third.transferred_bytes > 0


def test_planned_failover_cancelled_leaves_the_source_running(lab: LabState, store: Store) -> None:
    name = "web-03 [dmz]"
    job = replicate(store, lab, "Planned, cancelled", [name])
    r = the_replica(store, job.name, name)
    prod, _ = inventories(lab)
    source = vm(prod, name).moref

    # Cancelled as soon as its session exists: not even the first run starts.
    cancel = threading.Event()
    started = Started(store)

    def cancel_at_once(session_id: int) -> None:
        started(session_id)
        cancel.set()

    with pytest.raises(OperationCancelledError, match="before the first incremental run") as err:
        planned_failover(store, r.id, shutdown_timeout=10, cancel=cancel, on_started=cancel_at_once)
    (sid,) = started.ids
    assert started.status == [RunStatus.RUNNING]
    assert store.sessions.get(sid).status == RunStatus.FAILED
    assert str(err.value) in messages(store, sid)
    assert [s.id for s in store.sessions.list(job.name) if s.id > sid] == []
    prod, _ = inventories(lab)
    assert vm(prod, name).power_state == "poweredOn"
    assert store.replicas.get(r.id).state == ReplicaState.READY

    # Cancelled by another thread once the final run (after the source's shutdown) has begun.
    churn_vm(lab, name, 1 << 20, seed=41)
    cancel = threading.Event()
    started = Started(store)

    def cancel_in_final_run() -> None:
        deadline = time.monotonic() + 120
        while not cancel.is_set() and time.monotonic() < deadline:
            op = started.ids[0] if started.ids else None
            runs = [
                s
                for s in store.sessions.list(job.name)
                if op is not None and s.id > op and s.trigger == RunTrigger.PLANNED_FAILOVER
            ]
            if len(runs) == 2:
                cancel.set()
            time.sleep(0.005)

    watcher = threading.Thread(target=cancel_in_final_run)
    watcher.start()
    try:
        with pytest.raises(OperationCancelledError, match="powered on again") as err:
            planned_failover(store, r.id, shutdown_timeout=10, cancel=cancel, on_started=started)
    finally:
        cancel.set()
        watcher.join()
    (sid,) = started.ids
    first, final = sorted(
        (s for s in store.sessions.list(job.name) if s.id > sid), key=lambda s: s.id
    )
    assert first.status == RunStatus.SUCCESS
    assert final.status == RunStatus.FAILED  # cancelled before the VM had its point
    assert str(err.value) == (
        f"Replica {r.replica_name}: cancelled: during the final incremental run of the stopped "
        f"source (session {final.id}): the source VM was powered on again and stays production; "
        "the replica stays Ready"
    )
    log = messages(store, sid)
    assert store.sessions.get(sid).status == RunStatus.FAILED
    assert str(err.value) in log
    assert "the source VM was powered on again: it stays production" in log
    assert any(m.startswith("the source VM's guest shut down") for m in log)
    prod, dr = inventories(lab)
    assert vm(prod, name).power_state == "poweredOn"
    assert dr.vm(r.replica_moref or "").power_state == "poweredOff"
    assert store.replicas.get(r.id).state == ReplicaState.READY
    where = replica_folder(lab, store, r) / records.RECORD_FOLDER
    assert records.load(where, records.FAILOVER, records.FailoverRecord) is None
    # The replica goes on as before: the next run and a planned failover to the end work.
    ok(store, job.name)
    result = planned_failover(store, r.id, shutdown_timeout=10)
    assert result.replica.state == ReplicaState.FAILOVER
    undo_failover(store, r.id)
    with prod_client(lab) as c:
        power.power_on(c, source)


def test_failback_cancelled_after_the_first_chunk_is_rolled_back(
    lab: LabState, store: Store
) -> None:
    prod, _ = inventories(lab)
    # A VM whose first disk has more than one chunk of the copy.
    name = next(
        n
        for n in ("mail-01", "db [primary]", "web 02 (canary)", "app-02", "50% batch")
        if prod.vms_named(n)
        and sorted(vm(prod, n).disks, key=lambda d: d.key)[0].capacity > CHUNK + (1 << 20)
    )
    job = replicate(store, lab, "Failback, cancelled", [name])
    r = the_replica(store, job.name, name)
    failover(store, r.id)
    _, dr = inventories(lab)
    disk = sorted(dr.vm(r.replica_moref or "").disks, key=lambda d: d.key)[0]
    path = dr_local(dr, disk.file_name)
    last = disk.capacity - (1 << 20)
    for offset, pattern in ((1 << 20, 0x33), (last, 0x44)):  # first chunk and last chunk
        subprocess.run(
            ["qemu-io", "-f", "vmdk", "-c", f"write -P {pattern} {offset} 1M", str(path)],
            check=True,
            capture_output=True,
        )
    cancel = threading.Event()
    started = Started(store)
    seen: list[int] = []

    def first_chunk_done(done: int, total: int) -> None:
        seen.append(done)
        canceller = threading.Thread(target=cancel.set)  # from another thread, as a console
        canceller.start()
        canceller.join()

    with pytest.raises(OperationCancelledError, match="rolled back to the failover") as err:
        failback(
            store,
            r.id,
            shutdown_timeout=5,
            on_progress=first_chunk_done,
            cancel=cancel,
            on_started=started,
        )
    assert seen == [CHUNK]  # the copy stopped before its second chunk
    message = str(err.value)
    assert f"while copying disk {disk.key} (after 16 of " in message
    assert "fail back again to complete them" in message
    (sid,) = started.ids
    assert started.status == [RunStatus.RUNNING]
    assert store.sessions.get(sid).status == RunStatus.FAILED
    assert message in messages(store, sid)
    assert store.replicas.get(r.id).state == ReplicaState.FAILOVER
    prod, dr = inventories(lab)
    assert dr.vm(r.replica_moref or "").power_state == "poweredOn"
    assert vm(prod, name).power_state == "poweredOff"
    where = replica_folder(lab, store, r) / records.RECORD_FOLDER
    assert records.load(where, records.FAILBACK, records.FailbackRecord) is None
    assert records.load(where, records.FAILOVER, records.FailoverRecord) is not None
    # Nothing is left to recover: no recovery session before the next failback, which sends
    # only what still differs (the last chunk's write; the first chunk's arrived).
    result = failback(store, r.id, shutdown_timeout=5)
    assert result.replica.state == ReplicaState.FAILBACK
    assert store.sessions.get(result.session_id).stats.transferred_bytes == 1 << 20
    assert not any(
        "Recovery of" in m for s in store.sessions.list(job.name) for m in messages(store, s.id)
    )
    commit_failback(store, r.id)
    assert store.replicas.get(r.id).state == ReplicaState.READY
