"""One VM in one job run: pre-flight, snapshot, replica VM, every disk, restore point, retention.

The order, and why:

1. Pre-flight, before anything is written: the job's network mapping against the DR site's
   networks (an explicit row to a missing network is an error; an unmapped NIC is disconnected
   with a warning), the replica VM unchanged since our last point (powered on, or its snapshots
   changed by hand: the replica is marked Needs resync and left alone), datastore space on a
   first run.
2. Snapshots of ours that a crashed run left on the source VM are removed (the store lists every
   snapshot a run took; a snapshot not listed is never touched). Then the run's own snapshot is
   taken and recorded, and removed at the end whatever happens.
3. First run: the replica VM is created (in a cluster, on the host with the fewest VMs) with the
   source's CPU, memory, disks and NICs on the mapped networks. Later runs add disks the source
   gained and grow disks that grew.
4. Each disk is replicated by the block engine into its chain folder on the target datastore
   (`[ds] <replica>/disk-<key>`; a resized disk starts a new chain, `disk-<key>-r<n>`), through a
   target proxy's mover service or, when none can, by this machine. Changed areas come from CBT
   since the disk's change ID at our last point; without CBT, or when CBT fails, the engine
   compares block digests with the replica metadata in the job's repository. Retention is held
   back during the copy.
5. When every disk committed, the restore point is a snapshot on the replica VM and a row in the
   store naming each disk's chain point; retention then merges the oldest deltas and removes the
   oldest snapshots. If a disk fails, the points the other disks committed in this run are taken
   back, so a restore point is always whole across the VM's disks.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.engine import (
    RemoteSpec,
    ReplicationRequest,
    ReplicationResult,
    maintain_replica,
    replicate_disk,
)
from core.errors import (
    CancelledError,
    JobRunError,
    PreflightError,
    RemoteError,
    ReplicaDeskError,
    VSphereChangeTrackingError,
    VSphereError,
)
from core.jobs.context import RunContext, remote_spec
from core.jobs.events import TaskFinished, TaskProgress, TaskStarted
from core.jobs.httpdisk import HttpDiskImage
from core.jobs.sources import SourceVm
from core.model.destination import DiskType
from core.model.infra import TRANSPORT_ORDER, TransportMode
from core.model.replicas import DiskPoint, Replica, ReplicaState, RestorePoint
from core.model.runs import Bottleneck, RunStatus, Severity, TransferStats
from core.replica.chain import MAX_POINTS
from core.store.locks import vm_key
from core.vmdk.image import DiskImage
from core.vsphere import cbt, snapshots, vms
from core.vsphere.datastore import DatastorePath, local_path
from core.vsphere.inventory import read_vm
from core.vsphere.models import Datastore, Disk, Vm
from core.vsphere.transfer import DatastoreHttp

CBT_SAMPLE_BLOCKS = 16
"""Blocks CBT calls unchanged that every CBT run reads anyway and checks against the metadata
(16 blocks of 1 MiB: a few milliseconds of reading per disk)."""

SNAPSHOT_PREFIX = "ReplicaDesk"
"""Names of the snapshots runs take start so (the lab's churn leaves such VMs alone)."""


@dataclass
class DiskOutcome:
    disk: Disk
    chain: DatastorePath
    chain_point: int
    change_id: str | None
    result: ReplicationResult
    target: RemoteSpec | None
    replica_path: str  # what the engine was given: a local folder, or the path on the proxy


@dataclass
class TaskOutcome:
    status: RunStatus
    stats: TransferStats
    point: RestorePoint | None = None
    warnings: list[str] = field(default_factory=list)


def _disk_name(d: Disk) -> str:
    return f"{d.label} ({d.key})" if d.label else f"disk {d.key}"


def _now_text() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class VmReplication:
    def __init__(self, ctx: RunContext, source: SourceVm) -> None:
        self.ctx = ctx
        self.vm = source.vm
        self.excluded = source.excluded_disks
        self.task_id = 0
        self.warnings: list[str] = []
        self.stats = TransferStats()
        self._busy: dict[str, float] = {}

    # -- reporting ---------------------------------------------------------------------------------

    def info(self, message: str) -> None:
        self.ctx.log(Severity.INFO, message, self.task_id, self.vm.name)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.ctx.log(Severity.WARNING, message, self.task_id, self.vm.name)

    # -- the task ----------------------------------------------------------------------------------

    def run(self) -> TaskOutcome:
        ctx = self.ctx
        task = ctx.store.sessions.start_task(ctx.session_id, self.vm.moref, self.vm.name)
        self.task_id = task.id
        ctx.events(TaskStarted(ctx.session_id, task.id, self.vm.name))
        outcome = TaskOutcome(RunStatus.FAILED, TransferStats())
        try:
            key = vm_key(ctx.source_server.address, self.vm.moref)
            with ctx.store.locks.hold([key], f"job {ctx.job.name}, session {ctx.session_id}"):
                point = self._run()
            status = RunStatus.WARNING if self.warnings else RunStatus.SUCCESS
            outcome = TaskOutcome(status, self.stats, point, self.warnings)
        except CancelledError:
            ctx.log(
                Severity.ERROR, "cancelled: nothing of this run was kept", task.id, self.vm.name
            )
            outcome = TaskOutcome(RunStatus.FAILED, self.stats, None, self.warnings)
        except ReplicaDeskError as e:
            ctx.log(Severity.ERROR, str(e), task.id, self.vm.name)
            outcome = TaskOutcome(RunStatus.FAILED, self.stats, None, self.warnings)
        finally:
            ctx.store.sessions.finish_task(task.id, outcome.status, self.stats)
            ctx.events(
                TaskFinished(
                    ctx.session_id,
                    task.id,
                    self.vm.name,
                    outcome.status,
                    self.stats.processed_bytes,
                    self.stats.transferred_bytes,
                )
            )
        return outcome

    def _run(self) -> RestorePoint | None:
        ctx = self.ctx
        job = ctx.job
        replica = ctx.store.replicas.ensure(
            job.name,
            ctx.source_server.address,
            self.vm.moref,
            self.vm.name,
            job.replica_name(self.vm.name),
            ctx.target_server.address,
        )
        if replica.state in (ReplicaState.FAILOVER, ReplicaState.FAILBACK):
            self.warn(f"the replica is in state {replica.state}: not replicated this run")
            return None
        if replica.state == ReplicaState.NEEDS_RESYNC:
            raise PreflightError(
                self.vm.name, "its replica needs resync (it was changed outside ReplicaDesk)"
            )
        disks = [d for d in self.vm.disks if d.key not in self.excluded]
        if not disks:
            self.warn("every disk of the VM is excluded: nothing to replicate")
            return None
        last = ctx.store.replicas.latest_point(replica.id)
        nics = self._map_networks()
        replica_vm = self._check_replica_vm(replica, last)
        datastore = self._target_datastore()
        self._remove_stale_snapshots()
        self._enable_cbt()
        ctx.check_cancel()

        snapshot = self._take_snapshot()
        try:
            snap_disks = {d.key: d for d in snapshots.snapshot_disks(ctx.source, snapshot)}
            if replica_vm is None:
                self._check_space(datastore, disks, snapshot, last)
                replica_vm = self._create_replica_vm(replica, datastore, disks, nics)
            else:
                replica_vm = self._update_replica_disks(replica_vm, disks)
            outcomes = self._replicate_disks(
                replica, replica_vm, datastore, disks, snapshot, snap_disks, last
            )
            return self._record_point(replica, replica_vm, outcomes)
        finally:
            self._remove_own_snapshot(snapshot)

    # -- pre-flight ------------------------------------------------------------------------------

    def _map_networks(self) -> list[vms.NewNic]:
        """The replica's NICs: the source's, on the mapped DR networks (None: disconnected)."""
        ctx = self.ctx
        dc = self._target_datacenter()
        names = {n.name for n in ctx.target_inventory.networks if n.datacenter == dc}
        out: list[vms.NewNic] = []
        for nic in self.vm.nics:
            target = ctx.job.network.target_for(nic.network_name, names)
            if target is not None and target not in names:
                raise PreflightError(
                    self.vm.name,
                    f"the network mapping sends {nic.network_name!r} to {target!r}, which does "
                    f"not exist at the DR site (networks there: {', '.join(sorted(names))})",
                )
            if target is None:
                self.warn(
                    f"NIC {nic.label or nic.key} on {nic.network_name!r} has no network at the DR "
                    "site: the replica's NIC will be disconnected (add a network mapping)"
                )
            out.append(
                vms.NewNic(target, adapter=nic.adapter or "vmxnet3", connected=target is not None)
            )
        return out

    def _target_datacenter(self) -> str:
        placement = self.ctx.job.destination.for_vm(self.vm.moref)
        inv = self.ctx.target_inventory
        target = placement.target.moref
        if not inv.has(target):
            raise PreflightError(
                self.vm.name, f"the destination {placement.target.name} ({target}) does not exist"
            )
        if placement.target.kind == "cluster":
            return inv.cluster(target).datacenter
        return inv.host(target).datacenter

    def _target_datastore(self) -> Datastore:
        placement = self.ctx.job.destination.for_vm(self.vm.moref)
        inv = self.ctx.target_inventory
        if not inv.has(placement.datastore.moref):
            raise PreflightError(
                self.vm.name,
                f"the target datastore {placement.datastore.name} ({placement.datastore.moref}) "
                "does not exist",
            )
        ds = inv.datastore(placement.datastore.moref)
        if not ds.accessible:
            raise PreflightError(self.vm.name, f"the target datastore {ds.name} is not accessible")
        return ds

    def _check_replica_vm(self, replica: Replica, last: RestorePoint | None) -> Vm | None:
        ctx = self.ctx
        if replica.replica_moref is None:
            return None
        try:
            current = read_vm(ctx.target, replica.replica_moref)
        except VSphereError as e:
            raise PreflightError(
                self.vm.name, f"its replica VM {replica.replica_name} cannot be found: {e}"
            ) from e
        why = ""
        if current.power_state != "poweredOff":
            why = f"the replica VM is {current.power_state} (it was started outside ReplicaDesk)"
        elif (
            last is not None
            and last.snapshot_moref
            and current.current_snapshot != last.snapshot_moref
        ):
            why = "the replica VM's snapshots were changed outside ReplicaDesk"
        if why:
            ctx.store.replicas.set_state(replica.id, ReplicaState.NEEDS_RESYNC)
            raise PreflightError(self.vm.name, f"{why}; the replica is marked Needs resync")
        return current

    def _check_space(
        self, ds: Datastore, disks: list[Disk], snapshot: str, last: RestorePoint | None
    ) -> None:
        need = 0
        for d in disks:
            thick = self._thick(d)
            if thick:
                need += d.capacity
                continue
            try:
                need += cbt.changed_areas(
                    self.ctx.source, self.vm.moref, snapshot, d.key
                ).changed_bytes
            except VSphereError:
                need += d.capacity  # no allocation map: assume the worst
        if ds.free < need:
            raise PreflightError(
                self.vm.name,
                f"datastore {ds.name} has {ds.free / 2**30:.1f} GiB free, the replica needs "
                f"{need / 2**30:.1f} GiB",
            )

    def _thick(self, d: Disk) -> bool:
        disk_type = self.ctx.job.destination.for_vm(self.vm.moref).disk_type
        return not d.thin if disk_type == DiskType.SAME else disk_type == DiskType.THICK

    # -- snapshots ---------------------------------------------------------------------------------

    def _remove_stale_snapshots(self) -> None:
        ctx = self.ctx
        server = ctx.source_server.address
        ours = ctx.store.run_snapshots.of_vm(server, self.vm.moref)
        if not ours:
            return
        present = {
            snap.moref: snap
            for root in snapshots.list_snapshots(ctx.source, self.vm.moref)
            for snap in root.walk()
        }
        for moref in ours:
            snap = present.get(moref)
            if snap is not None:
                snapshots.remove_snapshot(ctx.source, self.vm.moref, moref)
                self.warn(f"removed snapshot {snap.name!r} left behind by an earlier run")
            ctx.store.run_snapshots.forget(server, self.vm.moref, moref)

    def _enable_cbt(self) -> None:
        settings = self.ctx.job.settings
        if settings.use_cbt and settings.enable_cbt and not self.vm.change_tracking:
            cbt.set_change_tracking(self.ctx.source, self.vm.moref, True)
            self.info("changed block tracking was off: enabled it (this run compares digests)")

    def _take_snapshot(self) -> str:
        ctx = self.ctx
        name = f"{SNAPSHOT_PREFIX} replication {_now_text()}"
        description = (
            f"Taken by ReplicaDesk job {ctx.job.name!r}, session {ctx.session_id}, to read a "
            "consistent image of the disks; removed when the run ends."
        )
        moref = snapshots.create_snapshot(
            ctx.source, self.vm.moref, name, description, quiesce=ctx.job.settings.quiesce
        )
        ctx.store.run_snapshots.add(ctx.source_server.address, self.vm.moref, moref, ctx.session_id)
        self.info(f"snapshot {name!r} taken")
        return moref

    def _remove_own_snapshot(self, moref: str) -> None:
        ctx = self.ctx
        try:
            snapshots.remove_snapshot(ctx.source, self.vm.moref, moref)
        except VSphereError as e:
            self.warn(f"could not remove the run's snapshot ({e}); the next run removes it")
            return
        ctx.store.run_snapshots.forget(ctx.source_server.address, self.vm.moref, moref)
        self.info("the run's snapshot was removed")

    # -- the replica VM -------------------------------------------------------------------------

    def _create_replica_vm(
        self, replica: Replica, ds: Datastore, disks: list[Disk], nics: list[vms.NewNic]
    ) -> Vm:
        ctx = self.ctx
        placement = ctx.job.destination.for_vm(self.vm.moref)
        inv = ctx.target_inventory
        with ctx.placement_lock:  # so "the host with the fewest VMs" sees each new replica
            if placement.target.kind == "cluster":
                host = vms.least_loaded_host(
                    ctx.target, placement.target.moref, replica.replica_name
                )
                cluster = inv.cluster(placement.target.moref)
                pool = (
                    placement.resource_pool.moref
                    if placement.resource_pool
                    else cluster.resource_pool
                )
            else:
                host = placement.target.moref
                h = inv.host(host)
                pool = placement.resource_pool.moref if placement.resource_pool else h.resource_pool
            dc = inv.datacenter(self._target_datacenter())
            folder = placement.folder.moref if placement.folder else dc.vm_folder
            spec = vms.NewVm(
                name=replica.replica_name,
                host=host,
                resource_pool=pool,
                folder=folder,
                datastore=ds.moref,
                cpus=self.vm.cpus,
                memory_mb=self.vm.memory_mb,
                guest_id=self.vm.guest_id or "otherGuest64",
                disks=tuple(vms.NewDisk(d.capacity, thin=not self._thick(d)) for d in disks),
                nics=tuple(nics),
            )
            created = vms.create_vm(ctx.target, spec)
        ctx.store.replicas.set_replica_vm(replica.id, created.moref, host, inv.host(host).name)
        where = f"host {inv.host(host).name}, datastore {ds.name}"
        self.info(f"replica VM {created.name!r} created on {where}")
        return created

    def _update_replica_disks(self, replica_vm: Vm, disks: list[Disk]) -> Vm:
        """Give the replica VM the disks the source gained, and grow those that grew."""
        ctx = self.ctx
        changed = False
        if len(replica_vm.disks) < len(disks):
            for d in disks[len(replica_vm.disks) :]:
                vms.add_disk(ctx.target, replica_vm.moref, d.capacity, thin=not self._thick(d))
                self.info(f"the source gained disk {_disk_name(d)}: added it to the replica VM")
                changed = True
        for mine, theirs in zip(replica_vm.disks, disks, strict=False):
            if theirs.capacity > mine.capacity:
                vms.resize_disk(ctx.target, replica_vm.moref, mine.key, theirs.capacity)
                self.info(
                    f"disk {_disk_name(theirs)} grew to {theirs.capacity / 2**30:.2f} GiB: "
                    "the replica's disk too (a new chain starts with a full copy)"
                )
                changed = True
        return read_vm(ctx.target, replica_vm.moref) if changed else replica_vm

    # -- the disks ---------------------------------------------------------------------------------

    def _chain_for(
        self, replica: Replica, ds: Datastore, d: Disk, last: RestorePoint | None
    ) -> tuple[DatastorePath, bool]:
        """The disk's chain folder, and whether it continues the last point's chain."""
        prev = last.disk(d.key) if last else None
        base = DatastorePath(ds.name, f"{replica.replica_name}/disk-{d.key}")
        if prev is None or prev.chain is None:
            return base, False
        prev_path = DatastorePath.parse(prev.chain)
        if prev.capacity_bytes == d.capacity and prev_path.datastore == ds.name:
            return prev_path, True
        generation = 2
        name = prev_path.name
        if "-r" in name:
            generation = int(name.rsplit("-r", 1)[1]) + 1
        return DatastorePath(ds.name, f"{replica.replica_name}/disk-{d.key}-r{generation}"), False

    def _metadata_dir(self, chain: DatastorePath) -> Path:
        job = self.ctx.job.name.replace("/", "_")
        return Path(self.ctx.repository.path) / job / self.vm.moref / chain.name

    def _changed_areas(
        self, d: Disk, snapshot: str, last: RestorePoint | None, continues: bool
    ) -> list[tuple[int, int]] | None:
        ctx = self.ctx
        if not continues or last is None or not ctx.job.settings.use_cbt:
            return None
        prev = last.disk(d.key)
        since = prev.change_id if prev else None
        if not since:
            return None
        try:
            areas = cbt.changed_areas(ctx.source, self.vm.moref, snapshot, d.key, since)
        except VSphereChangeTrackingError as e:
            self.warn(f"CBT cannot be used for disk {_disk_name(d)} ({e}): comparing digests")
            return None
        return list(areas.areas)

    def _replicate_disks(
        self,
        replica: Replica,
        replica_vm: Vm,
        ds: Datastore,
        disks: list[Disk],
        snapshot: str,
        snap_disks: dict[int, Disk],
        last: RestorePoint | None,
    ) -> list[DiskOutcome]:
        done: list[DiskOutcome] = []
        try:
            for d in disks:
                self.ctx.check_cancel()
                done.append(self._replicate_disk(replica, ds, d, snapshot, snap_disks, last))
        except BaseException:
            self._take_back(done)
            raise
        return done

    @contextmanager
    def _open_source(
        self, d: Disk, snapshot: str, full: bool
    ) -> Iterator[tuple[str, DiskImage | None]]:
        """The disk as the snapshot holds it, by the first transport mode that can read it:
        (a local path, None) in Direct storage access, (its datastore path, an open image) in
        Network mode."""
        ctx = self.ctx
        modes = ctx.job.transfer.transport_modes or TRANSPORT_ORDER
        source_ds = ctx.source_inventory.datastore(d.datastore)
        for mode in modes:
            if mode == TransportMode.DIRECT:
                path = local_path(source_ds, d.file_name)
                if path.exists():
                    self.info(f"{_disk_name(d)}: read by direct storage access")
                    yield str(path), None
                    return
                self.info(f"direct storage access: {source_ds.name} is not visible here")
            elif mode == TransportMode.HOTADD:
                self.info("virtual appliance (hot-add) mode: the backup server is not a VM")
            elif mode == TransportMode.NETWORK:
                known = None
                if full and ctx.job.settings.use_cbt:
                    # Only the allocated areas of a thin disk need reading on a first copy.
                    with suppress(VSphereError):
                        known = list(
                            cbt.changed_areas(ctx.source, self.vm.moref, snapshot, d.key).areas
                        )
                dc = ctx.source_inventory.datacenter(self.vm.datacenter).name
                with DatastoreHttp(ctx.source, dc, source_ds.name) as http:
                    image = HttpDiskImage(http, d.file_name, known_data=known)
                    try:
                        self.info(f"{_disk_name(d)}: read in network mode (datastore HTTP)")
                        yield d.file_name, image
                    finally:
                        image.close()
                return
        raise JobRunError(self.vm.name, f"no transport mode can read disk {d.file_name}")

    def _replicate_disk(
        self,
        replica: Replica,
        ds: Datastore,
        d: Disk,
        snapshot: str,
        snap_disks: dict[int, Disk],
        last: RestorePoint | None,
    ) -> DiskOutcome:
        ctx = self.ctx
        chain, continues = self._chain_for(replica, ds, d, last)
        areas = self._changed_areas(d, snapshot, last, continues)
        folder = local_path(ds, chain)
        metadata = self._metadata_dir(chain)
        settings = ctx.job.settings
        how = (
            "changed areas from CBT"
            if areas is not None
            else "digests"
            if continues
            else "full copy"
        )
        self.info(f"disk {_disk_name(d)} ({d.capacity / 2**30:.2f} GiB): {how}")

        def progress(phase: str, done: int, total: int) -> None:
            ctx.events(
                TaskProgress(ctx.session_id, self.task_id, self.vm.name, d.key, phase, done, total)
            )

        last_error: Exception | None = None
        for proxy in [*ctx.proxies.candidates(ds.name), None]:
            target = remote_spec(proxy) if proxy is not None else None
            if proxy is None and not folder.parent.parent.exists():
                break  # this machine does not see the target datastore either
            offsite = proxy is not None and proxy.site != ctx.repository.site
            request = ReplicationRequest(
                source="",
                replica=str(folder),
                metadata_dir=metadata,
                keep=MAX_POINTS,  # retention runs once every disk of the VM committed
                block_size=settings.block_size.bytes,
                changed_areas=areas,
                cbt_verify_sample=CBT_SAMPLE_BLOCKS if areas is not None else 0,
                target=target,
                compress=settings.compression.enabled(offsite),
            )
            try:
                with (
                    ctx.proxies.slot(proxy.name if proxy else "", ctx.cancel),
                    self._open_source(d, snapshot, not continues) as (source, image),
                ):
                    request = replace(request, source=source, image=image)
                    result = replicate_disk(request, cancel=ctx.cancel, progress=progress)
            except RemoteError as e:
                if "not a path inside this mover's root" in str(e) and proxy is not None:
                    ctx.proxies.refuse(proxy.name, ds.name)
                    self.info(f"proxy {proxy.name} does not see datastore {ds.name}; next proxy")
                    last_error = e
                    continue
                raise
            for w in result.warnings:
                self.warn(f"disk {_disk_name(d)}: {w}")
            self._add_stats(result)
            via = f"proxy {proxy.name}" if proxy else "the backup server"
            self.info(
                f"disk {_disk_name(d)}: restore point written by {via}: read "
                f"{result.stats.read_bytes / 2**20:.1f} MiB, transferred "
                f"{result.stats.transferred_bytes / 2**20:.1f} MiB"
            )
            change_id = snap_disks[d.key].change_id if d.key in snap_disks else ""
            if result.stats.cbt_misses:
                self.warn(
                    f"{_disk_name(d)}: {result.stats.cbt_misses} of {result.stats.sampled_blocks} "
                    "blocks CBT reported unchanged had changed (they were copied); the next run "
                    "compares every block's digest instead of trusting CBT"
                )
                change_id = ""
            return DiskOutcome(
                d, chain, result.point.point_id, change_id or None, result, target, str(folder)
            )
        raise JobRunError(
            self.vm.name,
            f"no proxy can write to datastore {ds.name}"
            + (f" (last refusal: {last_error})" if last_error else ""),
        )

    def _take_back(self, done: list[DiskOutcome]) -> None:
        """Undo the points this run committed: a restore point is whole or absent."""
        for o in done:
            try:
                maintain_replica(o.replica_path, o.target, {"op": "drop", "point": o.chain_point})
            except ReplicaDeskError as e:
                self.warn(f"could not take back disk {o.disk.key}'s new point: {e}")
                continue
            # Its metadata describes the point taken back: the next run rebuilds it.
            shutil.rmtree(self._metadata_dir(o.chain), ignore_errors=True)

    def _add_stats(self, r: ReplicationResult) -> None:
        s = self.stats
        for k, v in r.stats.busy.items():
            self._busy[k] = self._busy.get(k, 0.0) + v
        bottleneck = max(self._busy, key=lambda k: self._busy[k]) if self._busy else None
        self.stats = TransferStats(
            s.processed_bytes + r.stats.processed_bytes,
            s.read_bytes + r.stats.read_bytes,
            s.transferred_bytes + r.stats.transferred_bytes,
            s.duration + r.stats.duration,
            Bottleneck(bottleneck.capitalize()) if bottleneck else None,
        )
        self.ctx.store.sessions.update_task(self.task_id, self.stats)

    # -- the restore point -------------------------------------------------------------------------

    def _record_point(
        self, replica: Replica, replica_vm: Vm, outcomes: list[DiskOutcome]
    ) -> RestorePoint:
        ctx = self.ctx
        number = (ctx.store.replicas.latest_point(replica.id) or _NoPoint()).number + 1
        try:
            snap = snapshots.create_snapshot(
                ctx.target,
                replica_vm.moref,
                f"Restore point {number}",
                f"ReplicaDesk restore point of {self.vm.name!r} from {_now_text()}, job "
                f"{ctx.job.name!r}, session {ctx.session_id}",
            )
        except BaseException:
            self._take_back(outcomes)
            raise
        point = ctx.store.replicas.add_point(
            replica.id,
            [
                DiskPoint(o.disk.key, o.disk.capacity, o.change_id, str(o.chain), o.chain_point)
                for o in outcomes
            ],
            snapshot_moref=snap,
            session_id=ctx.session_id,
        )
        self.info(f"restore point {point.number} created")
        self._retention(replica, replica_vm, outcomes)
        return point

    def _retention(self, replica: Replica, replica_vm: Vm, outcomes: list[DiskOutcome]) -> None:
        ctx = self.ctx
        keep = ctx.job.settings.restore_points
        for o in outcomes:
            merged = maintain_replica(o.replica_path, o.target, {"op": "retain", "keep": keep})
            if merged.get("merged"):
                self.info(f"disk {o.disk.key}: merged the oldest point(s) into the base")
        points = ctx.store.replicas.points(replica.id)
        for old in points[: max(0, len(points) - keep)]:
            if old.snapshot_moref:
                try:
                    snapshots.remove_snapshot(ctx.target, replica_vm.moref, old.snapshot_moref)
                except VSphereError as e:
                    self.warn(
                        f"could not remove the replica snapshot of restore point {old.number}: {e}"
                    )
            ctx.store.replicas.remove_point(replica.id, old.number)
            self.info(f"restore point {old.number} removed (the job keeps {keep})")


class _NoPoint:
    number = 0
