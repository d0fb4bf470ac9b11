"""Failback: the failed-over replica's disks sent back to production, only where they differ.

Targets: the original VM (its disks are brought in line with the replica, in place), the
original VM restored in another place (`Restored`: after the production site was rebuilt, the VM
came back from a backup onto another host or datastore, as a VM of its own; it is found by its
moref, or by the source VM's instance UUID that the failover recorded, and its disks must have
the replica's layout; being a restore of the original, most blocks match and only the others
travel), or a new VM made at production from the replica's configuration (`NewLocation`). The
record is written before anything stops (core.failover.recovery). Both the replica and the
target are powered off first (guest shutdown, power off after a timeout), so neither disk
changes during the copy. Per disk the running replica (its child over the restore point chain,
core.failover.running) is read block by block beside the target's flat extent; each block's
digest (core.blocks, XXH3-128) is compared, and only differing blocks are written, in place, into
the target's extent; every written block is read back and its digest checked. The block engine
(core.engine) is not used for this: it writes restore point chains, not a VM's own flat disk.
Then the target is powered on; the replica stays off, its failover record kept, so that:

- Commit failback: the replica goes back to its restore points (what ran on it is discarded,
  it now lives at production), state Ready. Change tracking of the target is reset, since the
  writes bypassed it: the next run compares digests. A new or restored VM replaces the original
  in the job.
- Undo failback: the target is powered off (a VM failback made is deleted), the replica is
  powered on again, state Failover.

A failback can be cancelled (its `cancel` event is looked at before anything is stopped and
before each chunk of the copy): it is then rolled back to the failover exactly as a crash in the
copy is (core.failover.recovery.roll_back_failback): the replica runs again, state Failover; the
target is off (a VM the failback made is deleted), an original VM's disks partly brought in line,
which the next failback completes sending only what still differs.

The target's disks are reached by direct storage access (the production datastore seen from
here, as a run's Direct storage access reads them); each must be a single flat extent with no
snapshot delta, or the failback stops before writing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from core import blocks
from core.errors import FailbackError, FailoverError, ReplicaDeskError, VSphereError
from core.failover import networks, records, recovery
from core.failover.operations import SHUTDOWN_TIMEOUT, exclude_vm, restore_replica
from core.failover.records import FailbackRecord, FailoverRecord
from core.failover.session import (
    FAILED_OVER,
    Operation,
    OperationCancelledError,
    OperationResult,
    Started,
    check_cancel,
    locks,
    require_state,
)
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
class Restored:
    """The original VM restored in another place at production (another host, datastore or
    vCenter folder, from a backup): by its moref, or ("") found by the source VM's instance
    UUID, which the failover recorded. Its disks must have the replica's layout."""

    vm: str = ""


Progress = Callable[[int, int], None]
"""(bytes compared so far, bytes to compare) during a failback's copy."""


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


