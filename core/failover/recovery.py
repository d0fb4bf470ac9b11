"""Recovery of a replica operation that a crash interrupted, done at the next operation on it.

Every operation writes its record (core.failover.records) before it changes anything and moves
it through its phases as it goes; a record left before `DONE` is what a crashed process leaves
(killed, the machine lost power). Each operation of core.failover calls `recover` first: under
the replica's locks (a live operation of another process holds them, so it is never taken for a
crashed one), it looks at the records and, in a session of its own saying so, puts the replica
in a state the state machine knows:

- failover `STARTED` (reverting, attaching disks): rolled back. The saved descriptors go back
  (core.failover.running.restore_saved), the snapshot current before is made current again, the
  record goes: the replica is Ready as before.
- failover `PREPARED` (everything in place, power-on or the re-IP check not reached): finished.
  State Failover, the VM powered on, the re-IP checked: rolling back would throw away what the
  guest may already have written.
- test failover `STARTED`: cleaned up (the test VM, found by its name when it was not recorded
  yet, and the test's own network).
- failback `STARTED` (copying): rolled back to the failover (`roll_back_failback`, which a
  cancelled failback uses too). The target is left off (a VM the failback made is deleted), the
  replica powered on again; the original VM's disks hold part of the replica's data, which the
  next failback completes (only what still differs travels).
- failback `PREPARED` (copied, the target not yet on): finished, state Failback, target on.

The interrupted operation's session, left running by the dead process, is marked failed
(core.store.sessions.fail_orphans).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from core.errors import FailbackError, ReplicaDeskError, VSphereError
from core.failover import records, running
from core.failover.records import FailbackRecord, FailoverRecord, TestRecord
from core.failover.session import FAILED_OVER, Operation, locks
from core.failover.site import DrSite
from core.jobs import servers
from core.model.replicas import Replica, ReplicaState
from core.model.runs import RunTrigger
from core.store.store import Store
from core.vsphere import power, snapshots, vms
from core.vsphere.connection import VSphereClient
from core.vsphere.models import Vm

log = logging.getLogger(__name__)

REIP_CHECK_TIMEOUT = 60.0
"""Seconds to wait for the guest's addresses when a finished failover's re-IP is checked."""


def _pending(where: Path) -> bool:
    for name, cls in (
        (records.FAILOVER, FailoverRecord),
        (records.TEST, TestRecord),
        (records.FAILBACK, FailbackRecord),
    ):
        record = records.load(where, name, cls)
        if record is not None and record.phase != records.DONE:  # type: ignore[attr-defined]
            return True
    return False


def recover(store: Store, replica_id: int) -> Replica:
    """Finish or roll back what a crashed operation left on the replica; the replica as it is
    then. Nothing to do (the usual case) costs one look at the record folder."""
    replica = store.replicas.get(replica_id)
    if replica.replica_moref is None or replica.state == ReplicaState.PERMANENT_FAILOVER:
        return replica
    try:
        site = DrSite.connect(store, replica)
    except ReplicaDeskError:
        return replica  # the operation itself says the DR site cannot be reached
    with site:
        try:
            vm = site.replica_vm()
            where = records.folder(site.local(site.vm_folder(vm)))
        except ReplicaDeskError:
            return replica
        if not _pending(where):
            return replica
        with store.locks.hold(locks(replica), f"recovery of {replica.replica_name}"):
            store.sessions.fail_orphans()
            fo = records.load(where, records.FAILOVER, FailoverRecord)
            if fo is not None and fo.phase != records.DONE:
                _failover(store, site, vm, where, fo)
            test = records.load(where, records.TEST, TestRecord)
            if test is not None and test.phase != records.DONE:
                _test(store, site, where, test)
            fb = records.load(where, records.FAILBACK, FailbackRecord)
            if fb is not None and fb.phase != records.DONE:
                _failback(store, site, site.replica_vm(), where, fb)
    return store.replicas.get(replica_id)


def _say(op: Operation, message: str) -> None:
    log.warning("%s: %s", op.replica.replica_name, message)
    op.warn(message)


def _failover(store: Store, site: DrSite, vm: Vm, where: Path, record: FailoverRecord) -> None:
    replica = site.replica
    title = "Recovery of an interrupted failover"
    with Operation(store, replica, RunTrigger.FAILOVER, title) as op:
        if record.phase == records.STARTED:
            if vm.power_state != "poweredOff":
                power.power_off(site.client, vm.moref)
            put_back = running.restore_saved(site, vm, where)
            if record.previous_snapshot and vm.current_snapshot != record.previous_snapshot:
                snapshots.revert_to_snapshot(site.client, vm.moref, record.previous_snapshot)
            records.remove(where, records.FAILOVER)
            records.remove_folder_if_empty(where)
            if store.replicas.get(replica.id).state in FAILED_OVER:
                store.replicas.set_state(replica.id, ReplicaState.READY)
            _say(
                op,
                f"the failover of session {record.session_id} was interrupted before it was "
                f"complete: rolled back ({len(put_back)} disk(s) put back, the snapshot current "
                "before made current again); the replica is Ready as before",
            )
            return
        reip = record.reip
        if vm.power_state != "poweredOn":
            power.power_on(site.client, vm.moref)
            op.info("the replica VM is powered on")
        if reip == "applied" and record.reip_expected:
            try:
                power.wait_for_guest_ips(
                    site.client, vm.moref, record.reip_expected, REIP_CHECK_TIMEOUT
                )
                op.info(f"re-IP verified: the guest reports {', '.join(record.reip_expected)}")
            except VSphereError as e:
                reip = str(e)
        failed = reip not in ("applied", "no rules")
        state = ReplicaState.REIP_FAILED if failed else ReplicaState.FAILOVER
        store.replicas.set_state(replica.id, state)
        records.save(where, records.FAILOVER, replace(record, reip=reip, phase=records.DONE))
        _say(
            op,
            f"the failover of session {record.session_id} was interrupted after everything was "
            f"in place: finished (the replica VM runs restore point {record.point}, state "
            f"{state})",
        )
        if failed:
            op.warn(f"Re-IP failed: {reip}")


def _test(store: Store, site: DrSite, where: Path, record: TestRecord) -> None:
    from core.failover.drill import clean_test

    title = "Recovery of an interrupted test failover"
    with Operation(store, site.replica, RunTrigger.TEST_CLEANUP, title) as op:
        clean_test(site, where, record, op)
        _say(
            op,
            f"the test failover of session {record.session_id} was interrupted: what it had "
            "made was removed",
        )


def roll_back_failback(
    prod: VSphereClient, site: DrSite, vm: Vm, where: Path, record: FailbackRecord
) -> str:
    """Back to the failover from a failback that did not finish its copy: the target off (a VM
    the failback made deleted), the replica VM (`vm` as read now) on, the failback record gone.
    The state stays Failover (a failback sets Failback only after its copy). What became of
    the target, for the log."""
    target = record.target_vm
    if target:
        power.power_off(prod, target)
    if record.new_vm and target:
        vms.destroy_vm(prod, target)
        fate = f"the VM it had made, {record.target_vm_name!r}, was deleted"
    else:
        fate = (
            f"{record.target_vm_name!r} stays powered off with its disks partly brought "
            "in line with the replica: fail back again to complete them (only what "
            "still differs is sent)"
        )
    if vm.power_state != "poweredOn":
        power.power_on(site.client, vm.moref)
    records.remove(where, records.FAILBACK)
    return fate


def _failback(store: Store, site: DrSite, vm: Vm, where: Path, record: FailbackRecord) -> None:
    replica = site.replica
    title = "Recovery of an interrupted failback"
    with Operation(store, replica, RunTrigger.FAILBACK, title) as op:
        try:
            prod = servers.connect_stored(store, record.target_server, keepalive=False)
        except VSphereError as e:
            raise FailbackError(
                replica.replica_name,
                f"the failback of session {record.session_id} was interrupted and production "
                f"({record.target_server}) cannot be reached to finish or undo it: {e}",
            ) from e
        with prod:
            if record.phase == records.PREPARED:
                store.replicas.set_state(replica.id, ReplicaState.FAILBACK)
                power.power_on(prod, record.target_vm)
                records.save(where, records.FAILBACK, replace(record, phase=records.DONE))
                _say(
                    op,
                    f"the failback of session {record.session_id} was interrupted after its "
                    f"copy: finished ({record.target_vm_name!r} powered on; commit or undo it)",
                )
                return
            fate = roll_back_failback(prod, site, vm, where, record)
        _say(
            op,
            f"the failback of session {record.session_id} was interrupted while copying: "
            f"rolled back to the failover (the replica runs again); {fate}",
        )
