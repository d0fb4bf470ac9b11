"""Run, undo and test a failover plan: what `replicadesk plan run|undo|test` and the console call.

Run: the pre-script (its failure stops the plan), then the items group by group
(core.plans.schedule): each is a failover now of its replica (core.failover.operations) to its
latest point, or, for a point in time, to the newest point made at or before it (chosen for
every VM before anything starts: a VM without such a point stops the plan then). A replica
already failed over (or failed over permanently) is skipped with a line saying so. After
power-on (and the re-IP check the failover does) the guest's heartbeat (VMware Tools running) is
awaited when the item asks for it; a heartbeat that does not come is a warning and the plan goes
on. Then the post-script. Undo: every failed-over replica of the plan is brought back (undo
failover), last group first, in batches of `max_parallel`. Test: a test failover of every item
on one isolated network made for the plan's test (core.failover.drill; its VMs reach each
other, and nothing else) in the plan's order (no delays: nothing depends on a test), heartbeats
checked, then all cleaned up and the network removed (unless kept, for `cleanup_plan_test`).
A failover's power-on is recorded (through the operation's callback) apart from its re-IP check.
Every step is in the plan session; each replica operation is also a session of its job. Each
action takes `on_started(plan session ID)`, called as soon as that session exists.

A run (and a test) takes a `cancel` event, looked at before the pre-script, before each item
and at each group (core.plans.schedule), and given to the failovers it starts, which stop only
if they had changed nothing yet. A cancelled run leaves the VMs already up running (they are
listed in its last step; undo the plan to bring them back), starts none of the others (CANCELLED,
listed too: running the plan again starts them, skipping those already up), does not run the
post-script, and ends Failed. A cancelled test cleans up what it had started, as always.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from core.errors import PlanError, PlanScriptError, ReplicaDeskError
from core.failover import drill, operations
from core.failover.session import FAILED_OVER, OperationResult, Started
from core.jobs import servers
from core.model.plans import FailoverPlan, PlanAction, PlanScript, StepKind
from core.model.replicas import Replica, ReplicaState
from core.model.runs import RunStatus, Severity
from core.plans.resolve import Resolved, point_at, resolve
from core.plans.schedule import ItemResult, Outcome, Recorder, bring_up, guarded
from core.plans.scripts import run_script
from core.store.store import Store
from core.vsphere import power
from core.vsphere.connection import VSphereClient
from core.vsphere.networks import IsolatedNetwork

HEARTBEAT_POLL = 0.25


@dataclass(frozen=True)
class PlanResult:
    session_id: int
    plan: str
    action: PlanAction
    status: RunStatus
    items: tuple[ItemResult, ...]
    cancelled: bool = False  # cancel stopped items from starting (they are CANCELLED)


def _start(
    store: Store,
    plan: FailoverPlan,
    action: PlanAction,
    on_started: Started | None,
    point_in_time: dt.datetime | None = None,
) -> Recorder:
    """The plan session, announced to `on_started` (whose failure ends it Failed)."""
    session = store.plan_sessions.start(plan.name, action, point_in_time)
    if on_started is not None:
        try:
            on_started(session.id)
        except BaseException:
            store.plan_sessions.finish(session.id, RunStatus.FAILED)
            raise
    return Recorder(store, session.id)


def _cancelled(
    rec: Recorder,
    cancel: threading.Event | None,
    items: Sequence[ItemResult],
    up_fate: str = "stay up",
) -> bool:
    """Whether cancel kept items from starting; if it was asked at all, a step saying what it
    left: the VMs up (`up_fate`: what becomes of them) and those not started."""
    if cancel is None or not cancel.is_set():
        return False
    left = [i.name for i in items if i.outcome == Outcome.CANCELLED]
    up = [i.name for i in items if i.outcome in (Outcome.UP, Outcome.SKIPPED)]
    if not left:
        rec.step(
            StepKind.INFO,
            "cancel was asked after every VM had been started: the plan went on to its end",
            severity=Severity.WARNING,
        )
        return False
    shown = ", ".join(repr(n) for n in up) or "none"
    rec.step(
        StepKind.INFO,
        f"the plan was cancelled: {len(up)} VM(s) up {up_fate} ({shown}); {len(left)} not "
        f"started ({', '.join(repr(n) for n in left)})",
        severity=Severity.ERROR,
    )
    return True


def _finish(
    store: Store,
    rec: Recorder,
    plan: FailoverPlan,
    action: PlanAction,
    items: list[ItemResult],
    cancelled: bool = False,
) -> PlanResult:
    status = rec.status()
    store.plan_sessions.finish(rec.session_id, status)
    return PlanResult(rec.session_id, plan.name, action, status, tuple(items), cancelled)


def _script(rec: Recorder, plan: FailoverPlan, which: str, script: PlanScript) -> None:
    result = run_script(
        plan.name,
        which,
        script,
        PlanAction.RUN,
        lambda line: rec.step(StepKind.INFO, f"{which}: {line}"),
    )
    rec.step(StepKind.SCRIPT, f"the {which} ran in {result.seconds:.1f} s: {script.command}")


def _op_warnings(rec: Recorder, r: Resolved, result: OperationResult) -> tuple[str, ...]:
    for w in result.warnings:
        rec.step(
            StepKind.INFO,
            w,
            item=r.name,
            replica_id=r.replica.id,
            severity=Severity.WARNING,
            op_session=result.session_id,
        )
    return result.warnings


def wait_heartbeat(client: VSphereClient, vm: str, timeout: float) -> float | None:
    """Seconds until VMware Tools report running in the guest; None after `timeout`."""
    start = time.monotonic()
    while True:
        if power.guest_state(client, vm).tools_running:
            return time.monotonic() - start
        if time.monotonic() - start >= timeout:
            return None
        time.sleep(HEARTBEAT_POLL)


def _heartbeat(store: Store, rec: Recorder, r: Resolved, vm: str) -> str:
    """Wait for the heartbeat of `vm` on the replica's DR server; "" or a warning."""
    item = r.item
    try:
        with servers.connect_stored(store, r.replica.target_server, keepalive=False) as client:
            seconds = wait_heartbeat(client, vm, item.heartbeat_timeout)
    except ReplicaDeskError as e:
        seconds, problem = None, f"its heartbeat could not be read: {e}"
    else:
        problem = f"no heartbeat (VMware Tools) within {item.heartbeat_timeout:g} s"
    if seconds is None:
        rec.step(
            StepKind.HEARTBEAT,
            problem + ": going on without it",
            item=r.name,
            replica_id=r.replica.id,
            severity=Severity.WARNING,
        )
        return problem
    rec.step(
        StepKind.HEARTBEAT,
        f"heartbeat after {seconds:.1f} s",
        item=r.name,
        replica_id=r.replica.id,
    )
    return ""


