"""Failover plans run, undone and tested against the real lab: order, delays, point in time,
skips, scripts, and replicas exactly as before afterwards."""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import replace
from pathlib import Path

from core.failover.operations import failover, undo_failover
from core.lab.register import inventories
from core.model.plans import FailoverPlan, PlanItem, PlanScript, StepKind
from core.model.reip import ReIpRule
from core.model.replicas import ReplicaState
from core.model.runs import RunStatus
from core.plans.run import cleanup_plan_test, run_plan, run_plan_test, undo_plan
from core.plans.schedule import Outcome
from tests.core.failover.conftest import folder_hashes
from tests.core.failover.test_operations import give_addresses
from tests.core.plans.conftest import VMS, PlanLab, replica_folders

DELAY = 1.0
GROUPS = {
    1: ["dc01", "dc02"],
    2: ["db #2 & replica", "db [primary]", "app+cache", "app-02", "50% batch"],
    3: ["web 02 (canary)", "web-01", "Zürich fileserver [fs]"],
}
DEPENDS = {"dc02": ("dc01",), "app+cache": ("db [primary]",), "app-02": ("db #2 & replica",)}


def three_groups(name: str, **kw: object) -> FailoverPlan:
    items = tuple(
        PlanItem(
            vm,
            priority=p,
            delay_after=DELAY,
            depends_on=DEPENDS.get(vm, ()),
            heartbeat_timeout=20,
        )
        for p, vms in GROUPS.items()
        for vm in vms
    )
    return FailoverPlan(name, items, **kw)  # type: ignore[arg-type]


def hashes(planlab: PlanLab) -> dict[str, dict[str, str]]:
    return {name: folder_hashes(f) for name, f in replica_folders(planlab).items()}


def power(planlab: PlanLab) -> dict[str, str]:
    _, dr = inventories(planlab.lab)
    return {n: dr.vm(r.replica_moref or "").power_state for n, r in planlab.replicas.items()}


def states(planlab: PlanLab) -> dict[str, ReplicaState]:
    return {n: planlab.store.replicas.get(r.id).state for n, r in planlab.replicas.items()}


def test_ten_vms_in_three_groups_in_order_then_undo(planlab: PlanLab) -> None:
    store = planlab.store
    before = hashes(planlab)
    store.plans.add(three_groups("Three groups"))
    result = run_plan(store, "Three groups", reip_timeout=30)
    assert result.status == RunStatus.SUCCESS, store.plan_sessions.get(result.session_id).steps
    assert sorted(i.name for i in result.items) == sorted(VMS)
    assert {i.outcome for i in result.items} == {Outcome.UP}
    session = store.plan_sessions.get(result.session_id)
    start = {s.item: s.time for s in session.of(StepKind.START)}
    up = {s.item: s.time for s in session.of(StepKind.UP)}
    assert {s.item for s in session.of(StepKind.HEARTBEAT)} == set(VMS)
    delay = dt.timedelta(seconds=DELAY)
    # Every group starts once the previous one is up and the delay after it has passed.
    for p in (2, 3):
        previous_up = max(up[v] for v in GROUPS[p - 1])
        for vm in GROUPS[p]:
            assert start[vm] >= previous_up + delay, (vm, start[vm], previous_up)
    # Dependants start after their dependency is up plus its delay; the others at once.
    for vm, deps in DEPENDS.items():
        for d in deps:
            assert start[vm] >= up[d] + delay
    first = min(start.values())
    assert start["dc01"] - first < delay and start["db [primary]"] < start["app+cache"]
    # The recorded order: group by group.
    order = [s.item for s in session.of(StepKind.POWERED_ON)]
    rank = {vm: p for p, vms in GROUPS.items() for vm in vms}
    assert [rank[v] for v in order] == sorted(rank[v] for v in order)
    waits = session.of(StepKind.WAIT)
    assert waits and all(0 < w.seconds <= DELAY + 0.05 for w in waits)
    assert set(states(planlab).values()) == {ReplicaState.FAILOVER}
    assert set(power(planlab).values()) == {"poweredOn"}

    # Running it again skips every VM: they are failed over already.
    again = run_plan(store, "Three groups")
    assert {i.outcome for i in again.items} == {Outcome.SKIPPED}
    assert "already failed over" in again.items[0].message

    undo = undo_plan(store, "Three groups")
    assert undo.status == RunStatus.SUCCESS
    steps = store.plan_sessions.get(undo.session_id)
    batches = steps.of(StepKind.GROUP)
    assert len(batches) == 1  # 10 VMs, max_parallel 10: one batch
    assert set(states(planlab).values()) == {ReplicaState.READY}
    assert set(power(planlab).values()) == {"poweredOff"}
    assert hashes(planlab) == before


