"""Plans refused with clear errors, plan files read and written, the schedule simulated."""

from __future__ import annotations

import pytest

from core.errors import InvalidSettingError, JobFileError
from core.model.plans import (
    FailoverPlan,
    PlanItem,
    PlanScript,
    dump_plan,
    parse_plan,
    replace_items,
)
from core.plans.readiness import simulate


def items(*specs: tuple[str, int, tuple[str, ...]]) -> tuple[PlanItem, ...]:
    return tuple(PlanItem(vm, priority=p, depends_on=d) for vm, p, d in specs)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: FailoverPlan("p", ()), "items: a plan needs at least one VM"),
        (lambda: PlanItem("dc01", priority=6), "priority: 6 is out of range (1 to 5)"),
        (lambda: PlanItem("dc01", priority=0), "priority: 0 is out of range (1 to 5)"),
        (lambda: PlanItem("dc01", delay_after=-1), "delay_after: -1 s is out of range"),
        (lambda: PlanItem("dc01", replica=3), "vm: give a VM or a replica id, not both"),
        (lambda: FailoverPlan("p", (PlanItem("a"),), max_parallel=11), "max_parallel: 11"),
        (
            lambda: FailoverPlan("p", (PlanItem("a"), PlanItem("b"), PlanItem("a"))),
            "items[2]: 'a' is already in the plan (items[0])",
        ),
        (
            lambda: FailoverPlan("p", items(("a", 1, ("x",)))),
            "items[0].depends_on[0]: 'x' is not an item of this plan",
        ),
        (
            lambda: FailoverPlan("p", items(("a", 1, ()), ("b", 2, ("a",)))),
            "items[1].depends_on[0]: 'b' (priority 2) depends on 'a' of priority 1",
        ),
        (
            lambda: FailoverPlan("p", items(("a", 1, ("c",)), ("b", 1, ("a",)), ("c", 1, ("b",)))),
            "dependency loop: 'a' -> 'c' -> 'b' -> 'a'",
        ),
        (lambda: FailoverPlan("p", items(("a", 1, ("a",)))), "'a' cannot depend on itself"),
        (lambda: PlanScript("x", timeout=0), "timeout: 0 s is out of range"),
    ],
)
def test_bad_plans_are_refused(build: object, message: str) -> None:
    with pytest.raises(InvalidSettingError) as err:
        build()  # type: ignore[operator]
    assert message in str(err.value)


def test_plan_file_round_trip_and_errors() -> None:
    text = """
name: Tier 1
description: the core
max_parallel: 4
pre_script: /opt/dr/start.sh --check
post_script: {command: "sh -c 'echo done'", timeout: 30}
items:
  - {vm: dc01, priority: 1, delay_after: 10}
  - {vm: "db [primary]", job: SQL, priority: 2, order: 2}
  - {replica: 7, priority: 2, order: 1, depends_on: ["db [primary]"], wait_heartbeat: false}
"""
    plan = parse_plan(text, "yaml", "tier1.yaml")
    assert plan.pre_script == PlanScript("/opt/dr/start.sh --check")
    assert [it.name for _, g in plan.groups() for it in g] == ["dc01", "replica 7", "db [primary]"]
    for fmt in ("yaml", "json"):
        assert parse_plan(dump_plan(plan, fmt), fmt) == plan
    with pytest.raises(JobFileError, match=r"items\[1\]\.prio: unknown key"):
        parse_plan("name: x\nitems:\n  - {vm: a}\n  - {vm: b, prio: 2}\n", "yaml", "x.yaml")
    with pytest.raises(JobFileError, match=r"items\[0\]: give the item's vm"):
        parse_plan("name: x\nitems:\n  - {priority: 2}\n", "yaml", "x.yaml")
    edited = replace_items(plan, {"dc01": {"priority": 3}})
    assert edited.item("dc01").priority == 3
    with pytest.raises(InvalidSettingError, match="no item named 'nope'"):
        replace_items(plan, {"nope": {"priority": 1}})


def test_simulated_schedule() -> None:
    plan = FailoverPlan(
        "p",
        (
            PlanItem("a", priority=1, delay_after=5),
            PlanItem("b", priority=1, delay_after=1, depends_on=("a",)),
            PlanItem("c", priority=2, delay_after=7),
        ),
    )
    # a: 0-10, b: 15-25 (after a's 5 s delay), group 2 after b's 1 s delay: c 26-36.
    total, delays = simulate(plan, {"a": 10, "b": 10, "c": 10})
    assert (total, delays) == (36, 6)