def _reip_step(rec: Recorder, r: Resolved, result: OperationResult) -> None:
    """After the failover returned: its re-IP, recorded apart from the power-on."""
    if not result.reip:
        return
    failed = result.reip != "verified"
    rec.step(
        StepKind.INFO,
        f"Re-IP {result.reip}" if failed else "re-IP verified: the guest reports its new addresses",
        item=r.name,
        replica_id=r.replica.id,
        severity=Severity.WARNING if failed else Severity.INFO,
        op_session=result.session_id,
    )


def run_plan(
    store: Store,
    name: str,
    *,
    point_in_time: dt.datetime | None = None,
    reip_timeout: float = operations.REIP_TIMEOUT,
    cancel: threading.Event | None = None,
    on_started: Started | None = None,
) -> PlanResult:
    """Fail the plan's VMs over, group by group (latest points, or the newest point at or
    before `point_in_time` for each VM). Cancelled, it ends as the module says."""
    plan = store.plans.get(name)
    resolved = resolve(store, plan)
    points: dict[int, int] = {}
    if point_in_time is not None:
        if point_in_time.tzinfo is None:
            raise PlanError(plan.name, "the point in time needs a time zone")
        for r in resolved:
            if r.replica.state == ReplicaState.READY:
                points[r.replica.id] = point_at(store, plan.name, r.replica, point_in_time).number
    rec = _start(store, plan, PlanAction.RUN, on_started, point_in_time)
    target = (
        "the latest restore points"
        if point_in_time is None
        else f"the restore points at {point_in_time.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
    )
    rec.step(StepKind.INFO, f"failover plan {plan.name!r}: {len(resolved)} VMs to {target}")
    if plan.pre_script is not None and not (cancel is not None and cancel.is_set()):
        try:
            _script(rec, plan, "pre-script", plan.pre_script)
        except PlanScriptError as e:
            rec.step(StepKind.SCRIPT, f"{e}: the plan stops here", severity=Severity.ERROR)
            return _finish(store, rec, plan, PlanAction.RUN, [])

    def failover(r: Resolved) -> ItemResult:
        replica = store.replicas.get(r.replica.id)
        if replica.state in FAILED_OVER or replica.state == ReplicaState.PERMANENT_FAILOVER:
            message = f"skipped: {replica.replica_name!r} is already failed over ({replica.state})"
            rec.step(StepKind.SKIP, message, item=r.name, replica_id=replica.id)
            return ItemResult(r.name, replica.id, Outcome.SKIPPED, message)
        point = points.get(replica.id)
        rec.step(
            StepKind.START,
            f"failover of {replica.replica_name!r} to "
            + ("its latest restore point" if point is None else f"restore point {point}"),
            item=r.name,
            replica_id=replica.id,
        )

        def powered_on(rep: Replica, vm: str) -> None:
            rec.step(
                StepKind.POWERED_ON,
                f"{rep.replica_name!r} is powered on",
                item=r.name,
                replica_id=rep.id,
            )

        result = operations.failover(
            store,
            replica.id,
            point,
            reip_timeout=reip_timeout,
            on_powered_on=powered_on,
            cancel=cancel,
        )
        warnings = list(_op_warnings(rec, r, result))
        _reip_step(rec, r, result)
        if r.item.wait_heartbeat and result.vm:
            problem = _heartbeat(store, rec, r, result.vm)
            if problem:
                warnings.append(problem)
        rec.step(StepKind.UP, "up", item=r.name, replica_id=replica.id)
        return ItemResult(r.name, replica.id, Outcome.UP, "", tuple(warnings), result.session_id)

    items = bring_up(rec, plan, resolved, failover, cancel=cancel)
    cancelled = _cancelled(rec, cancel, items)
    if plan.post_script is not None and cancelled:
        rec.step(StepKind.SCRIPT, "the post-script was not run: the plan was cancelled")
    elif plan.post_script is not None:
        try:
            _script(rec, plan, "post-script", plan.post_script)
        except PlanScriptError as e:
            rec.step(StepKind.SCRIPT, str(e), severity=Severity.WARNING)
    return _finish(store, rec, plan, PlanAction.RUN, items, cancelled)