def sync_disk(
    source: Path,
    target_flat: Path,
    what: str,
    block: int = BLOCK,
    on_progress: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
) -> DiskSync:
    """Make `target_flat` read like the disk `source` opens, writing only differing blocks;
    `on_progress(bytes done)` after each chunk. `cancel` is looked at before each chunk
    (OperationCancelledError naming `what` and how far it got; the chunks done stay written)."""
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
                if cancel is not None and cancel.is_set():
                    raise OperationCancelledError(
                        what, f"after {offset / 2**20:.0f} of {size / 2**20:.0f} MiB"
                    )
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
                if on_progress is not None:
                    on_progress(offset + n)
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
    for i, nic in enumerate(replica_vm.nics):
        net = _source_network(back, nic.network_name)
        if net not in available:
            op.warn(
                f"{networks.nic_label(i, nic)}: network {net!r} is not on host {host.name}: "
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


def _restored_vm(prod: VSphereClient, inv: Inventory, name: str, uuid: str, want: Restored) -> Vm:
    """The original VM restored in another place: `want.vm`, or the one VM at production with
    the source VM's instance UUID (a restore that kept the VM's identity)."""
    if want.vm:
        if not inv.has(want.vm):
            raise FailbackError(name, f"production has no VM {want.vm}")
        return read_vm(prod, want.vm)
    if not uuid:
        raise FailbackError(
            name,
            "the source VM's instance UUID is unknown (production was not reached at the "
            "failover): name the restored VM with its moref (--vm)",
        )
    found = [v for v in inv.vms if v.instance_uuid.lower() == uuid.lower() and not v.template]
    if not found:
        raise FailbackError(
            name,
            f"no VM at production has the original VM's instance UUID {uuid}: name the "
            "restored VM with its moref (--vm)",
        )
    if len(found) > 1:
        named = ", ".join(f"{v.name!r} ({v.moref})" for v in found)
        raise FailbackError(
            name,
            f"{len(found)} VMs at production have instance UUID {uuid} ({named}): name "
            "one with --vm",
        )
    return read_vm(prod, found[0].moref)


def _target_flats(
    inv: Inventory, target: Vm, record: FailoverRecord, name: str
) -> list[tuple[str, Path]]:
    """(file name, flat extent) of each target disk, in the replica's disk order, after
    checking that the layouts match: nothing is stopped or written when they do not."""
    tdisks = sorted(target.disks, key=lambda d: d.key)
    if len(tdisks) != len(record.disks):
        raise FailbackError(
            name, f"{target.name!r} has {len(tdisks)} disks, the replica {len(record.disks)}"
        )
    out = []
    for rd, td in zip(record.disks, tdisks, strict=True):
        what = f"{name} disk {rd.disk_key}"
        if td.capacity != rd.capacity:
            raise FailbackError(
                name,
                f"disk {td.key} of {target.name!r} holds {td.capacity} bytes, the replica's "
                f"disk {rd.disk_key} {rd.capacity}: the layouts differ",
            )
        flat = flat_extent(_production_file(inv, td.datastore, td.file_name, what), what)
        out.append((td.file_name, flat))
    return out


def failback(
    store: Store,
    replica_id: int,
    *,
    to: NewLocation | Restored | None = None,
    shutdown_timeout: float = SHUTDOWN_TIMEOUT,
    on_progress: Progress | None = None,
    cancel: threading.Event | None = None,
    on_started: Started | None = None,
) -> OperationResult:
    """Fail back to the original VM (`to` None), to the original VM restored in another place
    (`Restored`) or to a new VM at production (`NewLocation`). `on_progress(done, total)` is
    called with the bytes compared so far, for a progress bar. Cancelled (`cancel` set before
    the copy ends), it is rolled back to the failover as the module says and raises
    OperationCancelledError."""
    replica = recovery.recover(store, replica_id)
    require_state(replica, FAILED_OVER, "fail back")
    job = store.jobs.get(replica.job)
    back = {m.target: m.source for m in job.network.mappings}
    name = replica.replica_name
    untouched = "before anything was stopped: the replica runs on, state Failover"
    with Operation(store, replica, RunTrigger.FAILBACK, "Failback", on_started) as op:
        check_cancel(cancel, replica, untouched)
        with (
            store.locks.hold(locks(replica), f"failback of {name}"),
            DrSite.connect(store, replica) as site,
        ):
            vm = site.replica_vm()
            where = records.folder(site.local(site.vm_folder(vm)))
            record = records.load(where, records.FAILOVER, FailoverRecord)
            if record is None:
                raise FailoverError(name, f"no failover record in {where}")
            try:
                prod = servers.connect_stored(store, replica.source_server, keepalive=False)
            except VSphereError as e:
                raise FailbackError(name, f"the production server cannot be reached: {e}") from e
            with prod:
                inv = read_inventory(prod)
                kind = "original"
                if isinstance(to, NewLocation):
                    kind = "new"
                    target = _new_vm(prod, inv, vm, to, back, op)
                    inv = read_inventory(prod)
                elif isinstance(to, Restored):
                    kind = "restored"
                    target = _restored_vm(prod, inv, name, record.source_instance_uuid, to)
                    op.info(
                        f"the original VM restored in another place: {target.name!r} "
                        f"({target.moref}) on host {inv.host(target.host).name}"
                    )
                else:
                    if not inv.has(replica.vm_moref):
                        raise FailbackError(
                            name,
                            f"the original VM {replica.vm_name!r} ({replica.vm_moref}) is gone: "
                            "fail back to the original VM restored in another place, or to a "
                            "new location",
                        )
                    target = read_vm(prod, replica.vm_moref)
                try:
                    flats = _target_flats(inv, target, record, name)
                    check_cancel(cancel, replica, untouched)
                except BaseException:
                    if kind == "new":
                        vms.destroy_vm(prod, target.moref)
                    raise
                fb = FailbackRecord(
                    replica.id,
                    replica.source_server,
                    target.moref,
                    target.name,
                    kind == "new",
                    0,
                    tuple(f for f, _ in flats),
                    records.STARTED,
                    op.session_id,
                    kind,
                    target.power_state != "poweredOff",
                )
                # Written before anything is stopped or copied: a crash from here on is rolled
                # back to the failover by the next operation (core.failover.recovery).
                records.save(where, records.FAILBACK, fb)
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
                grand = sum(d.capacity for d in record.disks)
                for rd, (file_name, flat) in zip(record.disks, flats, strict=True):
                    what = f"{name} disk {rd.disk_key}"
                    base = total.processed_bytes

                    def progress(done: int, base: int = base) -> None:
                        if on_progress is not None:
                            on_progress(base + done, grand)

                    try:
                        s = sync_disk(
                            site.local(rd.file_name),
                            flat,
                            what,
                            on_progress=progress,
                            cancel=cancel,
                        )
                    except OperationCancelledError as e:
                        fate = recovery.roll_back_failback(prod, site, site.replica_vm(), where, fb)
                        where_stopped = e.args[1] if len(e.args) > 1 else ""
                        raise OperationCancelledError(
                            name,
                            f"while copying disk {rd.disk_key} ({where_stopped}): rolled back to "
                            f"the failover (the replica runs again, state Failover); {fate}",
                        ) from None
                    op.info(
                        f"disk {rd.disk_key} -> {file_name}: {s.blocks_written} block(s) "
                        f"differed, {s.written_bytes / 2**20:.1f} MiB sent of "
                        f"{s.compared_bytes / 2**20:.1f} MiB compared, every one verified"
                    )
                    total = TransferStats(
                        total.processed_bytes + s.compared_bytes,
                        total.read_bytes + 2 * s.compared_bytes,
                        total.transferred_bytes + s.written_bytes,
                    )
                    op.stats = total
                fb = replace(fb, copied_bytes=total.transferred_bytes, phase=records.PREPARED)
                records.save(where, records.FAILBACK, fb)
                store.replicas.set_state(replica.id, ReplicaState.FAILBACK)
                power.power_on(prod, target.moref)
                records.save(where, records.FAILBACK, replace(fb, phase=records.DONE))
                op.info(f"{target.name!r} is powered on at production: commit or undo the failback")
        return op.result(vm=target.moref)


def _failback_record(site: DrSite, vm: Vm) -> tuple[Path, FailbackRecord, FailoverRecord]:
    where = records.folder(site.local(site.vm_folder(vm)))
    fb = records.load(where, records.FAILBACK, FailbackRecord)
    fo = records.load(where, records.FAILOVER, FailoverRecord)
    if fb is None or fo is None:
        raise FailoverError(site.replica.replica_name, f"no failback record in {where}")
    return where, fb, fo


def commit_failback(
    store: Store, replica_id: int, *, on_started: Started | None = None
) -> OperationResult:
    """The failback target is production again; the replica goes back to Ready."""
    replica = recovery.recover(store, replica_id)
    require_state(replica, {ReplicaState.FAILBACK}, "commit a failback")
    title = "Commit failback"
    with Operation(store, replica, RunTrigger.COMMIT_FAILBACK, title, on_started) as op:
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
            if fb.target_vm != replica.vm_moref:
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


def undo_failback(
    store: Store, replica_id: int, *, on_started: Started | None = None
) -> OperationResult:
    """Back to the failed-over replica: the target off (a VM failback made is deleted)."""
    replica = recovery.recover(store, replica_id)
    require_state(replica, {ReplicaState.FAILBACK}, "undo a failback")
    title = "Undo failback"
    with Operation(store, replica, RunTrigger.UNDO_FAILBACK, title, on_started) as op:
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
            state = (
                ReplicaState.REIP_FAILED
                if fo.reip not in ("applied", "no rules")
                else (ReplicaState.FAILOVER)
            )
            store.replicas.set_state(replica.id, state)
            op.info("the replica runs again at the DR site")
        return op.result()
