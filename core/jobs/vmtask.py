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
   source's CPU, memory, disks and NICs on the mapped networks; or, when the job maps the VM to
   an existing DR VM (replica seeding, core.jobs.seed), that VM is checked in the pre-flight,
   each disk's chain is seeded from its disk at the target and only differing blocks are sent;
   the store adopts it as the replica with the first restore point. Later runs add disks the
   source gained and grow disks that grew.
4. Each disk is replicated by the block engine into its chain folder on the target datastore
   (`[ds] <replica>/disk-<key>`; a resized disk starts a new chain, `disk-<key>-r<n>`). The job's
   transport modes are tried in order (`core.jobs.transport`), each side on its own: the source
   disk is read by direct storage access, through the source proxy's VM (hot-add; disks a crashed
   run left attached to it are detached first) or over the source host's datastore HTTP; the
   chain is written by direct storage access (a target proxy's mover service, or this machine,
   sees the datastore) or in network mode (staged here, uploaded over the DR host's datastore
   HTTP); where a mode cannot do it the log says so and the run falls back. Changed areas come
   from CBT since the disk's change ID at our last point; without CBT, or when CBT fails, the
   engine compares block digests with the replica metadata in the job's repository. Retention
   is held back during the copy.
5. When every disk committed, the restore point is a snapshot on the replica VM and a row in the
   store naming each disk's chain point; retention then merges the oldest deltas and removes the
   oldest snapshots (deferred while a disk is written in network mode). If a disk fails, the
   points the other disks committed in this run are taken back, so a restore point is always
   whole across the VM's disks.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.engine import (
    ProgressFn,
    RemoteSpec,
    ReplicationRequest,
    ReplicationResult,
    maintain_replica,
    replicate_disk,
)
from core.errors import (
    CancelledError,
    JobRunError,
    LockHeldError,
    PreflightError,
    RemoteError,
    ReplicaDeskError,
    VSphereChangeTrackingError,
    VSphereError,
    VSphereQuiesceError,
)
from core.jobs import seed, transport
from core.jobs.context import RunContext, remote_spec
from core.jobs.events import TaskFinished, TaskProgress, TaskStarted
from core.jobs.httpdisk import HttpDiskImage
from core.jobs.sources import SourceVm
from core.model.destination import DiskType
from core.model.infra import TRANSPORT_ORDER, TransportMode
from core.model.job import QuiesceFailure
from core.model.replicas import DiskPoint, Replica, ReplicaState, RestorePoint
from core.model.runs import RunStatus, Severity, TransferStats, combine
from core.replica.chain import MAX_POINTS
from core.store.locks import vm_key
from core.vmdk.image import DiskImage
from core.vsphere import cbt, snapshots, vms
from core.vsphere.datastore import DatastorePath, local_path
from core.vsphere.inventory import read_vm
from core.vsphere.models import Datastore, Disk, Vm
from core.vsphere.transfer import DatastoreHttp

CBT_SAMPLE_BLOCKS = 4
"""Blocks CBT calls unchanged that every CBT run reads anyway and checks against the metadata:
4 per disk (16 read 656 MiB over the 41 disks of the jobs benchmark, more than the changes)."""

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
    network: transport.NetworkReplicaWrite | None = None  # written in network mode


