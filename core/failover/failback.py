"""Failback: the failed-over replica's disks sent back to production, only where they differ.

Targets: the original VM (its disks are brought in line with the replica, in place), or a new
VM made at production from the replica's configuration (`NewLocation`). Both the replica and the
target are powered off first (guest shutdown, power off after a timeout), so neither disk
changes during the copy. Per disk the running replica (its child over the restore point chain,
core.failover.running) is read block by block beside the target's flat extent; each block's
digest (core.blocks, XXH3-128) is compared, and only differing blocks are written, in place, into
the target's extent; every written block is read back and its digest checked. The block engine
(core.engine) is not used for this: it writes restore point chains, not a VM's own flat disk.
Then the target is powered on; the replica stays off, its failover record kept, so that:

- Commit failback: the replica goes back to its restore points (what ran on it is discarded,
  it now lives at production), state Ready. Change tracking of the target is reset, since the
  writes bypassed it: the next run compares digests. A new VM replaces the original in the job.
- Undo failback: the target is powered off (a VM failback made is deleted), the replica is
  powered on again, state Failover.

The target's disks are reached by direct storage access (the production datastore seen from
here, as a run's Direct storage access reads them); each must be a single flat extent with no
snapshot delta, or the failback stops before writing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from core import blocks
from core.errors import FailbackError, FailoverError, ReplicaDeskError, VSphereError
from core.failover import records
from core.failover.operations import SHUTDOWN_TIMEOUT, exclude_vm, locks, restore_replica
from core.failover.records import FailbackRecord, FailoverRecord
from core.failover.session import FAILED_OVER, Operation, OperationResult, require_state
from core.failover.site import DrSite
from core.jobs import servers
from core.model.objects import ObjectKind, ObjectRef
from core.model.replicas import Replica, ReplicaState
from core.model.runs import RunTrigger, TransferStats
from core.store.store import Store
from core.vmdk.descriptor import flat_descriptor, new_cid, parse_descriptor, render_descriptor
from core.vmdk.image import open_disk
from core.vsphere import cbt, power, vms
from core.vsphere.connection import VSphereClient
from core.vsphere.datastore import DatastorePath, local_path
from core.vsphere.inventory import read_inventory, read_vm
from core.vsphere.models import Inventory, Vm

BLOCK = 1 << 20
CHUNK = 16 << 20


@dataclass(frozen=True)
class NewLocation:
    """Where failback makes a new VM at production."""

    name: str
    host: str  # moref
    datastore: str  # moref
    folder: str = ""  # moref; "" for the datacenter's VM folder
    resource_pool: str = ""  # moref; "" for the host's root pool


@dataclass(frozen=True)
class DiskSync:
    compared_bytes: int
    written_bytes: int
    blocks_written: int


def flat_extent(descriptor: Path, what: str) -> Path:
    """The one flat extent a production disk's descriptor names; FailbackError otherwise."""
    try:
        text = descriptor.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise FailbackError(what, f"cannot read {descriptor}: {e}") from e
    d = parse_descriptor(text, str(descriptor))
    if d.parent_hint is not None or len(d.extents) != 1:
        raise FailbackError(
            what,
            f"{descriptor.name} has snapshots or several extents: remove its snapshots first",
        )
    extent = d.extents[0]
    if extent.kind not in ("FLAT", "VMFS") or extent.offset_sectors or not extent.filename:
        raise FailbackError(what, f"{descriptor.name} is not a flat disk ({extent.kind})")
    return descriptor.parent / extent.filename


