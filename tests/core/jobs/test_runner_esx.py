"""Replication to a DR site that is a standalone ESXi host added directly (no DR vCenter)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.jobs.runner import run_job
from core.lab.lab import Lab, LabState
from core.lab.register import inventories, lab_job
from core.lab.topology import LabOptions
from core.model.infra import ServerKind
from core.model.runs import RunStatus
from core.store.store import Store
from tests.core.jobs.test_runner import check_points, churn_vm, source_copies, task_log, vm


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    folder = tmp_path_factory.mktemp("lab-esx")
    with Lab(LabOptions(vms=3, dr="esx", disk_mib=(16, 32)), folder=folder, wan=False) as state:
        yield state


def test_replicas_on_a_standalone_esxi_host(lab: LabState, store: Store, tmp_path: Path) -> None:
    assert store.servers.get(lab.dr.address).kind == ServerKind.ESXI
    names = ["dc01", "db #2 & replica"]
    job = lab_job(lab, "To ESXi", names, keep=1)
    store.jobs.add(job)
    copies = source_copies(lab, names, tmp_path / "run1")
    s1 = run_job(store, job.name)
    assert s1.status in (RunStatus.SUCCESS, RunStatus.WARNING), task_log(store, s1.id)
    check_points(lab, store, job.name, copies)
    churn_vm(lab, names[1], 1 << 20, seed=4)
    copies = source_copies(lab, names, tmp_path / "run2")
    s2 = run_job(store, job.name)
    assert s2.status in (RunStatus.SUCCESS, RunStatus.WARNING), task_log(store, s2.id)
    check_points(lab, store, job.name, copies)
    _, dr = inventories(lab)
    for name in names:
        replica = vm(dr, name + "_replica")
        assert replica.host == dr.hosts[0].moref
        assert len(list(replica.all_snapshots())) == 1  # keep=1


def test_failover_and_undo_on_a_standalone_esxi_dr_host(
    lab: LabState, store: Store, tmp_path: Path
) -> None:
    from core.failover.operations import failover, undo_failover
    from core.lab.lab import datastore_file
    from core.model.replicas import ReplicaState
    from tests.conftest import assert_identical

    names = ["web 02 (canary)"]
    job = lab_job(lab, "ESXi failover", names)
    store.jobs.add(job)
    copies = source_copies(lab, names, tmp_path / "run1")
    assert run_job(store, job.name).status in (RunStatus.SUCCESS, RunStatus.WARNING)
    (replica,) = store.replicas.list(job.name)
    result = failover(store, replica.id)
    assert result.replica.state == ReplicaState.FAILOVER
    _, dr = inventories(lab)
    running = dr.vm(replica.replica_moref or "")
    assert running.power_state == "poweredOn"
    source = vm(inventories(lab)[0], names[0])
    for disk, src in zip(
        sorted(running.disks, key=lambda d: d.key),
        sorted(source.disks, key=lambda d: d.key),
        strict=True,
    ):
        # The running replica's disk reads as the restore point: the source at that run.
        assert_identical(
            datastore_file(dr, disk.datastore, disk.file_name), copies[(names[0], src.key)]
        )
    assert undo_failover(store, replica.id).replica.state == ReplicaState.READY