def _batches(
    rec: Recorder,
    plan: FailoverPlan,
    resolved: Sequence[Resolved],
    action: Callable[[Resolved], ItemResult],
) -> list[ItemResult]:
    """`action` on every item, last group first (reverse boot order inside a group), in
    batches of `max_parallel` run together; each batch ends before the next starts."""
    by_name = {r.name: r for r in resolved}
    order = [by_name[it.name] for _, items in reversed(plan.groups()) for it in reversed(items)]
    out: list[ItemResult] = []
    size = plan.max_parallel
    with ThreadPoolExecutor(size, thread_name_prefix="plan") as pool:
        for n, i in enumerate(range(0, len(order), size), start=1):
            batch = order[i : i + size]
            rec.step(StepKind.GROUP, f"batch {n}: " + ", ".join(repr(r.name) for r in batch))
            out += list(pool.map(guarded(action, rec), batch))
    return out


def undo_plan(store: Store, name: str, *, on_started: Started | None = None) -> PlanResult:
    """Undo the failover of every failed-over replica of the plan, in batches."""
    plan = store.plans.get(name)
    resolved = resolve(store, plan)
    rec = _start(store, plan, PlanAction.UNDO, on_started)
    rec.step(StepKind.INFO, f"undo of failover plan {plan.name!r}: {len(resolved)} VMs")

    def undo(r: Resolved) -> ItemResult:
        replica = store.replicas.get(r.replica.id)
        if replica.state not in FAILED_OVER:
            message = f"skipped: {replica.replica_name!r} is not failed over ({replica.state})"
            rec.step(StepKind.SKIP, message, item=r.name, replica_id=replica.id)
            return ItemResult(r.name, replica.id, Outcome.SKIPPED, message)
        rec.step(StepKind.START, "undo failover", item=r.name, replica_id=replica.id)
        result = operations.undo_failover(store, replica.id)
        warnings = _op_warnings(rec, r, result)
        rec.step(
            StepKind.DONE,
            f"{replica.replica_name!r} is {result.replica.state} again",
            item=r.name,
            replica_id=replica.id,
            op_session=result.session_id,
        )
        return ItemResult(r.name, replica.id, Outcome.UP, "", warnings, result.session_id)

    return _finish(store, rec, plan, PlanAction.UNDO, _batches(rec, plan, resolved, undo))