def test_point_in_time_skips_and_batches(planlab: PlanLab) -> None:
    store = planlab.store
    before = hashes(planlab)
    second = store.sessions.get(planlab.second_run)
    # A time between the two runs: every VM goes to its first point.
    when = second.started - dt.timedelta(microseconds=1)
    already = planlab.replicas["web-01"]
    failover(store, already.id, 2)
    plan = FailoverPlan(
        "Point in time",
        tuple(
            PlanItem(vm, priority=1 + i % 2, delay_after=0, wait_heartbeat=False)
            for i, vm in enumerate(VMS)
        ),
        max_parallel=3,
    )
    store.plans.add(plan)
    result = run_plan(store, plan.name, point_in_time=when, reip_timeout=30)
    assert result.status == RunStatus.SUCCESS
    by_name = {i.name: i for i in result.items}
    assert by_name["web-01"].outcome == Outcome.SKIPPED
    session = store.plan_sessions.get(result.session_id)
    skip = [s for s in session.of(StepKind.SKIP) if s.item == "web-01"]
    assert skip and "already failed over" in skip[0].message
    for vm in VMS:
        if vm == "web-01":
            continue
        op = store.sessions.get(by_name[vm].op_session or 0)
        log = [e.message for t in store.sessions.tasks(op.id) for e in t.log] + [
            e.message for e in op.log
        ]
        assert any("restore point 1 of" in m for m in log), log
    # At most 3 starting at once: count overlaps of start..up intervals.
    start = {s.item: s.time for s in session.of(StepKind.START)}
    up = {s.item: s.time for s in session.of(StepKind.UP)}
    for t in start.values():
        assert sum(1 for o in start if start[o] <= t < up[o]) <= 3
    undo = undo_plan(store, plan.name)
    assert len(store.plan_sessions.get(undo.session_id).of(StepKind.GROUP)) == 4  # 10 by 3
    assert set(states(planlab).values()) == {ReplicaState.READY}
    # web-01 was failed over to point 2 by hand: its undo was part of the plan's undo.
    assert hashes(planlab) == before


def test_plan_test_then_cleanup_leaves_everything_as_before(planlab: PlanLab) -> None:
    store = planlab.store
    before = hashes(planlab)
    _, dr = inventories(planlab.lab)
    vms_before = sorted(v.name for v in dr.vms)
    networks_before = sorted(n.name for n in dr.networks)
    store.plans.add(three_groups("Drill"))
    result = run_plan_test(store, "Drill")
    steps = store.plan_sessions.get(result.session_id).steps
    assert result.status == RunStatus.SUCCESS, [s.message for s in steps if s.severity != "info"]
    session = store.plan_sessions.get(result.session_id)
    assert {s.item for s in session.of(StepKind.HEARTBEAT)} == set(VMS)
    assert {s.item for s in session.of(StepKind.DONE)} == set(VMS)  # cleaned up
    assert not session.of(StepKind.WAIT)  # a test waits for no delay
    _, dr = inventories(planlab.lab)
    assert sorted(v.name for v in dr.vms) == vms_before
    assert sorted(n.name for n in dr.networks) == networks_before
    assert set(states(planlab).values()) == {ReplicaState.READY}
    assert hashes(planlab) == before


