"""Failover now, planned failover, undo failover and permanent failover of one replica.

What the console and `replicadesk replica ...` call. Each runs as a session of the replica's
job (core.failover.session), holds the store's locks of the source VM and of the replica (so no
replication run and no other operation touches them meanwhile), and enforces the replica's
state machine: Ready -> Failover (or Re-IP failed) -> Ready (undo) or Permanent failover, or
Failback (core.failover.failback).

Failover: the replica VM (off, unchanged since our last point) is reverted to the point's
snapshot; its disks become children of the point's files (core.failover.running); the job's
network mapping is applied again (a missing DR network stops it here, with everything put
back); the re-IP customization is stored; the record is written and the state set; then the VM
is powered on and the guest's new addresses are checked (a mismatch: Re-IP failed, the failover
stands). Only the DR server is needed: the production vCenter is asked for the source VM's NICs
and addresses when it answers, and done without otherwise.
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace

from core.errors import FailoverError, ReplicaDeskError, VSphereError
from core.failover import networks, records, recovery, reip, running
from core.failover.records import FailoverRecord
from core.failover.session import (
    FAILED_OVER,
    Operation,
    OperationResult,
    PoweredOn,
    Started,
    check_cancel,
    locks,
    require_state,
)
from core.failover.site import DrSite
from core.jobs import servers
from core.jobs.runner import run_job
from core.model.job import ReplicationJob
from core.model.objects import ObjectKind, ObjectRef
from core.model.replicas import Replica, ReplicaState, RestorePoint
from core.model.runs import RunStatus, RunTrigger
from core.replica import maintenance
from core.store.store import Store
from core.vsphere import power, snapshots
from core.vsphere.inventory import read_vm
from core.vsphere.models import Vm

REIP_TIMEOUT = 300.0
SHUTDOWN_TIMEOUT = 300.0


def choose_point(store: Store, replica: Replica, number: int | None) -> RestorePoint:
    points = store.replicas.points(replica.id)
    if not points:
        raise FailoverError(replica.replica_name, "it has no restore point yet")
    if number is None:
        return points[-1]
    for p in points:
        if p.number == number:
            return p
    have = ", ".join(str(p.number) for p in points)
    raise FailoverError(replica.replica_name, f"it has no restore point {number} (it has {have})")


def source_view(store: Store, replica: Replica, op: Operation) -> Vm | None:
    """The source VM as its vCenter sees it now; None (logged) when it cannot be reached."""
    try:
        with servers.connect_stored(store, replica.source_server, keepalive=False) as client:
            return read_vm(client, replica.vm_moref)
    except ReplicaDeskError as e:
        op.info(
            f"the source vCenter {replica.source_server} was not reached ({e}); going on "
            "with what the DR site knows"
        )
        return None


def failover(
    store: Store,
    replica_id: int,
    point: int | None = None,
    *,
    reip_timeout: float = REIP_TIMEOUT,
    on_powered_on: PoweredOn | None = None,
    cancel: threading.Event | None = None,
    on_started: Started | None = None,
) -> OperationResult:
    """Failover now to restore point `point` (default the latest). `on_powered_on` is called
    once the replica VM is powered on, before its re-IP is verified. `cancel` is looked at
    until the replica starts to change (a failover takes seconds from there, and undo failover
    takes it back): cancelled, nothing was changed and the replica is Ready
    (OperationCancelledError)."""
    replica = recovery.recover(store, replica_id)
    require_state(replica, {ReplicaState.READY}, "fail over")
    check_cancel(cancel, replica, _NOTHING_CHANGED)
    with Operation(store, replica, RunTrigger.FAILOVER, "Failover", on_started) as op:
        with store.locks.hold(locks(replica), f"failover of {replica.replica_name}"):
            _failover(
                store,
                op,
                replica,
                point,
                reip_timeout,
                source_view(store, replica, op),
                on_powered_on=on_powered_on,
                cancel=cancel,
            )
        return op.result(vm=replica.replica_moref or "")


_NOTHING_CHANGED = "before the failover changed anything: the replica is Ready as it was"


def _failover(
    store: Store,
    op: Operation,
    replica: Replica,
    number: int | None,
    reip_timeout: float,
    source: Vm | None,
    planned: bool = False,
    on_powered_on: PoweredOn | None = None,
    cancel: threading.Event | None = None,
) -> None:
    """`source`: the source VM as last read from its vCenter (None: unreachable). `cancel` is
    looked at last before the record is written: from there on the failover is finished."""
    job = store.jobs.get(replica.job)
    point = choose_point(store, replica, number)
    op.info(f"restore point {point.number} of {point.created:%Y-%m-%d %H:%M:%S} UTC")
    with DrSite.connect(store, replica) as site:
        vm = site.replica_vm()
        if vm.power_state != "poweredOff":
            raise FailoverError(
                replica.replica_name,
                f"the replica VM is {vm.power_state}: it was started outside ReplicaDesk",
            )
        nic_plan = networks.plan(site.client, job, vm, source)
        reip_plan = reip.plan(job.reip, vm, source, known=replica.guest_addresses)
        where = records.folder(site.local(site.vm_folder(vm)))
        if records.load(where, records.FAILOVER, FailoverRecord) is not None:
            raise FailoverError(
                replica.replica_name, f"a failover record is already there ({where})"
            )
        pairs = running.pair_disks(vm, point, replica.replica_name)
        previous = vm.current_snapshot
        check_cancel(cancel, replica, _NOTHING_CHANGED)
        # Written before anything changes: a crash from here on leaves this record, which the
        # next operation on the replica rolls back (core.failover.recovery).
        record = FailoverRecord(
            replica.id,
            point.number,
            point.snapshot_moref or "",
            previous,
            (),
            planned,
            "",
            records.STARTED,
            op.session_id,
            reip_plan.expected if reip_plan is not None else (),
            source.instance_uuid if source is not None else "",
        )
        records.save(where, records.FAILOVER, record)
        reverted = False
        disks: tuple[records.RunningDisk, ...] = ()
        try:
            if point.snapshot_moref and point.snapshot_moref != previous:
                snapshots.revert_to_snapshot(site.client, vm.moref, point.snapshot_moref)
                reverted = True
                op.info(f"the replica VM was reverted to the snapshot of point {point.number}")
            disks = running.attach(site, pairs, point.number, where)
            op.info(
                f"{len(disks)} disk(s) now run on restore point {point.number}; what the VM "
                "writes is kept apart from the restore points"
            )
            for line in networks.apply(site.client, vm.moref, nic_plan):
                op.info(line)
            for nic in nic_plan:
                if nic.note:
                    op.warn(nic.note)
            reip_failure = ""
            if reip_plan is not None:
                reip_failure = "; ".join(reip_plan.problems) or reip.apply(
                    site.client, vm.moref, reip_plan
                )
                for line in reip_plan.changes:
                    op.info(f"re-IP {line}")
            record = replace(
                record,
                disks=disks,
                reip=reip_failure or ("applied" if reip_plan else "no rules"),
                phase=records.PREPARED,
            )
            records.save(where, records.FAILOVER, record)
            store.replicas.set_state(replica.id, ReplicaState.FAILOVER)
        except BaseException:
            running.detach(site, disks, where)
            records.remove(where, records.FAILOVER)
            records.remove_folder_if_empty(where)
            if reverted and previous:
                snapshots.revert_to_snapshot(site.client, vm.moref, previous)
            op.info("nothing was changed: the replica is as it was")
            raise
        power.power_on(site.client, vm.moref)
        op.info("the replica VM is powered on")
        if on_powered_on is not None:
            on_powered_on(replica, vm.moref)
        if reip_plan is not None and not reip_failure:
            reip_failure = reip.verify(site.client, vm.moref, reip_plan, reip_timeout)
            if not reip_failure and reip_plan.expected:
                op.info(f"re-IP verified: the guest reports {', '.join(reip_plan.expected)}")
                op.reip = "verified"
        if reip_failure:
            op.reip = f"failed: {reip_failure}"
            store.replicas.set_state(replica.id, ReplicaState.REIP_FAILED)
            op.warn(f"Re-IP failed: {reip_failure}")
            record = replace(record, reip=reip_failure)
        records.save(where, records.FAILOVER, replace(record, phase=records.DONE))
        op.info(f"failover to restore point {point.number} done")


def _load_failover(site: DrSite, vm: Vm) -> tuple[os.PathLike[str], FailoverRecord]:
    where = records.folder(site.local(site.vm_folder(vm)))
    record = records.load(where, records.FAILOVER, FailoverRecord)
    if record is None:
        raise FailoverError(
            site.replica.replica_name,
            f"no failover record is there ({where}): it is not failed over",
        )
    return where, record


def undo_failover(
    store: Store, replica_id: int, *, on_started: Started | None = None
) -> OperationResult:
    """Power the replica off, discard what changed since the failover, back to Ready."""
    replica = recovery.recover(store, replica_id)
    require_state(replica, FAILED_OVER, "undo a failover")
    title = "Undo failover"
    with Operation(store, replica, RunTrigger.UNDO_FAILOVER, title, on_started) as op:
        with store.locks.hold(locks(replica), f"undo failover of {replica.replica_name}"):
            with DrSite.connect(store, replica) as site:
                vm = site.replica_vm()
                where, record = _load_failover(site, vm)
                restore_replica(site, vm, where, record, op)
            store.replicas.set_state(replica.id, ReplicaState.READY)
            op.info("the replica is Ready: replication resumes from its latest restore point")
        return op.result()


def restore_replica(
    site: DrSite, vm: Vm, where: os.PathLike[str], record: FailoverRecord, op: Operation
) -> None:
    """Off, disks back to their descriptors, the snapshot current before the failover."""
    from pathlib import Path

    power.power_off(site.client, vm.moref)
    op.info("the replica VM is powered off")
    running.detach(site, record.disks, Path(where))
    op.info("what ran on the replica since the failover was discarded")
    if record.previous_snapshot:
        snapshots.revert_to_snapshot(site.client, vm.moref, record.previous_snapshot)
    records.remove(Path(where), records.FAILOVER)
    records.remove_folder_if_empty(Path(where))


def permanent_failover(
    store: Store, replica_id: int, *, on_started: Started | None = None
) -> OperationResult:
    """The failed-over replica becomes production: points removed, source VM out of the job."""
    from pathlib import Path

    replica = recovery.recover(store, replica_id)
    require_state(replica, FAILED_OVER, "make a failover permanent")
    title = "Permanent failover"
    with Operation(store, replica, RunTrigger.PERMANENT_FAILOVER, title, on_started) as op:
        with store.locks.hold(locks(replica), f"permanent failover of {replica.replica_name}"):
            with DrSite.connect(store, replica) as site:
                vm = site.replica_vm()
                where, record = _load_failover(site, vm)
                keep = _protect(site, record)
                try:
                    for p in store.replicas.points(replica.id):
                        if p.snapshot_moref:
                            try:
                                snapshots.remove_snapshot(site.client, vm.moref, p.snapshot_moref)
                            except VSphereError as e:
                                op.warn(f"the snapshot of restore point {p.number}: {e}")
                        store.replicas.remove_point(replica.id, p.number)
                finally:
                    _restore_protected(site, record, keep, op)
                op.info("the replica's restore points and their snapshots were removed")
                _drop_newer_points(site, record, op)
                for d in record.disks:
                    if d.saved:
                        (Path(where) / d.saved).unlink(missing_ok=True)
                records.remove(Path(where), records.FAILOVER)
                records.remove_folder_if_empty(Path(where))
            _exclude_from_job(store, replica, op)
            store.replicas.set_state(replica.id, ReplicaState.PERMANENT_FAILOVER)
            op.info(f"{replica.replica_name!r} is production now")
        return op.result()


def _protect(site: DrSite, record: FailoverRecord) -> dict[str, str]:
    """Hard links of the running disks, kept while snapshots are removed: the lab's simulator
    may delete a file of the VM's list when it removes a snapshot (LAB.md); vSphere never
    deletes a running disk."""
    keep = {}
    for d in record.disks:
        path = site.local(d.file_name)
        link = path.with_name(f".{path.name}.replicadesk-keep")
        link.unlink(missing_ok=True)
        os.link(path, link)
        keep[d.file_name] = str(link)
    return keep


def _restore_protected(
    site: DrSite, record: FailoverRecord, keep: dict[str, str], op: Operation
) -> None:
    from pathlib import Path

    for d in record.disks:
        path = site.local(d.file_name)
        link = Path(keep[d.file_name])
        if not path.exists():
            os.link(link, path)
            op.warn(f"{d.file_name} had been removed with a snapshot: put back")
        link.unlink(missing_ok=True)


def _drop_newer_points(site: DrSite, record: FailoverRecord, op: Operation) -> None:
    """Chain points newer than the running one are nobody's parent: their files go."""
    from core.replica.chain import ReplicaChain

    for d in record.disks:
        folder = site.local(d.chain)
        with ReplicaChain.open_existing(folder) as chain:
            newer = [p.id for p in chain.points if p.id > d.chain_point]
        for pid in reversed(newer):
            maintenance.drop(folder, pid)
        kept = d.chain_point
        op.info(
            f"disk {d.disk_key}: its chain up to point {kept} stays as the running disk's parent "
            "(consolidate it in vSphere when convenient)"
        )


