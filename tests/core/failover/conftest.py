"""A running two-site lab for the replica operation tests, and helpers to look at replicas.

The lab and the per-test store are the job tests' fixtures (one lab per module, a fresh store per
test). Tests use their own job names and VMs, since replicas on the DR datastore outlive a test.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.jobs.runner import run_job
from core.lab.content import flat_name
from core.lab.lab import Lab, LabState, datastore_file
from core.lab.register import inventories, lab_job, register_lab
from core.lab.topology import LabOptions
from core.model.job import ReplicationJob
from core.model.replicas import Replica
from core.model.runs import RunStatus
from core.store.store import Store
from core.vmdk.descriptor import flat_descriptor, new_cid, render_descriptor
from core.vsphere import power, vms
from core.vsphere._pyvmomi import vim
from core.vsphere.connection import VSphereClient
from core.vsphere.datastore import DatastorePath
from core.vsphere.inventory import read_inventory, read_vm
from core.vsphere.models import Inventory, Vm
from core.vsphere.tasks import wait


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


def prod_client(lab: LabState) -> VSphereClient:
    p = lab.production
    return VSphereClient.connect(p.address, p.port, lab.user, lab.password, protocol="http")


def lose_and_restore_elsewhere(
    lab: LabState, name: str, backup: dict[tuple[str, int], Path], keep_uuid: bool = True
) -> Vm:
    """The production site's disaster and its repair, for a failback: VM `name` is lost
    (deleted), then restored from `backup` (its disks, by device key) as a new VM on another
    host and datastore, keeping the original's instance UUID when `keep_uuid` (a restore that
    keeps the VM's identity). The restored VM is left powered off."""
    prod, _ = inventories(lab)
    original = prod.vms_named(name)[0]
    host = next(h for h in prod.hosts if h.moref != original.host and h.datastores)
    datastore = next(d for d in host.datastores if d != original.disks[0].datastore)
    dc = prod.datacenter(host.datacenter)
    with prod_client(lab) as c:
        power.power_off(c, original.moref)
        vms.destroy_vm(c, original.moref)
        made = vms.create_vm(
            c,
            vms.NewVm(
                name=f"{name} (restored)",
                host=host.moref,
                resource_pool=host.resource_pool,
                folder=dc.vm_folder,
                datastore=datastore,
                cpus=original.cpus,
                memory_mb=original.memory_mb,
                guest_id=original.guest_id,
                disks=tuple(vms.NewDisk(d.capacity) for d in original.disks),
            ),
        )
        inv = read_inventory(c)
        for old, new in zip(
            sorted(original.disks, key=lambda d: d.key),
            sorted(made.disks, key=lambda d: d.key),
            strict=True,
        ):
            desc = datastore_file(inv, new.datastore, new.file_name)
            shutil.copyfile(backup[(name, old.key)], flat_name(desc))
            text = flat_descriptor(new.capacity, flat_name(desc).name, new_cid(), "vmfs")
            desc.write_text(render_descriptor(text), encoding="utf-8")
        if keep_uuid:
            obj = c.obj("VirtualMachine", made.moref)
            spec = vim.vm.ConfigSpec(instanceUuid=original.instance_uuid)
            what = f"restore the identity of {made.name!r}"
            wait(c, c.call(what, lambda: obj.ReconfigVM_Task(spec=spec)), what, 60)
        return read_vm(c, made.moref)