def sync_disk(source: Path, target_flat: Path, what: str, block: int = BLOCK) -> DiskSync:
    """Make `target_flat` read like the disk `source` opens, writing only differing blocks."""
    written = count = 0
    with open_disk(source, "vmdk") as image:
        size = image.size
        if os.path.getsize(target_flat) != size:
            raise FailbackError(
                what,
                f"{target_flat.name} holds {os.path.getsize(target_flat)} bytes, the replica's "
                f"disk {size}",
            )
        fd = os.open(target_flat, os.O_RDWR)
        try:
            src = bytearray(CHUNK)
            dst = bytearray(CHUNK)
            for offset in range(0, size, CHUNK):
                n = min(CHUNK, size - offset)
                sv, tv = memoryview(src)[:n], memoryview(dst)[:n]
                image.readinto(offset, sv)
                if os.preadv(fd, [tv], offset) != n:
                    raise FailbackError(what, f"{target_flat.name} is shorter than it says")
                ds = blocks.digest_blocks(sv, block)
                differ = np.flatnonzero((ds != blocks.digest_blocks(tv, block)).any(axis=1))
                for i in differ.tolist():
                    start = i * block
                    end = min(start + block, n)
                    os.pwrite(fd, sv[start:end], offset + start)
                    written += end - start
                    count += 1
                if differ.size:
                    os.fsync(fd)
                    os.preadv(fd, [tv], offset)
                    again = blocks.digest_blocks(tv, block)
                    bad = np.flatnonzero((ds[differ] != again[differ]).any(axis=1))
                    if bad.size:
                        at = offset + int(differ[int(bad[0])]) * block
                        raise FailbackError(what, f"block at {at} reads back different")
        finally:
            os.close(fd)
    return DiskSync(size, written, count)


def _production_file(inv: Inventory, datastore: str, file_name: str, what: str) -> Path:
    ds = inv.datastore(datastore)
    root = local_path(ds, DatastorePath(ds.name, ""))
    if not root.is_dir():
        raise FailbackError(
            what,
            f"production datastore {ds.name} is not visible from this machine (expected at "
            f"{root}); failback writes the target's disks by direct storage access",
        )
    return local_path(ds, file_name)


def _source_network(job_map: dict[str, str], dr_network: str) -> str:
    return job_map.get(dr_network, dr_network)


def _new_vm(
    prod: VSphereClient,
    inv: Inventory,
    replica_vm: Vm,
    where: NewLocation,
    back: dict[str, str],
    op: Operation,
) -> Vm:
    host = inv.host(where.host)
    dc = inv.datacenter(host.datacenter)
    available = {n.name for n in vms.networks_on_host(prod, host.moref)}
    nics = []
    for nic in replica_vm.nics:
        net = _source_network(back, nic.network_name)
        if net not in available:
            op.warn(
                f"NIC {nic.label or nic.key}: network {net!r} is not on host {host.name}: "
                "the new VM's NIC is disconnected"
            )
        usable = net in available
        nics.append(vms.NewNic(net if usable else None, nic.adapter or "vmxnet3", usable))
    spec = vms.NewVm(
        name=where.name,
        host=host.moref,
        resource_pool=where.resource_pool or host.resource_pool,
        folder=where.folder or dc.vm_folder,
        datastore=where.datastore,
        cpus=replica_vm.cpus,
        memory_mb=replica_vm.memory_mb,
        guest_id=replica_vm.guest_id or "otherGuest64",
        disks=tuple(vms.NewDisk(d.capacity, thin=d.thin) for d in replica_vm.disks),
        nics=tuple(nics),
    )
    made = vms.create_vm(prod, spec)
    what = f"new VM {where.name!r}"
    inv2 = read_inventory(prod)
    for d in made.disks:
        desc = _production_file(inv2, d.datastore, d.file_name, what)
        flat = desc.with_name(desc.name[: -len(".vmdk")] + "-flat.vmdk")
        with open(flat, "ab") as f:
            f.truncate(d.capacity)
        text = render_descriptor(flat_descriptor(d.capacity, flat.name, new_cid(), "vmfs"))
        desc.write_text(text, encoding="utf-8")
    op.info(f"new VM {where.name!r} ({made.moref}) created on host {host.name}")
    return made


