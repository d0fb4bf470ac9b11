"""The replica operations as the console offers them: which ones a replica's state allows, what
each will do (the confirmation's words), and the call into core.failover that performs one.

No Qt here: the Replicas view's actions ask `availability` whether to be enabled (and why not,
for the status tip), the confirmation dialog shows `describe`, and the operation's worker runs
`perform` on its thread. The states follow core.failover's state machine (Ready -> Failover or
Re-IP failed -> Ready by undo, Permanent failover, or Failback -> Ready by commit or back to
Failover by undo); core checks them again, so a row that changed since it was read is refused
there in words.

`OpSpec.cancel` says, in core's promise, what a Cancel of the operation leaves (core.failover:
failover now stops only before it changes anything, a planned failover leaves the source VM
production, a failback is rolled back to the failover); an operation without it cannot be
stopped half way, and its window says so instead of offering a Cancel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from core.failover import drill, failback, operations
from core.failover.failback import NewLocation, Restored
from core.failover.session import FAILED_OVER, OperationResult, Started
from core.model.job import ReplicationJob
from core.model.replicas import Replica, ReplicaState, RestorePoint
from core.model.runs import RunTrigger
from core.store.store import Store
from gui import format as fmt
from gui.snapshot import ReplicaRow


class Op(StrEnum):
    FAILOVER = "Failover Now"
    PLANNED_FAILOVER = "Planned Failover"
    UNDO_FAILOVER = "Undo Failover"
    PERMANENT_FAILOVER = "Permanent Failover"
    FAILBACK = "Failback"
    COMMIT_FAILBACK = "Commit Failback"
    UNDO_FAILBACK = "Undo Failback"
    TEST_FAILOVER = "Test Failover"
    TEST_CLEANUP = "Test Cleanup"


@dataclass(frozen=True)
class OpSpec:
    verb: str  # the confirmation button
    states: frozenset[ReplicaState]
    trigger: RunTrigger  # the trigger of the operation's session (core.failover.session)
    needs_point: bool = False  # the dialog offers a restore-point picker
    needs_points: bool = False  # refused without any restore point
    destructive: bool = False  # cannot be undone: the dialog says so and defaults to Cancel
    tip: str = ""
    cancel: str = ""  # what a Cancel leaves (core's promise); "": it cannot be cancelled


READY = frozenset({ReplicaState.READY})
FAILBACK_STATES = frozenset({ReplicaState.FAILBACK})
TESTABLE = frozenset({ReplicaState.READY, *FAILED_OVER})

SPECS: dict[Op, OpSpec] = {
    Op.FAILOVER: OpSpec(
        "Fail Over",
        READY,
        RunTrigger.FAILOVER,
        needs_point=True,
        needs_points=True,
        tip="Revert the replica to a restore point and power it on; the source is not touched",
        cancel="Cancel stops the failover only before the replica starts to change: it then "
        "stays Ready as it was. Once the replica is reverted the failover completes in seconds "
        "(undo it afterwards).",
    ),
    Op.PLANNED_FAILOVER: OpSpec(
        "Start Planned Failover",
        READY,
        RunTrigger.PLANNED_FAILOVER,
        needs_points=True,
        tip="Replicate, shut the source down, replicate its last changes, fail over: no data lost",
        cancel="Cancel stops it before the failover itself: the source VM stays production "
        "(powered on again if it was shut down) and the replica stays Ready, with the restore "
        "points its runs completed.",
    ),
    Op.UNDO_FAILOVER: OpSpec(
        "Undo Failover",
        FAILED_OVER,
        RunTrigger.UNDO_FAILOVER,
        tip="Power the replica off and discard what changed since the failover: back to Ready",
    ),
    Op.PERMANENT_FAILOVER: OpSpec(
        "Make Permanent",
        FAILED_OVER,
        RunTrigger.PERMANENT_FAILOVER,
        destructive=True,
        tip="The replica becomes production: its restore points go, the source leaves the job",
    ),
    Op.FAILBACK: OpSpec(
        "Fail Back",
        FAILED_OVER,
        RunTrigger.FAILBACK,
        tip="Send the replica's changes back to production (only differing blocks)",
        cancel="Cancel rolls the failback back to the failover: the replica runs again (state "
        "Failover), the target is left off (a VM the failback made is deleted); the next "
        "failback sends only what still differs.",
    ),
    Op.COMMIT_FAILBACK: OpSpec(
        "Commit Failback",
        FAILBACK_STATES,
        RunTrigger.COMMIT_FAILBACK,
        tip="Production runs again: the replica goes back to its restore points, Ready",
    ),
    Op.UNDO_FAILBACK: OpSpec(
        "Undo Failback",
        FAILBACK_STATES,
        RunTrigger.UNDO_FAILBACK,
        tip="Power the failback target off and run the replica again at the DR site",
    ),
    Op.TEST_FAILOVER: OpSpec(
        "Start Test",
        TESTABLE,
        RunTrigger.TEST_FAILOVER,
        needs_point=True,
        needs_points=True,
        tip="Bring a copy of the replica up on an isolated network; replication goes on",
    ),
    Op.TEST_CLEANUP: OpSpec(
        "Clean Up",
        frozenset(ReplicaState),
        RunTrigger.TEST_CLEANUP,
        tip="Delete the test VM and its isolated network",
    ),
}

ORDER = tuple(Op)


@dataclass(frozen=True)
class OpRequest:
    """What the confirmation dialog hands to the worker."""

    op: Op
    replica: Replica
    point: int | None = None  # restore point number (None: the latest)
    target: NewLocation | Restored | None = None  # failback: None is the original VM

    @property
    def title(self) -> str:
        return f"{self.op} of {self.replica.replica_name}"


def availability(op: Op, row: ReplicaRow, busy: bool = False) -> str:
    """ "" when `op` may be started on the replica of `row`, else why not (in words)."""
    spec = SPECS[op]
    replica = row.replica
    if busy:
        return f"An operation on {replica.replica_name} is in progress"
    if op == Op.TEST_CLEANUP:
        return "" if row.test_running else f"No test failover of {replica.replica_name} is up"
    if replica.state not in spec.states:
        allowed = " or ".join(sorted(str(s) for s in spec.states))
        return f"{op} needs the replica {allowed}; {replica.replica_name} is {replica.state}"
    if spec.needs_points and not row.points:
        return f"{replica.replica_name} has no restore point yet: run its job first"
    if op == Op.TEST_FAILOVER and row.test_running:
        return f"A test failover of {replica.replica_name} is up: clean it up first"
    return ""


def when(point: RestorePoint) -> str:
    return point.created.astimezone().strftime("%Y-%m-%d %H:%M")


def point_words(row: ReplicaRow, number: int | None) -> str:
    point = next((p for p in row.points if p.number == number), row.latest)
    if point is None:
        return "its latest restore point"
    return f"restore point {point.number} of {when(point)}"


def _reip_words(job: ReplicationJob | None) -> str:
    if job is None:
        return "the job's re-IP rules, if it has any, will be applied"
    if job.reip:
        n = len(job.reip)
        return f"re-IP rules of the job will be applied ({n} rule{'s' if n != 1 else ''})"
    return "the job has no re-IP rules: the VM keeps the source's addresses"


def _network_words(job: ReplicationJob | None) -> str:
    if job is None or not job.network.mappings:
        return "its NICs go to the DR networks of the same names"
    n = len(job.network.mappings)
    return f"its NICs are connected by the job's network mapping ({n} row{'s' if n != 1 else ''})"


def describe(
    op: Op,
    row: ReplicaRow,
    job: ReplicationJob | None,
    point: int | None = None,
    target: NewLocation | Restored | None = None,
    names: Callable[[str], str] = lambda moref: moref,
) -> str:
    """What `op` will do to the replica of `row`, in the administrator's words. `names` turns
    production morefs (failback targets) into names."""
    r = row.replica
    rep, vm = r.replica_name, r.vm_name
    job_name = job.name if job is not None else r.job
    if op == Op.FAILOVER:
        return (
            f"{rep} will be reverted to {point_words(row, point)} and powered on; "
            f"{_network_words(job)}; {_reip_words(job)}; the source VM {vm} is not touched."
        )
    if op == Op.PLANNED_FAILOVER:
        return (
            f"Job {job_name} first copies {vm}'s latest changes while it runs; then {vm}'s "
            f"guest is shut down (powered off if it has not stopped after "
            f"{operations.SHUTDOWN_TIMEOUT / 60:g} minutes); a final run copies what it wrote "
            f"last; then {rep} is reverted to that newest point and powered on; "
            f"{_reip_words(job)}. No data is lost; {vm} stays off. If the final run fails, "
            f"{vm} is powered on again and stays production."
        )
    if op == Op.UNDO_FAILOVER:
        return (
            f"{rep} will be powered off and everything it wrote since the failover discarded; "
            f"it goes back to its restore points and is Ready, and job {job_name} replicates it "
            f"again. The source VM {vm} is not touched."
        )
    if op == Op.PERMANENT_FAILOVER:
        return (
            f"{rep} becomes the production VM: its {len(row.points)} restore point(s) and their "
            f"snapshots are removed, and {vm} is excluded from job {job_name}. To protect the "
            "VM again afterwards, replicate it with a job."
        )
    if op == Op.FAILBACK:
        if isinstance(target, NewLocation):
            into = (
                f"a new VM {target.name} is created at production (host "
                f"{names(target.host)}, datastore {names(target.datastore)}) with {rep}'s "
                "configuration, and the replica's disks are copied into it"
            )
            then = target.name
        elif isinstance(target, Restored):
            which = (
                names(target.vm)
                if target.vm
                else f"the VM at production with {vm}'s instance UUID (recorded at the failover)"
            )
            into = (
                f"{which}, the original VM restored in another place, is shut down and only the "
                "blocks that differ from the replica are written into its disks"
            )
            then = names(target.vm) if target.vm else "that VM"
        else:
            into = (
                f"the original VM {vm} at production is shut down and only the blocks that "
                "differ from the replica are written into its disks"
            )
            then = vm
        return (
            f"{rep} will be shut down; {into}; every block written is read back and checked. "
            f"Then {then} is powered on at production; {rep} stays off until you commit or "
            "undo the failback."
        )
    if op == Op.COMMIT_FAILBACK:
        return (
            f"The VM failback brought up at production stays production, with its changed "
            f"block tracking reset; {rep} goes back to its restore points (what ran on it is "
            f"discarded) and is Ready, and job {job_name} replicates production again."
        )
    if op == Op.UNDO_FAILBACK:
        return (
            f"The VM failback brought up at production will be powered off (a VM failback "
            f"created is deleted) and {rep} is powered on again at the DR site: it is failed "
            "over again, as before the failback."
        )
    if op == Op.TEST_FAILOVER:
        return (
            f"A test VM {rep}{drill.TEST_SUFFIX} is made beside {rep} from "
            f"{point_words(row, point)} on a new isolated network (no uplink: it reaches "
            f"nothing else) and powered on. {rep} stays {r.state} and job {job_name} keeps "
            "replicating. Clean the test up when you are done."
        )
    return (
        f"The test VM {rep}{drill.TEST_SUFFIX} is powered off and deleted with its disks, and "
        f"its isolated network is removed. {rep} itself is not touched."
    )


Progress = Callable[[int, int], None]


def perform(
    store: Store,
    request: OpRequest,
    on_progress: Progress | None = None,
    *,
    cancel: threading.Event | None = None,
    on_started: Started | None = None,
) -> OperationResult:
    """Run the request's operation (blocking: on a worker thread). `cancel` goes to the
    operations that take one (`OpSpec.cancel`); `on_started(session id)` to every one."""
    rid = request.replica.id
    op = request.op
    if op == Op.FAILOVER:
        return operations.failover(store, rid, request.point, cancel=cancel, on_started=on_started)
    if op == Op.PLANNED_FAILOVER:
        return operations.planned_failover(store, rid, cancel=cancel, on_started=on_started)
    if op == Op.UNDO_FAILOVER:
        return operations.undo_failover(store, rid, on_started=on_started)
    if op == Op.PERMANENT_FAILOVER:
        return operations.permanent_failover(store, rid, on_started=on_started)
    if op == Op.FAILBACK:
        return failback.failback(
            store,
            rid,
            to=request.target,
            on_progress=on_progress,
            cancel=cancel,
            on_started=on_started,
        )
    if op == Op.COMMIT_FAILBACK:
        return failback.commit_failback(store, rid, on_started=on_started)
    if op == Op.UNDO_FAILBACK:
        return failback.undo_failback(store, rid, on_started=on_started)
    if op == Op.TEST_FAILOVER:
        return drill.start_test_failover(store, rid, request.point, on_started=on_started)
    return drill.cleanup_test_failover(store, rid, on_started=on_started)


def outcome(request: OpRequest, result: OperationResult) -> str:
    """One line saying how the operation ended."""
    r = result.replica
    warnings = f" with {len(result.warnings)} warning(s)" if result.warnings else ""
    if request.op == Op.FAILOVER or request.op == Op.PLANNED_FAILOVER:
        reip = ""
        if result.reip == "verified":
            reip = "; re-IP verified"
        elif result.reip:
            reip = f"; re-IP {result.reip}"
        return f"{r.replica_name} runs at the DR site ({r.state}){reip}{warnings}."
    if request.op == Op.TEST_FAILOVER:
        where = f" on {result.network.portgroup}" if result.network is not None else ""
        return f"Test VM {r.replica_name}{drill.TEST_SUFFIX} is up{where}{warnings}."
    if request.op == Op.TEST_CLEANUP:
        return f"The test of {r.replica_name} is cleaned up{warnings}."
    return f"{request.op} done: {r.replica_name} is {r.state}{warnings}."


def size_words(size: int | None) -> str:
    return fmt.size(size) if size is not None else "size unknown"
