"""A running two-site lab for the replica operation tests, and helpers to look at replicas.

The lab and the per-test store are the job tests' fixtures (one lab per module, a fresh store per
test). Tests use their own job names and VMs, since replicas on the DR datastore outlive a test.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.jobs.runner import run_job
from core.lab.lab import Lab, LabState
from core.lab.register import inventories, lab_job, register_lab
from core.lab.topology import LabOptions
from core.model.job import ReplicationJob
from core.model.replicas import Replica
from core.model.runs import RunStatus
from core.store.store import Store
from core.vsphere.datastore import DatastorePath
from core.vsphere.models import Inventory


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    folder = tmp_path_factory.mktemp("lab")
    options = LabOptions(vms=12, disk_mib=(16, 32))
    with Lab(options, folder=folder, wan=os.geteuid() == 0) as state:
        yield state


@pytest.fixture
def store(tmp_path: Path, lab: LabState) -> Iterator[Store]:
    with Store.open(tmp_path / "replicadesk.db") as s:
        register_lab(s, lab, tmp_path / "metadata")
        yield s


def dr_local(dr: Inventory, path: str) -> Path:
    p = DatastorePath.parse(path)
    ds = next(d for d in dr.datastores if d.name == p.datastore)
    return Path(ds.url) / p.path


def replicate(
    store: Store, lab: LabState, name: str, vms: list[str], **kw: object
) -> ReplicationJob:
    job = lab_job(lab, name, vms, **kw)  # type: ignore[arg-type]
    store.jobs.add(job)
    ok(store, job.name)
    return job


def ok(store: Store, job: str) -> int:
    s = run_job(store, job)
    assert s.status in (RunStatus.SUCCESS, RunStatus.WARNING), s.log
    for t in store.sessions.tasks(s.id):
        assert t.status != RunStatus.FAILED, t.log
    return s.id


def the_replica(store: Store, job: str, vm: str) -> Replica:
    (r,) = [r for r in store.replicas.list(job, include_permanent=True) if r.vm_name == vm]
    return r


def folder_hashes(root: Path) -> dict[str, str]:
    """Every file under `root` (a replica VM's folder) with its SHA-256; VMware's own log,
    which every power-on appends to, aside."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name not in (".lock", "vmware.log"):
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def replica_folder(lab: LabState, store: Store, replica: Replica) -> Path:
    _, dr = inventories(lab)
    vm = dr.vm(replica.replica_moref or "")
    return dr_local(dr, vm.vmx_path).parent