def failback(
    store: Store,
    replica_id: int,
    *,
    to: NewLocation | None = None,
    shutdown_timeout: float = SHUTDOWN_TIMEOUT,
) -> OperationResult:
    """Fail back to the original VM (`to` None) or to a new VM at production."""
    replica = store.replicas.get(replica_id)
    require_state(replica, FAILED_OVER, "fail back")
    job = store.jobs.get(replica.job)
    back = {m.target: m.source for m in job.network.mappings}
    with Operation(store, replica, RunTrigger.FAILBACK, "Failback") as op:
        with (
            store.locks.hold(locks(replica), f"failback of {replica.replica_name}"),
            DrSite.connect(store, replica) as site,
        ):
            vm = site.replica_vm()
            where = records.folder(site.local(site.vm_folder(vm)))
            record = records.load(where, records.FAILOVER, FailoverRecord)
            if record is None:
                raise FailoverError(replica.replica_name, f"no failover record in {where}")
            try:
                prod = servers.connect_stored(store, replica.source_server, keepalive=False)
            except VSphereError as e:
                raise FailbackError(
                    replica.replica_name, f"the production server cannot be reached: {e}"
                ) from e
            with prod:
                inv = read_inventory(prod)
                if to is None:
                    if not inv.has(replica.vm_moref):
                        raise FailbackError(
                            replica.replica_name,
                            f"the original VM {replica.vm_name!r} ({replica.vm_moref}) is gone: "
                            "fail back to a new location",
                        )
                    target = read_vm(prod, replica.vm_moref)
                    if len(target.disks) != len(record.disks):
                        raise FailbackError(
                            replica.replica_name,
                            f"the original VM has {len(target.disks)} disks, the replica "
                            f"{len(record.disks)}",
                        )
                else:
                    target = _new_vm(prod, inv, vm, to, back, op)
                    inv = read_inventory(prod)
                shut = power.shutdown_guest(site.client, vm.moref, timeout=shutdown_timeout)
                op.info(
                    "the replica VM was shut down"
                    if shut.graceful
                    else f"the replica VM was powered off: {shut.reason}"
                )
                if target.power_state != "poweredOff":
                    shut = power.shutdown_guest(prod, target.moref, timeout=shutdown_timeout)
                    op.info(f"{target.name!r} at production was stopped for the failback")
                total = TransferStats()
                written: list[str] = []
                for rd, td in zip(
                    record.disks, sorted(target.disks, key=lambda d: d.key), strict=True
                ):
                    what = f"{replica.replica_name} disk {rd.disk_key}"
                    flat = flat_extent(
                        _production_file(inv, td.datastore, td.file_name, what), what
                    )
                    s = sync_disk(site.local(rd.file_name), flat, what)
                    op.info(
                        f"disk {rd.disk_key} -> {td.file_name}: {s.blocks_written} block(s) "
                        f"differed, {s.written_bytes / 2**20:.1f} MiB sent of "
                        f"{s.compared_bytes / 2**20:.1f} MiB compared, every one verified"
                    )
                    total = TransferStats(
                        total.processed_bytes + s.compared_bytes,
                        total.read_bytes + 2 * s.compared_bytes,
                        total.transferred_bytes + s.written_bytes,
                    )
                    written.append(td.file_name)
                op.stats = total
                records.save(
                    where,
                    records.FAILBACK,
                    FailbackRecord(
                        replica.id,
                        replica.source_server,
                        target.moref,
                        target.name,
                        to is not None,
                        total.transferred_bytes,
                        tuple(written),
                    ),
                )
                store.replicas.set_state(replica.id, ReplicaState.FAILBACK)
                power.power_on(prod, target.moref)
                op.info(f"{target.name!r} is powered on at production: commit or undo the failback")
        return op.result()


def _failback_record(site: DrSite, vm: Vm) -> tuple[Path, FailbackRecord, FailoverRecord]:
    where = records.folder(site.local(site.vm_folder(vm)))
    fb = records.load(where, records.FAILBACK, FailbackRecord)
    fo = records.load(where, records.FAILOVER, FailoverRecord)
    if fb is None or fo is None:
        raise FailoverError(site.replica.replica_name, f"no failback record in {where}")
    return where, fb, fo