def run_plan_test(
    store: Store,
    name: str,
    *,
    keep: bool = False,
    point_in_time: dt.datetime | None = None,
    cancel: threading.Event | None = None,
    on_started: Started | None = None,
) -> PlanResult:
    """Test failover of every VM of the plan on isolated networks, in the plan's order; then
    everything is cleaned up unless `keep` (then `cleanup_plan_test` does it). Cancelled, no
    further test VM starts; what started is cleaned up (or kept) all the same."""
    plan = store.plans.get(name)
    resolved = resolve(store, plan)
    points: dict[int, int] = {}
    if point_in_time is not None:
        for r in resolved:
            points[r.replica.id] = point_at(store, plan.name, r.replica, point_in_time).number
    rec = _start(store, plan, PlanAction.TEST, on_started, point_in_time)
    rec.step(
        StepKind.INFO,
        f"test of failover plan {plan.name!r}: {len(resolved)} VMs on isolated networks; "
        "replication goes on",
    )

    nets = _test_networks(store, rec, resolved, rec.session_id)

    def test(r: Resolved) -> ItemResult:
        replica = store.replicas.get(r.replica.id)
        rec.step(StepKind.START, "test failover", item=r.name, replica_id=replica.id)
        result = drill.start_test_failover(
            store, replica.id, points.get(replica.id), network=nets.get(replica.target_server)
        )
        warnings = list(_op_warnings(rec, r, result))
        rec.step(
            StepKind.POWERED_ON,
            f"test VM {replica.replica_name + drill.TEST_SUFFIX!r} ({result.vm}) is powered on",
            item=r.name,
            replica_id=replica.id,
            op_session=result.session_id,
        )
        if r.item.wait_heartbeat:
            problem = _heartbeat(store, rec, r, result.vm)
            if problem:
                warnings.append(problem)
        rec.step(StepKind.UP, "up", item=r.name, replica_id=replica.id)
        return ItemResult(r.name, replica.id, Outcome.UP, "", tuple(warnings), result.session_id)

    items: list[ItemResult] = []
    try:
        items = bring_up(rec, plan, resolved, test, with_delays=False, cancel=cancel)
    finally:
        started = [
            r for r in resolved if any(i.name == r.name and i.outcome == Outcome.UP for i in items)
        ]
        if not keep:
            _cleanup(store, rec, plan, started, nets)
        else:
            rec.step(StepKind.INFO, "the test VMs are kept: clean the test up when done")
            if not started:
                _remove_networks(store, rec, nets)
    fate = "are kept (clean the test up when done)" if keep else "were cleaned up"
    cancelled = _cancelled(rec, cancel, items, fate)
    return _finish(store, rec, plan, PlanAction.TEST, items, cancelled)


