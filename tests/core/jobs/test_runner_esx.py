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
