"""Replica mapping on the lab: a source VM mapped to a copy of itself on the DR site (restored
there earlier) replicates only what differs and adopts the copy as its replica; bad mappings
stop the VM before anything is written; a cancelled first run leaves the mapped VM as it was."""

from __future__ import annotations

import hashlib
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np

from core.jobs.events import Event, TaskLog
from core.jobs.runner import run_job
from core.lab.changelog import ChangeLog
from core.lab.content import data_areas, flat_name
from core.lab.lab import LabState, datastore_file
from core.lab.register import inventories, lab_job
from core.lab.topology import DR_CLUSTER
from core.model.job import ReplicationJob
from core.model.objects import ObjectKind, ObjectRef
from core.model.runs import RunStatus, Severity
from core.model.seeding import ReplicaMapping, Seeding
from core.store.store import Store
from core.vmdk.descriptor import flat_descriptor, new_cid, render_descriptor
from core.vsphere import power, vms
from core.vsphere.models import Vm
from tests.core.jobs.test_runner import check_points, churn_vm, source_copies, task_log, vm
from tests.core.jobs.test_runner_failures import client

MIB = 1 << 20


def dr_copy(lab: LabState, source_name: str, name: str, *, grow_mib: int = 0) -> Vm:
    """A powered-off VM on the DR site holding the source VM's disks as they are now (what a
    restore there would leave); `grow_mib` makes its first disk that much larger."""
    prod, dr = inventories(lab)
    source = vm(prod, source_name)
    cluster = next(c for c in dr.clusters if c.name == DR_CLUSTER)
    ds = next(d for d in dr.datastores if d.name == "dr-ds-02")
    sizes = [d.capacity + (grow_mib * MIB if i == 0 else 0) for i, d in enumerate(source.disks)]
    with client(lab, "dr") as c:
        made = vms.create_vm(
            c,
            vms.NewVm(
                name,
                host=cluster.hosts[0],
                resource_pool=cluster.resource_pool,
                folder=dr.datacenter(cluster.datacenter).vm_folder,
                datastore=ds.moref,
                disks=tuple(vms.NewDisk(size) for size in sizes),
            ),
        )
    _, dr = inventories(lab)
    for theirs, ours, size in zip(source.disks, made.disks, sizes, strict=True):
        descriptor = datastore_file(dr, ours.datastore, ours.file_name)
        flat = flat_name(descriptor)
        shutil.copyfile(flat_name(datastore_file(prod, theirs.datastore, theirs.file_name)), flat)
        with open(flat, "r+b") as f:
            f.truncate(size)
        descriptor.write_text(
            render_descriptor(flat_descriptor(size, flat.name, new_cid(), "vmfs"))
        )
    return made


def disk_digests(lab: LabState, copy: Vm) -> list[str]:
    _, dr = inventories(lab)
    out = []
    for d in copy.disks:
        descriptor = datastore_file(dr, d.datastore, d.file_name)
        for f in (descriptor, flat_name(descriptor)):
            out.append(hashlib.sha256(f.read_bytes()).hexdigest())
    return out


def ref(v: Vm) -> ObjectRef:
    return ObjectRef(ObjectKind.VM, v.moref, v.name)


def mapped_job(
    lab: LabState, name: str, vm_names: list[str], maps: dict[str, ObjectRef]
) -> ReplicationJob:
    """A lab job mapping source VMs (by name) to DR VMs; its own replica suffix keeps its chain
    folders apart from other tests'."""
    job = lab_job(lab, name, vm_names, keep=2)
    prod, _ = inventories(lab)
    mappings = tuple(
        ReplicaMapping(
            ObjectRef(ObjectKind.VM, vm(prod, source).moref, source),
            target,
        )
        for source, target in maps.items()
    )
    suffix = "_" + hashlib.sha1(name.encode()).hexdigest()[:6]
    return replace(
        job,
        seeding=Seeding(mappings),
        settings=replace(job.settings, replica_suffix=suffix),
    )


def fill(lab: LabState, name: str, nbytes: int, seed: int) -> None:
    """Guest data: `nbytes` of random data written from 4 MiB on into the VM's first disk."""
    prod, _ = inventories(lab)
    source = vm(prod, name)
    d = source.disks[0]
    flat = flat_name(datastore_file(prod, d.datastore, d.file_name))
    with open(flat, "r+b") as f:
        f.seek(4 * MIB)
        f.write(np.random.default_rng(seed).bytes(nbytes))
    ChangeLog(Path(lab.changelog)).record(source.moref, d.key, d.capacity, [(4 * MIB, nbytes)])


def allocated(lab: LabState, name: str) -> int:
    prod, _ = inventories(lab)
    return sum(
        n
        for d in vm(prod, name).disks
        for _, n in data_areas(flat_name(datastore_file(prod, d.datastore, d.file_name)))
    )