def _test_networks(
    store: Store, rec: Recorder, resolved: Sequence[Resolved], session_id: int
) -> dict[str, IsolatedNetwork]:
    """One isolated network per DR server for the whole plan test, so its VMs reach each other
    (and nothing else): on the host that carries most of the plan's replicas there, where the
    test VMs then run."""
    hosts: dict[str, Counter[str]] = {}
    for r in resolved:
        if r.replica.target_host_moref:
            hosts.setdefault(r.replica.target_server, Counter())[r.replica.target_host_moref] += 1
    nets: dict[str, IsolatedNetwork] = {}
    try:
        for n, (server, count) in enumerate(sorted(hosts.items())):
            host = count.most_common(1)[0][0]
            switch = f"rd-plan-{session_id}" + (f"-{n}" if n else "")
            portgroup = f"ReplicaDesk plan test {session_id} (isolated)"
            nets[server] = drill.add_test_network(store, server, host, switch, portgroup)
            rec.step(
                StepKind.INFO,
                f"isolated network {portgroup!r} made on {server} for all the plan's test VMs",
            )
    except BaseException:
        _remove_networks(store, rec, nets)
        raise
    return nets


def _remove_networks(store: Store, rec: Recorder, nets: dict[str, IsolatedNetwork]) -> None:
    for server, net in nets.items():
        try:
            drill.remove_test_network(store, server, net)
            rec.step(StepKind.INFO, f"isolated network {net.portgroup!r} removed")
        except ReplicaDeskError as e:
            rec.step(
                StepKind.INFO,
                f"the isolated network {net.portgroup!r} could not be removed: {e}",
                severity=Severity.WARNING,
            )


def _cleanup(
    store: Store,
    rec: Recorder,
    plan: FailoverPlan,
    resolved: Sequence[Resolved],
    nets: dict[str, IsolatedNetwork] | None = None,
) -> list[ItemResult]:
    """Clean up every item's test; the shared networks the tests were on (`nets`, and those
    the cleanups name: a kept test's) are removed once all are done."""
    shared: dict[str, IsolatedNetwork] = dict(nets or {})

    def clean(r: Resolved) -> ItemResult:
        if not drill.has_test(store, r.replica.id):
            message = "skipped: no test VM of it is running"
            rec.step(StepKind.SKIP, message, item=r.name, replica_id=r.replica.id)
            return ItemResult(r.name, r.replica.id, Outcome.SKIPPED, message)
        result = drill.cleanup_test_failover(store, r.replica.id)
        if result.network is not None:
            shared[r.replica.target_server] = result.network
        warnings = _op_warnings(rec, r, result)
        rec.step(
            StepKind.DONE,
            "test cleaned up",
            item=r.name,
            replica_id=r.replica.id,
            op_session=result.session_id,
        )
        return ItemResult(r.name, r.replica.id, Outcome.UP, "", warnings, result.session_id)

    out = _batches(rec, plan, resolved, clean)
    _remove_networks(store, rec, shared)
    return out


def cleanup_plan_test(store: Store, name: str, *, on_started: Started | None = None) -> PlanResult:
    """Clean up a kept plan test: every item's test failover that is still there."""
    plan = store.plans.get(name)
    resolved = resolve(store, plan)
    rec = _start(store, plan, PlanAction.TEST, on_started)
    rec.step(StepKind.INFO, f"cleanup of the test of failover plan {plan.name!r}")
    return _finish(store, rec, plan, PlanAction.TEST, _cleanup(store, rec, plan, resolved))