def commit_failback(store: Store, replica_id: int) -> OperationResult:
    """The failback target is production again; the replica goes back to Ready."""
    replica = store.replicas.get(replica_id)
    require_state(replica, {ReplicaState.FAILBACK}, "commit a failback")
    with Operation(store, replica, RunTrigger.COMMIT_FAILBACK, "Commit failback") as op:
        with (
            store.locks.hold(locks(replica), f"commit failback of {replica.replica_name}"),
            DrSite.connect(store, replica) as site,
        ):
            vm = site.replica_vm()
            where, fb, fo = _failback_record(site, vm)
            with servers.connect_stored(store, fb.target_server, keepalive=False) as prod:
                if cbt.change_tracking_enabled(prod, fb.target_vm):
                    cbt.set_change_tracking(prod, fb.target_vm, False)
                    cbt.set_change_tracking(prod, fb.target_vm, True)
                    op.info(
                        f"changed block tracking of {fb.target_vm_name!r} was reset (the "
                        "failback wrote past it): the next run compares digests"
                    )
            restore_replica(site, vm, where, fo, op)
            records.remove(where, records.FAILBACK)
            records.remove_folder_if_empty(where)
            if fb.new_vm:
                _swap_in_job(store, replica, fb, op)
            store.replicas.set_state(replica.id, ReplicaState.READY)
            op.info(f"failback committed: {fb.target_vm_name!r} is production, the replica Ready")
        return op.result()


def _swap_in_job(store: Store, replica: Replica, fb: FailbackRecord, op: Operation) -> None:
    try:
        job = store.jobs.get(replica.job)
    except ReplicaDeskError:
        op.info(f"job {replica.job!r} no longer exists: not adjusted")
        return
    new = ObjectRef(ObjectKind.VM, fb.target_vm, fb.target_vm_name)
    explicit = any(o.moref == replica.vm_moref for o in job.source.objects)
    if explicit:
        objects = tuple(new if o.moref == replica.vm_moref else o for o in job.source.objects)
        job = replace(job, source=replace(job.source, objects=objects))
    else:
        job = exclude_vm(job, replica.vm_moref, replica.vm_name)
        job = replace(job, source=replace(job.source, objects=(*job.source.objects, new)))
    store.jobs.update(job)
    op.info(
        f"job {job.name!r} now replicates {fb.target_vm_name!r} ({fb.target_vm}) instead of "
        f"{replica.vm_name!r}; its first run makes a new replica"
    )


def undo_failback(store: Store, replica_id: int) -> OperationResult:
    """Back to the failed-over replica: the target off (a VM failback made is deleted)."""
    replica = store.replicas.get(replica_id)
    require_state(replica, {ReplicaState.FAILBACK}, "undo a failback")
    with Operation(store, replica, RunTrigger.UNDO_FAILBACK, "Undo failback") as op:
        with (
            store.locks.hold(locks(replica), f"undo failback of {replica.replica_name}"),
            DrSite.connect(store, replica) as site,
        ):
            vm = site.replica_vm()
            where, fb, fo = _failback_record(site, vm)
            with servers.connect_stored(store, fb.target_server, keepalive=False) as prod:
                power.power_off(prod, fb.target_vm)
                if fb.new_vm:
                    vms.destroy_vm(prod, fb.target_vm)
                    op.info(f"the VM failback made, {fb.target_vm_name!r}, was deleted")
                else:
                    op.info(f"{fb.target_vm_name!r} at production is powered off")
            power.power_on(site.client, vm.moref)
            records.remove(where, records.FAILBACK)
            state = ReplicaState.REIP_FAILED if fo.reip not in ("applied", "no rules") else (
                ReplicaState.FAILOVER
            )
            store.replicas.set_state(replica.id, state)
            op.info("the replica runs again at the DR site")
        return op.result()