def test_pre_script_failure_stops_the_plan_and_post_script_output_is_logged(
    planlab: PlanLab, tmp_path: Path
) -> None:
    store = planlab.store
    script = tmp_path / "pre.sh"
    script.write_text("#!/bin/sh\necho checking DNS for $REPLICADESK_PLAN\nexit 3\n")
    script.chmod(0o755)
    plan = FailoverPlan(
        "Scripted",
        (PlanItem("dc01", delay_after=0, wait_heartbeat=False),),
        pre_script=PlanScript(str(script), timeout=10),
    )
    store.plans.add(plan)
    result = run_plan(store, plan.name)
    assert result.status == RunStatus.FAILED and result.items == ()
    session = store.plan_sessions.get(result.session_id)
    messages = [s.message for s in session.steps]
    assert "pre-script: checking DNS for Scripted" in messages
    assert any("exit status 3" in m and "stops here" in m for m in messages)
    assert states(planlab)["dc01"] == ReplicaState.READY

    post = tmp_path / "post.sh"
    post.write_text("#!/bin/sh\necho all up\n")
    post.chmod(0o755)
    store.plans.update(
        FailoverPlan(
            "Scripted",
            plan.items,
            pre_script=PlanScript("true"),
            post_script=PlanScript(f"sh -c '{post}'"),
        )
    )
    result = run_plan(store, plan.name)
    assert result.status == RunStatus.SUCCESS
    messages = [s.message for s in store.plan_sessions.get(result.session_id).steps]
    assert "post-script: all up" in messages
    assert messages.index("post-script: all up") > max(
        i for i, m in enumerate(messages) if m == "up"
    )
    undo_failover(store, planlab.replicas["dc01"].id)


def test_plan_test_shares_one_isolated_network_until_cleanup(planlab: PlanLab) -> None:
    store = planlab.store
    _, dr = inventories(planlab.lab)
    networks_before = sorted(n.name for n in dr.networks)
    vms_before = sorted(v.name for v in dr.vms)
    store.plans.add(three_groups("Shared drill"))
    result = run_plan_test(store, "Shared drill", keep=True)
    assert result.status == RunStatus.SUCCESS
    session = store.plan_sessions.get(result.session_id)
    _, dr = inventories(planlab.lab)
    tests = [dr.vms_named(r.replica_name + "_test")[0] for r in planlab.replicas.values()]
    # One network for the whole test, on one host: every test VM reaches the others.
    assert {n.network_name for v in tests for n in v.nics} == {
        f"ReplicaDesk plan test {result.session_id} (isolated)"
    }
    assert len({v.host for v in tests}) == 1
    assert all(v.power_state == "poweredOn" for v in tests)
    # The plan took each test VM from its operation's result, not by a name lookup.
    powered = {s.item: s.message for s in session.of(StepKind.POWERED_ON)}
    for v in tests:
        (item,) = [n for n, r in planlab.replicas.items() if r.replica_name + "_test" == v.name]
        assert f"({v.moref}) is powered on" in powered[item]

    cleanup = cleanup_plan_test(store, "Shared drill")
    assert cleanup.status == RunStatus.SUCCESS
    steps = [s.message for s in store.plan_sessions.get(cleanup.session_id).steps]
    network = f"ReplicaDesk plan test {result.session_id} (isolated)"
    assert steps[-1] == f"isolated network {network!r} removed"
    _, dr = inventories(planlab.lab)
    assert sorted(n.name for n in dr.networks) == networks_before
    assert sorted(v.name for v in dr.vms) == vms_before


