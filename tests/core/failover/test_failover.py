"""Failover now (to the latest and to an older point) and its undo, against the real lab: the
running replica's disks read exactly like the source did at that point (qemu-img), and the undo
leaves the replica's files and store rows as they were, after which replication goes on."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import FailoverError, ReplicaStateError
from core.failover.failback import commit_failback
from core.failover.operations import failover, undo_failover
from core.lab.lab import LabState
from core.lab.register import inventories
from core.model.replicas import ReplicaState
from core.model.runs import RunStatus, RunTrigger
from core.store.store import Store
from tests.conftest import assert_identical
from tests.core.failover.conftest import (
    dr_local,
    folder_hashes,
    ok,
    replica_folder,
    replicate,
    the_replica,
)
from tests.core.jobs.test_runner import churn_vm, source_copies, vm

VM = "web 02 (canary)"


def running_disks(lab: LabState, replica_vm: str) -> list[tuple[int, Path]]:
    _, dr = inventories(lab)
    v = dr.vm(replica_vm)
    return [(d.key, dr_local(dr, d.file_name)) for d in v.disks]


def check_running(lab: LabState, moref: str, copies: dict[tuple[str, int], Path]) -> None:
    prod, _ = inventories(lab)
    source_keys = [d.key for d in vm(prod, VM).disks]
    disks = running_disks(lab, moref)
    assert len(disks) == len(source_keys)
    for (_, path), key in zip(disks, source_keys, strict=True):
        assert_identical(path, copies[(VM, key)])


def test_failover_now_and_undo(lab: LabState, store: Store, tmp_path: Path) -> None:
    copies1 = source_copies(lab, [VM], tmp_path / "p1")
    job = replicate(store, lab, "Failover now", [VM])
    churn_vm(lab, VM, 2 << 20, seed=21)
    copies2 = source_copies(lab, [VM], tmp_path / "p2")
    ok(store, job.name)
    replica = the_replica(store, job.name, VM)
    assert replica.replica_moref is not None
    folder = replica_folder(lab, store, replica)
    before = folder_hashes(folder)
    points = store.replicas.points(replica.id)
    assert [p.number for p in points] == [1, 2]

    # Failover now, to the latest point.
    result = failover(store, replica.id)
    assert result.status == RunStatus.SUCCESS
    assert result.replica.state == ReplicaState.FAILOVER
    session = store.sessions.get(result.session_id)
    assert session.trigger == RunTrigger.FAILOVER and session.status == RunStatus.SUCCESS
    _, dr = inventories(lab)
    assert dr.vm(replica.replica_moref).power_state == "poweredOn"
    check_running(lab, replica.replica_moref, copies2)

    # What the state machine refuses, with the state named.
    with pytest.raises(ReplicaStateError, match="state Failover"):
        failover(store, replica.id)
    with pytest.raises(ReplicaStateError, match=r"cannot commit a failback .* state Failover"):
        commit_failback(store, replica.id)
    undo_failover(store, replica.id)
    with pytest.raises(FailoverError, match="no restore point 9"):
        failover(store, replica.id, 9)

    # Undo: the replica exactly as before, powered off, on its latest point's snapshot.
    assert folder_hashes(folder) == before
    assert store.replicas.points(replica.id) == points
    assert store.replicas.get(replica.id).state == ReplicaState.READY
    _, dr = inventories(lab)
    assert dr.vm(replica.replica_moref).power_state == "poweredOff"
    assert dr.vm(replica.replica_moref).current_snapshot == points[-1].snapshot_moref

    # Failover to the older point reads like the source at run 1; undo again.
    failover(store, replica.id, 1)
    check_running(lab, replica.replica_moref, copies1)
    undo_failover(store, replica.id)
    assert folder_hashes(folder) == before
    _, dr = inventories(lab)
    assert dr.vm(replica.replica_moref).current_snapshot == points[-1].snapshot_moref

    # Replication resumes where it was.
    churn_vm(lab, VM, 1 << 20, seed=22)
    copies3 = source_copies(lab, [VM], tmp_path / "p3")
    ok(store, job.name)
    assert [p.number for p in store.replicas.points(replica.id)] == [1, 2, 3]
    failover(store, replica.id)
    check_running(lab, replica.replica_moref, copies3)
    undo_failover(store, replica.id)
