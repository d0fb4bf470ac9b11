"""A source VM whose disks change between runs, and a VM that appears in a job's folder, against
the real lab: the replica follows, and every point still reads like the source did."""

from __future__ import annotations

from pathlib import Path

from core.jobs.runner import run_job
from core.lab.changelog import ChangeLog
from core.lab.content import flat_name, write_vm_disk
from core.lab.lab import LabState, datastore_file
from core.lab.register import inventories, lab_job
from core.model.runs import RunStatus
from core.store.store import Store
from core.vmdk.descriptor import flat_descriptor, new_cid, render_descriptor
from core.vsphere import vms
from core.vsphere.connection import VSphereClient
from tests.core.jobs.test_runner import check_points, source_copies, task_log, vm

MIB = 1 << 20


def prod_client(lab: LabState) -> VSphereClient:
    p = lab.production
    return VSphereClient.connect(p.address, p.port, lab.user, lab.password, protocol="http")


def ok(status: RunStatus) -> bool:
    return status in (RunStatus.SUCCESS, RunStatus.WARNING)


def test_added_and_grown_disks(lab: LabState, store: Store, tmp_path: Path) -> None:
    name = "app+cache"
    job = lab_job(lab, "Layout", [name])
    store.jobs.add(job)
    assert ok(run_job(store, job.name).status)
    prod, _ = inventories(lab)
    source = vm(prod, name)
    first = source.disks[0]
    log = ChangeLog(Path(lab.changelog))
    with prod_client(lab) as c:
        # A new disk, written by the guest...
        added = vms.add_disk(c, source.moref, 24 * MIB)
        # ...and the first disk grown by 8 MiB (the guest's data stays where it was).
        grown = first.capacity + 8 * MIB
        vms.resize_disk(c, source.moref, first.key, grown)
    prod, _ = inventories(lab)
    added_desc = datastore_file(prod, added.datastore, added.file_name)
    areas = write_vm_disk(added_desc, added.capacity, fill=0.3, seed=5)
    log.record(source.moref, added.key, added.capacity, areas)
    first_desc = datastore_file(prod, first.datastore, first.file_name)
    with open(flat_name(first_desc), "r+b") as f:
        f.truncate(grown)
        f.seek(grown - MIB)
        f.write(b"\x5a" * MIB)  # the guest uses the new space at once
    first_desc.write_text(
        render_descriptor(flat_descriptor(grown, flat_name(first_desc).name, new_cid(), "vmfs"))
    )
    log.record(source.moref, first.key, grown, [(grown - MIB, MIB)])

    copies = source_copies(lab, [name], tmp_path / "run2")
    s2 = run_job(store, job.name)
    assert ok(s2.status), task_log(store, s2.id)
    check_points(lab, store, job.name, copies)
    text = task_log(store, s2.id)
    assert "gained disk" in text and "grew to" in text
    replica = store.replicas.list(job.name)[0]
    point = store.replicas.latest_point(replica.id)
    assert point is not None
    chains = {d.disk_key: d.chain for d in point.disks}
    assert chains[first.key] is not None and chains[first.key].endswith(f"disk-{first.key}-r2")
    assert added.key in chains
    _, dr = inventories(lab)
    assert sorted(d.capacity for d in vm(dr, replica.replica_name).disks) == sorted(
        d.capacity for d in vm(inventories(lab)[0], name).disks
    )
    # The restore point before the change still reads as before.
    assert [p.number for p in store.replicas.points(replica.id)] == [1, 2]


def test_a_vm_added_to_a_job_folder_is_picked_up(
    lab: LabState, store: Store, tmp_path: Path
) -> None:
    job = lab_job(lab, "Folder job", folders=["Infrastructure"])
    store.jobs.add(job)
    s1 = run_job(store, job.name)
    assert ok(s1.status)
    before = {t.vm_name for t in store.sessions.tasks(s1.id)}
    prod, _ = inventories(lab)
    folder = next(f for f in prod.folders if f.path == ("Infrastructure",))
    template = next(v for v in prod.vms if v.folder == folder.moref)
    with prod_client(lab) as c:
        new = vms.create_vm(
            c,
            vms.NewVm(
                name="new app #9",
                host=template.host,
                resource_pool=template.resource_pool,
                folder=folder.moref,
                datastore=template.disks[0].datastore,
                disks=(vms.NewDisk(16 * MIB),),
                nics=(vms.NewNic("Prod App"),),
            ),
        )
    disk = new.disks[0]
    prod, _ = inventories(lab)
    desc = datastore_file(prod, disk.datastore, disk.file_name)
    ChangeLog(Path(lab.changelog)).record(
        new.moref, disk.key, disk.capacity, write_vm_disk(desc, disk.capacity, fill=0.4, seed=8)
    )
    copies = source_copies(lab, [*before, "new app #9"], tmp_path / "run2")
    s2 = run_job(store, job.name)
    assert ok(s2.status), task_log(store, s2.id)
    assert {t.vm_name for t in store.sessions.tasks(s2.id)} == before | {"new app #9"}
    check_points(lab, store, job.name, copies)