def _exclude_from_job(store: Store, replica: Replica, op: Operation) -> None:
    try:
        job = store.jobs.get(replica.job)
    except ReplicaDeskError:
        op.info(f"job {replica.job!r} no longer exists: nothing to exclude")
        return
    store.jobs.update(exclude_vm(job, replica.vm_moref, replica.vm_name))
    op.info(f"{replica.vm_name!r} is excluded from job {job.name!r}")


def exclude_vm(job: ReplicationJob, moref: str, name: str) -> ReplicationJob:
    """The job without this VM: dropped from its objects when named there, else excluded; a job
    left with nothing to replicate is disabled."""
    src = job.source
    if src.is_excluded(moref):
        return job
    explicit = [o for o in src.objects if o.kind == ObjectKind.VM and o.moref == moref]
    if explicit:
        rest = tuple(o for o in src.objects if o.moref != moref)
        if not rest:
            return replace(job, schedule=replace(job.schedule, enabled=False))
        return replace(job, source=replace(src, objects=rest))
    ref = ObjectRef(ObjectKind.VM, moref, name)
    return replace(job, source=replace(src, exclude_vms=(*src.exclude_vms, ref)))


def planned_failover(
    store: Store,
    replica_id: int,
    *,
    shutdown_timeout: float = SHUTDOWN_TIMEOUT,
    reip_timeout: float = REIP_TIMEOUT,
    on_powered_on: PoweredOn | None = None,
    cancel: threading.Event | None = None,
    on_started: Started | None = None,
) -> OperationResult:
    """Incremental run, source guest shutdown (power off after the timeout), final run,
    failover to that last point: nothing written before the shutdown is lost.

    `cancel` is passed to both runs and looked at before and after each step until the
    failover to the final point begins (from there it is finished, in seconds; undo failover
    takes it back). Cancelled, the source VM stays production: it runs on, or is powered on
    again when it had been shut down; the replica stays Ready, keeping the restore points the
    runs completed; OperationCancelledError says where it stopped."""
    replica = recovery.recover(store, replica_id)
    require_state(replica, {ReplicaState.READY}, "start a planned failover")
    title = "Planned failover"
    with Operation(store, replica, RunTrigger.PLANNED_FAILOVER, title, on_started) as op:
        running_on = "the source VM was not stopped and stays production; the replica stays Ready"
        check_cancel(cancel, replica, f"before the first incremental run: {running_on}")
        _replicate(store, replica, op, "incremental run while the source runs", cancel, running_on)
        source = source_view(store, replica, op)  # its addresses, while its guest still runs
        with servers.connect_stored(store, replica.source_server, keepalive=False) as src:
            shut = power.shutdown_guest(src, replica.vm_moref, timeout=shutdown_timeout)
        if shut.graceful:
            op.info(f"the source VM's guest shut down in {shut.seconds:.0f} s")
        else:
            op.warn(f"the source VM was powered off: {shut.reason}")
        on_again = (
            "the source VM was powered on again and stays production; the replica stays Ready"
        )
        try:
            check_cancel(cancel, replica, f"after the source VM was shut down: {on_again}")
            _replicate(
                store, replica, op, "final incremental run of the stopped source", cancel, on_again
            )
        except BaseException:
            with servers.connect_stored(store, replica.source_server, keepalive=False) as src:
                power.power_on(src, replica.vm_moref)
            op.info("the source VM was powered on again: it stays production")
            raise
        with store.locks.hold(locks(replica), f"planned failover of {replica.replica_name}"):
            current = store.replicas.get(replica.id)
            _failover(
                store,
                op,
                current,
                None,
                reip_timeout,
                source,
                planned=True,
                on_powered_on=on_powered_on,
            )
        return op.result(vm=replica.replica_moref or "")


def _replicate(
    store: Store,
    replica: Replica,
    op: Operation,
    what: str,
    cancel: threading.Event | None,
    cancelled: str,
) -> None:
    """One incremental run of the replica's VM; OperationCancelledError (`cancelled`: what
    that leaves) when cancel was asked during or right after it."""
    session = run_job(
        store,
        replica.job,
        trigger=RunTrigger.PLANNED_FAILOVER,
        only_vms=[replica.vm_moref],
        cancel=cancel,
    )
    tasks = [t for t in store.sessions.tasks(session.id) if t.vm_moref == replica.vm_moref]
    failed = session.status == RunStatus.FAILED or not tasks or tasks[0].status == RunStatus.FAILED
    op.info(f"{what}: session {session.id}, {session.status}")
    when = "during" if failed else "after"
    check_cancel(cancel, replica, f"{when} the {what} (session {session.id}): {cancelled}")
    if failed:
        raise FailoverError(
            replica.replica_name,
            f"the {what} failed (session {session.id}): the planned failover stops here",
        )