@dataclass(frozen=True)
class _DiskJob:
    """One disk of this run, as every transport mode needs it."""

    disk: Disk
    chain: DatastorePath
    continues: bool  # the run adds a point to the last point's chain
    snapshot: str
    snap_disks: dict[int, Disk]
    request: ReplicationRequest  # without source, replica and target: the mode fills them
    seed: Disk | None = None  # the mapped VM's disk that seeds a new chain


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
        self._staged: list[transport.NetworkReplicaWrite] = []
        self._said: set[str] = set()
        self._mapped: seed.MappedVm | None = None
        self._seeds: list[tuple[str, RemoteSpec | None, int]] = []  # (chain, target, seed point)

    # -- reporting ---------------------------------------------------------------------------------

    def info(self, message: str) -> None:
        self.ctx.log(Severity.INFO, message, self.task_id, self.vm.name)

    def info_once(self, message: str) -> None:
        """Log a line once per VM task (how the target is written is the same for each disk)."""
        if message not in self._said:
            self._said.add(message)
            self.info(message)

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
                try:
                    point = self._run()
                finally:
                    for staged in self._staged:
                        staged.close()
            status = RunStatus.WARNING if self.warnings else RunStatus.SUCCESS
            outcome = TaskOutcome(status, self.stats, point, self.warnings)
        except LockHeldError as e:
            holder = e.args[1] if len(e.args) > 1 else "unknown"
            ctx.log(
                Severity.ERROR,
                f"not replicated: the VM is being processed by another run ({holder})",
                task.id,
                self.vm.name,
            )
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
        if replica.state not in (ReplicaState.READY, ReplicaState.NEEDS_RESYNC):
            # Failed over, failing back, re-IP failed (running) or permanent: hands off.
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
        mapped_to = job.seeding.replica_for(self.vm.moref)
        if replica_vm is None and last is None and mapped_to is not None:
            self._mapped = seed.mapped_vm(ctx, self.vm, disks, mapped_to)
        datastore = self._target_datastore()
        self._remove_stale_snapshots()
        self._detach_leftover_disks()
        self._enable_cbt()
        ctx.check_cancel()

        snapshot = self._take_snapshot()
        try:
            snap_disks = {d.key: d for d in snapshots.snapshot_disks(ctx.source, snapshot)}
            if self._mapped is not None:
                self._check_space(datastore, disks, snapshot, last)
                replica_vm = self._mapped.vm
                self.info(
                    f"replica mapping: {replica_vm.name!r} becomes the replica; its disks seed "
                    "the restore point chains at the target, only differing blocks are sent "
                    "(its NICs stay as they are)"
                )
            elif replica_vm is None:
                self._check_space(datastore, disks, snapshot, last)
                replica_vm = self._create_replica_vm(replica, datastore, disks, nics)
            else:
                replica_vm = self._update_replica_disks(replica_vm, disks)
            outcomes = self._replicate_disks(
                replica, replica_vm, datastore, disks, snapshot, snap_disks, last
            )
            return self._record_point(replica, replica_vm, outcomes)
        except BaseException:
            self._drop_seeds()
            raise
        finally:
            self._remove_own_snapshot(snapshot)

    # -- pre-flight ------------------------------------------------------------------------------

    def _map_networks(self) -> list[vms.NewNic]:
        """The replica's NICs: the source's, on the mapped DR networks (None: disconnected)."""
        ctx = self.ctx
        dc = self._target_datacenter()
        names = {n.name for n in ctx.target_inventory.networks if n.datacenter == dc}
        out: list[vms.NewNic] = []
        for i, nic in enumerate(self.vm.nics, 1):
            target = ctx.job.network.target_for(nic.network_name, names)
            if target is not None and target not in names:
                raise PreflightError(
                    self.vm.name,
                    f"the network mapping sends {nic.network_name!r} to {target!r}, which does "
                    f"not exist at the DR site (networks there: {', '.join(sorted(names))})",
                )
            if target is None:
                self.warn(
                    f"NIC {i} ({nic.adapter}, {nic.mac}) on {nic.network_name!r} has no network "
                    "at the DR site: the replica's NIC will be disconnected (add a network mapping)"
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

    def _modes(self) -> tuple[TransportMode, ...]:
        return self.ctx.job.transfer.transport_modes or TRANSPORT_ORDER

    def _detach_leftover_disks(self) -> None:
        """Disks that crashed runs left attached to the hot-add proxy's VM are detached first."""
        if TransportMode.HOTADD not in self._modes():
            return
        proxy, _ = transport.hotadd_proxy(self.ctx)
        if proxy is not None:
            transport.detach_leftovers(self.ctx, proxy, self.info, self.warn)

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
        quiesce = self._can_quiesce()
        try:
            moref = snapshots.create_snapshot(
                ctx.source, self.vm.moref, name, description, quiesce, vm_name=self.vm.name
            )
        except VSphereQuiesceError as e:
            # Only a guest that could not be quiesced falls under the job's policy: any other
            # snapshot failure (datastore full, a disk that cannot be snapshotted...) fails the
            # VM whatever the policy, as a crash-consistent snapshot would fail the same way.
            if not quiesce:
                raise
            self._quiesce_impossible(
                f"VMware Tools could not quiesce the guest ({e.reason})",
                "or find in the VM's event log why the guest could not be quiesced",
            )
            quiesce = False
            moref = snapshots.create_snapshot(
                ctx.source, self.vm.moref, name, description, vm_name=self.vm.name
            )
        ctx.store.run_snapshots.add(ctx.source_server.address, self.vm.moref, moref, ctx.session_id)
        how = "quiesced through VMware Tools" if quiesce else "crash-consistent"
        self.info(f"snapshot {name!r} taken ({how})")
        return moref

    def _can_quiesce(self) -> bool:
        """Guest processing: whether to ask VMware Tools to quiesce the guest for the snapshot.

        A powered-off VM's disks are consistent as they are: nothing to quiesce. A running VM
        without VMware Tools running cannot be quiesced: the job's failure policy decides."""
        if not self.ctx.job.settings.quiesce:
            return False
        if self.vm.power_state != "poweredOn":
            self.info("guest processing: the VM is powered off, its disks need no quiescing")
            return False
        if not self.vm.tools_running:
            self._quiesce_impossible(
                "VMware Tools are not running in the guest", "or start VMware Tools in the guest"
            )
            return False
        return True

    def _quiesce_impossible(self, why: str, remedy: str) -> None:
        """Fail the VM, or go on crash-consistent with a warning, as the job says."""
        if self.ctx.job.settings.quiesce_failure == QuiesceFailure.FAIL:
            raise JobRunError(
                self.vm.name,
                f"application-aware processing failed: {why}; no snapshot was kept (the job "
                "requires a quiesced snapshot: set its guest processing to continue "
                f"crash-consistent, {remedy})",
            )
        self.warn(
            f"application-aware processing failed: {why}; the snapshot is crash-consistent "
            "(the job continues without quiescing)"
        )

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
        self, d: Disk, snapshot: str, snap_disks: dict[int, Disk], full: bool
    ) -> Iterator[tuple[str, DiskImage | None]]:
        """The disk as the snapshot holds it, by the first transport mode that can read it:
        (a local path, None) in Direct storage access and hot-add, (its datastore path, an open
        image) in Network mode."""
        ctx = self.ctx
        modes = self._modes()
        source_ds = ctx.source_inventory.datastore(d.datastore)
        for mode in modes:
            if mode == TransportMode.DIRECT:
                path = local_path(source_ds, d.file_name)
                if path.exists():
                    self.info(f"{_disk_name(d)}: read by direct storage access")
                    yield str(path), None
                    return
                self.info(
                    f"direct storage access: {source_ds.name} is not visible here"
                    + transport.falls_back(modes, mode)
                )
            elif mode == TransportMode.HOTADD:
                proxy, why = transport.hotadd_proxy(ctx)
                if proxy is None:
                    self.info(
                        f"virtual appliance (hot-add) mode: {why}"
                        + transport.falls_back(modes, mode)
                    )
                    continue
                # The snapshot's disk: what the run reads (the VM itself writes to a delta).
                file_name = snap_disks[d.key].file_name if d.key in snap_disks else d.file_name
                reader = transport.HotAddSource(
                    ctx, proxy, self.vm.moref, source_ds, file_name, self.info, self.warn
                )
                try:
                    path = reader.open()
                except (transport.ModeUnavailable, VSphereError) as e:
                    self.info(
                        f"virtual appliance (hot-add) mode: {e}" + transport.falls_back(modes, mode)
                    )
                    continue
                try:
                    self.info(
                        f"{_disk_name(d)}: read in virtual appliance (hot-add) mode through "
                        f"proxy {proxy.name}"
                    )
                    yield str(path), None
                finally:
                    reader.close()
                return
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
        settings = ctx.job.settings
        how = (
            "changed areas from CBT"
            if areas is not None
            else "digests"
            if continues
            else "full copy"
        )
        self.info(f"disk {_disk_name(d)} ({d.capacity / 2**30:.2f} GiB): {how}")
        request = ReplicationRequest(
            source="",
            replica="",
            metadata_dir=self._metadata_dir(chain),
            keep=MAX_POINTS,  # retention runs once every disk of the VM committed
            block_size=settings.block_size.bytes,
            changed_areas=areas,
            cbt_verify_sample=CBT_SAMPLE_BLOCKS if areas is not None else 0,
        )
        mapped = self._mapped.disks.get(d.key) if self._mapped and not continues else None
        disk = _DiskJob(d, chain, continues, snapshot, snap_disks, request, mapped)
        modes = self._modes()
        for mode in modes:
            if mode == TransportMode.DIRECT:
                done = self._write_direct(ds, disk)
                if done is not None:
                    return done
                self.info_once(
                    f"direct storage access: no target proxy and not this server sees datastore "
                    f"{ds.name}" + transport.falls_back(modes, mode)
                )
            elif mode == TransportMode.HOTADD:
                self.info_once(
                    "virtual appliance (hot-add) mode cannot write the replica: its restore "
                    "points are files of a chain folder, not a disk a proxy VM could attach"
                    + transport.falls_back(modes, mode)
                )
            elif mode == TransportMode.NETWORK:
                return self._write_network(ds, disk)
        allowed = ", ".join(transport.MODE_NAMES[m] for m in modes)
        raise JobRunError(
            self.vm.name,
            f"no transport mode the job allows ({allowed}) can write to datastore {ds.name}",
        )

    def _progress(self, d: Disk) -> ProgressFn:
        ctx = self.ctx

        def progress(phase: str, done: int, total: int) -> None:
            ctx.events(
                TaskProgress(ctx.session_id, self.task_id, self.vm.name, d.key, phase, done, total)
            )

        return progress

    def _write_direct(self, ds: Datastore, job: _DiskJob) -> DiskOutcome | None:
        """Write through the first target proxy that sees `ds`, else here if this server does;
        None when neither can (direct storage access is impossible)."""
        ctx = self.ctx
        d = job.disk
        folder = local_path(ds, job.chain)
        settings = ctx.job.settings
        proxies = [
            p
            for p in ctx.proxies.candidates(ds.name)
            if TransportMode.DIRECT in ctx.job.transfer.modes_for(p)
        ]
        for proxy in [*proxies, None]:
            target = remote_spec(proxy) if proxy is not None else None
            if proxy is None and not folder.parent.parent.exists():
                return None  # this machine does not see the target datastore either
            offsite = proxy is not None and proxy.site != ctx.repository.site
            request = replace(
                job.request,
                replica=str(folder),
                target=target,
                compress=settings.compression.enabled(offsite),
            )
            try:
                with ctx.proxies.slot(proxy.name if proxy else "", ctx.cancel):
                    if job.seed is not None:
                        self._seed(job, str(folder), target, via=proxy.name if proxy else "")
                    with self._open_source(d, job.snapshot, job.snap_disks, not job.continues) as (
                        source,
                        image,
                    ):
                        request = replace(request, source=source, image=image)
                        result = replicate_disk(
                            request, cancel=ctx.cancel, progress=self._progress(d)
                        )
            except RemoteError as e:
                if "not a path inside this mover's root" in str(e) and proxy is not None:
                    ctx.proxies.refuse(proxy.name, ds.name)
                    self.info(f"proxy {proxy.name} does not see datastore {ds.name}; next proxy")
                    continue
                raise
            via = f"proxy {proxy.name}" if proxy else "the backup server"
            return self._disk_done(job, result, target, str(folder), via)
        return None

    def _write_network(self, ds: Datastore, job: _DiskJob) -> DiskOutcome:
        """Stage the new point here, then upload it over the DR host's datastore HTTP."""
        ctx = self.ctx
        d = job.disk
        if job.seed is not None:
            raise JobRunError(
                self.vm.name,
                f"disk {_disk_name(d)}: the mapped VM's disk {job.seed.file_name} can seed the "
                f"replica only where it is read at the target: give the job a target proxy that "
                f"sees datastore {ds.name}, or allow direct storage access (network mode would "
                "send the whole disk)",
            )
        staged = transport.NetworkReplicaWrite(
            ctx, self._target_datacenter(), ds, job.chain, self.info
        )
        self._staged.append(staged)
        folder = staged.prepare()
        seeded = staged.seed_metadata(job.request.metadata_dir)
        if seeded:
            self.warn(f"disk {_disk_name(d)}: replica metadata: {seeded}")
        request = replace(
            job.request,
            replica=str(folder),
            target=None,
            compress=ctx.job.settings.compression.enabled(False),
        )
        with (
            ctx.proxies.slot("", ctx.cancel),
            self._open_source(d, job.snapshot, job.snap_disks, not job.continues) as (
                source,
                image,
            ),
        ):
            request = replace(request, source=source, image=image)
            result = replicate_disk(request, cancel=ctx.cancel, progress=self._progress(d))
        sent = staged.upload(ctx.cancel)
        self.info(
            f"disk {_disk_name(d)}: restore point {result.point.point_id} uploaded to "
            f"{job.chain} in network mode (datastore HTTP, whole files): "
            f"{sent / 2**20:.1f} MiB sent, manifest last"
        )
        return self._disk_done(job, result, None, str(folder), "the backup server", staged)

    def _disk_done(
        self,
        job: _DiskJob,
        result: ReplicationResult,
        target: RemoteSpec | None,
        replica_path: str,
        via: str,
        network: transport.NetworkReplicaWrite | None = None,
    ) -> DiskOutcome:
        d = job.disk
        warnings = result.warnings
        if job.seed is not None and result.metadata_rebuilt:
            # No metadata for a seed, by design: the target read it to find the differences.
            warnings = warnings[1:]
            self.info(
                f"disk {_disk_name(d)}: digests of the mapped VM's disk computed at the target"
            )
        for w in warnings:
            self.warn(f"disk {_disk_name(d)}: {w}")
        self._add_stats(result)
        self.info(
            f"disk {_disk_name(d)}: restore point written by {via}: read "
            f"{result.stats.read_bytes / 2**20:.1f} MiB, transferred "
            f"{result.stats.transferred_bytes / 2**20:.1f} MiB"
        )
        change_id = job.snap_disks[d.key].change_id if d.key in job.snap_disks else ""
        if result.stats.cbt_misses:
            self.warn(
                f"{_disk_name(d)}: {result.stats.cbt_misses} of {result.stats.sampled_blocks} "
                "blocks CBT reported unchanged had changed (they were copied); the next run "
                "compares every block's digest instead of trusting CBT"
            )
            change_id = ""
        return DiskOutcome(
            d,
            job.chain,
            result.point.point_id,
            change_id or None,
            result,
            target,
            replica_path,
            network,
        )

    def _seed(self, job: _DiskJob, folder: str, target: RemoteSpec | None, via: str) -> None:
        """Make the mapped VM's disk the first point of the disk's new chain, at the target."""
        assert job.seed is not None
        ds = self.ctx.target_inventory.datastore(job.seed.datastore)
        disk_path = local_path(ds, job.seed.file_name)
        answer = maintain_replica(
            folder,
            target,
            {"op": "seed", "disk": str(disk_path), "block_size": job.request.block_size},
        )
        self._seeds.append((folder, target, int(answer["point"])))
        self.info(
            f"disk {_disk_name(job.disk)}: seeded from {job.seed.file_name} at the target by "
            f"{f'proxy {via}' if via else 'the backup server'} "
            f"({int(answer['written']) / 2**20:.1f} MiB of data copied there, none sent)"
        )

    def _drop_seeds(self) -> None:
        """A first run of a mapped VM that did not finish: its seeds go (the VM is untouched)."""
        for folder, target, point in self._seeds:
            try:
                maintain_replica(folder, target, {"op": "drop", "point": point})
            except ReplicaDeskError as e:
                self.warn(f"could not remove the seed in {folder}: {e} (the next run replaces it)")
        self._seeds.clear()

    def _take_back(self, done: list[DiskOutcome]) -> None:
        """Undo the points this run committed: a restore point is whole or absent."""
        for o in done:
            try:
                if o.network is not None:
                    o.network.take_back(o.chain_point)
                else:
                    maintain_replica(
                        o.replica_path, o.target, {"op": "drop", "point": o.chain_point}
                    )
            except ReplicaDeskError as e:
                self.warn(f"could not take back disk {o.disk.key}'s new point: {e}")
                continue
            # Its metadata describes the point taken back: the next run rebuilds it.
            shutil.rmtree(self._metadata_dir(o.chain), ignore_errors=True)

    def _add_stats(self, r: ReplicationResult) -> None:
        d = r.stats
        shares = {k: v / d.duration for k, v in d.busy.items()} if d.duration > 0 else {}
        disk = TransferStats(
            d.processed_bytes,
            d.read_bytes,
            d.transferred_bytes,
            d.duration,
            None,
            tuple(sorted((k, min(1.0, v)) for k, v in shares.items())),
        )
        self.stats = combine([self.stats, disk])
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
        if self._mapped is not None:
            adopted = self._mapped.vm
            host = ctx.target_inventory.host(adopted.host) if adopted.host else None
            ctx.store.replicas.adopt_vm(
                replica.id,
                adopted.moref,
                adopted.name,
                adopted.host or None,
                host.name if host else None,
            )
            self._seeds.clear()  # the seeds are the chains' first points now
            self.info(f"{adopted.name!r} ({adopted.moref}) is the replica from now on")
        point = ctx.store.replicas.add_point(
            replica.id,
            [
                DiskPoint(o.disk.key, o.disk.capacity, o.change_id, str(o.chain), o.chain_point)
                for o in outcomes
            ],
            snapshot_moref=snap,
            session_id=ctx.session_id,
            changed_bytes=sum(o.result.stats.changed_bytes for o in outcomes),
            transferred_bytes=self.stats.transferred_bytes,
        )
        self.info(f"restore point {point.number} created")
        # What re-IP at failover starts from when the production vCenter is gone.
        ctx.store.replicas.set_guest_addresses(replica.id, self.vm.addresses_per_nic())
        self._retention(replica, replica_vm, outcomes)
        return point

    def _retention(self, replica: Replica, replica_vm: Vm, outcomes: list[DiskOutcome]) -> None:
        ctx = self.ctx
        keep = ctx.job.settings.restore_points
        network = [o for o in outcomes if o.network is not None]
        if network:
            held = len(ctx.store.replicas.points(replica.id))
            if held > keep:
                self.warn(
                    f"retention deferred: disk(s) {', '.join(str(o.disk.key) for o in network)} "
                    "were written in network mode, where merging the oldest restore point means "
                    "downloading and uploading the whole base disk; the replica keeps "
                    f"{held} restore points (the job keeps {keep}) until a run with direct "
                    "storage access to the target datastore merges them"
                )
            return
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