def test_power_on_and_reip_are_recorded_apart_in_order(planlab: PlanLab) -> None:
    store = planlab.store
    name = "app+cache"
    give_addresses(
        planlab.lab, name, [("172.17.5.20", "255.255.0.0"), ("10.1.2.3", "255.255.255.0")]
    )
    job = store.jobs.get(planlab.job)
    rules = (
        ReIpRule("172.17.*.*", "192.168.*.*", target_mask="255.255.0.0"),
        ReIpRule("10.1.2.0/24", "10.201.2.0/24"),
    )
    store.jobs.update(replace(job, reip=rules))
    try:
        store.plans.add(FailoverPlan("Re-IP order", (PlanItem(name, delay_after=0),)))
        result = run_plan(store, "Re-IP order", reip_timeout=30)
        assert result.status == RunStatus.SUCCESS
        steps = [s for s in store.plan_sessions.get(result.session_id).steps if s.item == name]
        kinds = [(s.kind, s.message) for s in steps]
        assert [k for k, _ in kinds] == [
            StepKind.START,
            StepKind.POWERED_ON,
            StepKind.INFO,
            StepKind.HEARTBEAT,
            StepKind.UP,
        ], kinds
        assert kinds[2][1] == "re-IP verified: the guest reports its new addresses"
        times = [s.time for s in steps]
        assert times == sorted(times)
        undo_plan(store, "Re-IP order")
    finally:
        store.jobs.update(job)


def test_cancelled_run_keeps_what_is_up_and_starts_nothing_more(
    planlab: PlanLab, tmp_path: Path
) -> None:
    """Cancelled from another thread once the first VM is up, while the plan waits for the
    delay after it: that VM stays up, the others are not started, the post-script not run."""
    store = planlab.store
    marker = tmp_path / "post-script ran"
    plan = FailoverPlan(
        "Cancelled",
        (
            PlanItem("dc01", priority=1, delay_after=60, wait_heartbeat=False),
            PlanItem("web-01", priority=2, delay_after=0, wait_heartbeat=False),
            PlanItem("app-02", priority=2, delay_after=0, wait_heartbeat=False),
        ),
        post_script=PlanScript(f"touch '{marker}'"),
    )
    store.plans.add(plan)
    cancel = threading.Event()
    announced: list[tuple[int, RunStatus]] = []
    known = threading.Event()

    def on_started(session_id: int) -> None:
        announced.append((session_id, store.plan_sessions.get(session_id).status))
        known.set()

    def cancel_once_the_first_is_up() -> None:
        known.wait(60)
        deadline = time.monotonic() + 60
        while not cancel.is_set() and time.monotonic() < deadline:
            if store.plan_sessions.get(announced[0][0]).of(StepKind.UP):
                cancel.set()
            time.sleep(0.01)

    watcher = threading.Thread(target=cancel_once_the_first_is_up)
    watcher.start()
    start = time.monotonic()
    try:
        result = run_plan(store, plan.name, cancel=cancel, on_started=on_started)
    finally:
        cancel.set()
        watcher.join()
    assert time.monotonic() - start < 30  # the 60 s delay ended with the cancel
    assert announced == [(result.session_id, RunStatus.RUNNING)]
    assert result.cancelled and result.status == RunStatus.FAILED
    outcomes = {i.name: i.outcome for i in result.items}
    assert outcomes == {
        "dc01": Outcome.UP,
        "web-01": Outcome.CANCELLED,
        "app-02": Outcome.CANCELLED,
    }
    steps = store.plan_sessions.get(result.session_id).steps
    messages = [s.message for s in steps]
    assert any(m.startswith("waited ") and ", then cancelled: " in m for m in messages)
    assert (
        "the plan was cancelled: 1 VM(s) up stay up ('dc01'); 2 not started "
        "('web-01', 'app-02')" in messages
    )
    assert "the post-script was not run: the plan was cancelled" in messages
    assert not marker.exists()
    assert not [s for s in steps if s.kind == StepKind.START and s.item != "dc01"]
    now = states(planlab)
    assert now["dc01"] == ReplicaState.FAILOVER
    assert now["web-01"] == now["app-02"] == ReplicaState.READY

    # Running it again starts the rest; undo brings all back (and announces its session).
    again = run_plan(store, plan.name)
    assert {i.name: i.outcome for i in again.items} == {
        "dc01": Outcome.SKIPPED,
        "web-01": Outcome.UP,
        "app-02": Outcome.UP,
    }
    undone: list[int] = []
    undo = undo_plan(store, plan.name, on_started=undone.append)
    assert undone == [undo.session_id] and undo.status == RunStatus.SUCCESS
    assert set(states(planlab).values()) == {ReplicaState.READY}