def test_a_vm_mapped_to_its_restored_copy_sends_only_what_differs(
    lab: LabState, store: Store, tmp_path: Path
) -> None:
    name = "db #2 & replica"
    fill(lab, name, 10 * MIB, seed=10)  # a guest with data worth the mapping
    copy = dr_copy(lab, name, "db #2 & replica (restored)")
    churn_vm(lab, name, 256 << 10, seed=11)  # the source moved on since the copy was made
    job = mapped_job(lab, "Mapped to a restored copy", [name], {name: ref(copy)})
    store.jobs.add(job)
    copies = source_copies(lab, [name], tmp_path / "run1")

    session = run_job(store, job.name)
    assert session.status == RunStatus.SUCCESS, task_log(store, session.id)
    (task,) = store.sessions.tasks(session.id)
    full = allocated(lab, name)
    # 256 KiB of guest writes, in 1 MiB blocks: a few MiB sent, not the guest's data.
    assert full > 8 * MIB
    assert 0 < task.stats.transferred_bytes <= full / 4, (task.stats.transferred_bytes, full)
    assert task.stats.processed_bytes == sum(d.capacity for d in copy.disks)
    log = task_log(store, session.id)
    assert "seeded from" in log and "digests of the mapped VM's disk computed" in log
    check_points(lab, store, job.name, copies)  # qemu-img compare: the point is the source

    (replica,) = store.replicas.list(job.name)
    assert (replica.replica_moref, replica.replica_name) == (copy.moref, copy.name)
    _, dr = inventories(lab)
    assert not dr.vms_named(job.replica_name(name))  # no replica VM was created
    adopted = vm(dr, copy.name)
    assert len(list(adopted.all_snapshots())) == 1  # the restore point

    # The next run is an ordinary incremental one on the adopted replica.
    churn_vm(lab, name, 2 << 20, seed=12)
    copies = source_copies(lab, [name], tmp_path / "run2")
    again = run_job(store, job.name)
    assert again.status == RunStatus.SUCCESS, task_log(store, again.id)
    assert "changed areas from CBT" in task_log(store, again.id)
    check_points(lab, store, job.name, copies)
    assert len(store.replicas.points(replica.id)) == 2


def test_bad_mappings_stop_the_vm_and_leave_the_mapped_vm_alone(
    lab: LabState, store: Store
) -> None:
    names = ["dc01", "app+cache", "50% batch"]
    grown = dr_copy(lab, "dc01", "dc01 (grown)", grow_mib=1)
    running = dr_copy(lab, "app+cache", "app+cache (running)")
    with client(lab, "dr") as c:
        power.power_on(c, running.moref)
    gone = ObjectRef(ObjectKind.VM, "vm-99999", "gone")
    before = disk_digests(lab, grown)
    job = mapped_job(
        lab,
        "Bad mappings",
        names,
        {"dc01": ref(grown), "app+cache": ref(running), "50% batch": gone},
    )
    store.jobs.add(job)
    try:
        session = run_job(store, job.name)
    finally:
        with client(lab, "dr") as c:
            power.power_off(c, running.moref)
    assert session.status == RunStatus.FAILED
    errors = {
        t.vm_name: [e.message for e in t.log if e.severity == Severity.ERROR]
        for t in store.sessions.tasks(session.id)
    }
    prod, dr = inventories(lab)
    first = vm(prod, "dc01").disks[0]
    label = f"{first.label} ({first.key})"
    grown_disk = vm(dr, grown.name).disks[0]
    assert errors["dc01"] == [
        f"dc01: not replicated: the VM it is mapped to, 'dc01 (grown)' ({grown.moref}), has "
        f"disk 1, {grown_disk.label} ({grown_disk.key}), of "
        f"{(first.capacity + MIB) / MIB:.1f} MiB; the source's disk 1, {label}, has "
        f"{first.capacity / MIB:.1f} MiB: the capacities must be the same"
    ]
    assert errors["app+cache"] == [
        f"app+cache: not replicated: the VM it is mapped to, 'app+cache (running)' "
        f"({running.moref}), is poweredOn: a mapped VM must be powered off (it becomes the "
        "replica, and its disks must not change while they are read)"
    ]
    (missing,) = errors["50% batch"]
    assert missing.startswith(
        "50% batch: not replicated: the VM it is mapped to, 'gone' (vm-99999), cannot be found "
        f"on the DR server {lab.dr.address}: "
    )
    # Nothing was written: no replica VM, no point, the mapped VMs unchanged.
    for replica in store.replicas.list(job.name):
        assert replica.replica_moref is None
        assert store.replicas.latest_point(replica.id) is None
    for n in names:
        assert not dr.vms_named(job.replica_name(n))
    assert not list(vm(dr, grown.name).all_snapshots())
    assert disk_digests(lab, grown) == before


def test_a_cancelled_first_run_leaves_the_mapped_vm_as_it_was(
    lab: LabState, store: Store, tmp_path: Path
) -> None:
    name = "Zürich fileserver [fs]"
    copy = dr_copy(lab, name, "fileserver restored")
    before = disk_digests(lab, copy)
    churn_vm(lab, name, 1 << 20, seed=13)
    job = mapped_job(lab, "Mapped, cancelled", [name], {name: ref(copy)})
    store.jobs.add(job)
    cancel = threading.Event()

    def events(e: Event) -> None:
        if isinstance(e, TaskLog) and "seeded from" in e.message:
            cancel.set()  # after the first disk's seed, before its blocks are compared

    session = run_job(store, job.name, cancel=cancel, events=events)
    assert session.status == RunStatus.FAILED
    assert "cancelled" in task_log(store, session.id)
    (replica,) = store.replicas.list(job.name)
    assert replica.replica_moref is None and store.replicas.latest_point(replica.id) is None
    _, dr = inventories(lab)
    assert not list(vm(dr, copy.name).all_snapshots())
    assert disk_digests(lab, copy) == before
    # The seeds went with the run: the chain folders hold no point.
    ds = next(d for d in dr.datastores if d.name == "dr-ds-01")
    folder = Path(ds.url) / job.replica_name(name)
    assert not list(folder.glob("disk-*/point-*"))

    # Run again: the mapping is taken up and the replica is right.
    copies = source_copies(lab, [name], tmp_path / "copies")
    session = run_job(store, job.name)
    assert session.status == RunStatus.SUCCESS, task_log(store, session.id)
    check_points(lab, store, job.name, copies)
    assert store.replicas.list(job.name)[0].replica_moref == copy.moref
