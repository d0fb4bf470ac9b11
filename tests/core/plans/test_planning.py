"""One-click planning and the readiness report against the lab: the order inferred from names,
a missing network mapping, a missing re-IP rule, an RPO violation, the DR site's capacity."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace

import pytest

from core.model.network import NetworkMap
from core.model.reip import ReIpRule
from core.planning.rpo import violations
from core.plans import auto
from core.plans.readiness import ASSUMED_UP, check_plan, simulate
from core.plans.run import run_plan, undo_plan
from tests.core.failover.test_operations import give_addresses
from tests.core.plans.conftest import VMS, PlanLab


def test_one_click_plan_orders_by_tier(planlab: PlanLab) -> None:
    made = auto.from_job(planlab.store, "One click", planlab.job, delay_after=0)
    groups = {p: [it.vm for it in items] for p, items in made.plan.groups()}
    assert groups == {
        1: ["dc01", "dc02"],
        2: ["db #2 & replica", "db [primary]"],
        3: ["50% batch", "app+cache", "app-02", "Zürich fileserver [fs]"],
        4: ["web 02 (canary)", "web-01"],
    }
    why = {c.vm: c.reason for c in made.choices}
    assert why["dc01"] == "infrastructure (domain controller, directory, DNS): its name has 'dc'"
    assert "database" in why["db [primary]"]
    # Editable afterwards: a normal plan in the store.
    planlab.store.plans.add(made.plan)
    assert planlab.store.plans.get("One click") == made.plan
    picked = auto.from_vms(planlab.store, "Picked", ["web-01", "dc02", "app-02"])
    assert [it.vm for it in picked.plan.items] == ["dc02", "app-02", "web-01"]
    folder = auto.from_folder(planlab.store, "Infra folder", "Infrastructure")
    assert folder.plan.items and {it.vm for it in folder.plan.items} <= set(VMS)


def test_readiness_catches_mapping_reip_and_rpo(planlab: PlanLab) -> None:
    store = planlab.store
    job = store.jobs.get(planlab.job)
    made = auto.from_job(store, "Ready?", planlab.job, delay_after=2)
    store.plans.add(made.plan)
    report = check_plan(store, "Ready?")
    kinds = {p.check for p in report.problems}
    assert not kinds & {"rpo", "network", "reip", "replica", "state"}, report.problems
    # The lab's DR hosts (2 x 2 cores, 4 GiB) cannot hold these 10 VMs: said, with the numbers.
    assert (
        report.capacity["vcpus_needed"] == sum(1 + i % 4 for i in range(10))
        and report.capacity["cores"] == 4
    )
    assert report.estimated_seconds >= 3 * 2  # three group boundaries of 2 s delays
    assert report.delays_seconds >= 6

    # A network mapping removed: the NICs on "Prod App" would come up disconnected.
    rows = tuple(m for m in job.network.mappings if m.source != "Prod App")
    store.jobs.update(replace(job, network=NetworkMap(rows)))
    report = check_plan(store, "Ready?")
    net = [p for p in report.problems if p.check == "network"]
    assert net and all("'Prod App'" in p.message for p in net)
    assert net[0].fix == (
        f"add a row for its network to the network mapping of job {planlab.job!r}"
    )
    # NICs are named by their place, adapter and MAC, not by the device label.
    assert all(
        re.match(r"NIC \d \([a-z0-9]+, ([0-9a-f]{2}:){5}[0-9a-f]{2}\) on ", p.message) for p in net
    ), [p.message for p in net]
    store.jobs.update(job)

    # Re-IP rules that miss a subnet of a VM.
    give_addresses(planlab.lab, "web 02 (canary)", [("172.17.5.20", "255.255.0.0")])
    store.jobs.update(replace(job, reip=(ReIpRule("10.1.2.0/24", "10.201.2.0/24"),)))
    report = check_plan(store, "Ready?")
    (miss,) = [p for p in report.problems if p.check == "reip"]
    assert miss.item == "web 02 (canary)" and "172.17.5.20" in miss.message
    assert "re-IP rule" in miss.fix
    store.jobs.update(job)

    # A day later without a run: every VM is beyond its 24 h RPO.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=25)
    report = check_plan(store, "Ready?", at=later)
    rpo = [p for p in report.problems if p.check == "rpo"]
    assert {p.item for p in rpo} == set(VMS)
    assert "beyond the RPO" in rpo[0].message and "run job" in rpo[0].fix
    alarms = violations(store, planlab.job, at=later)
    assert {v.vm for v in alarms} == set(VMS) and "beyond the RPO of 24 h" in alarms[0].message
    assert violations(store, planlab.job) == []


def test_estimated_recovery_time_uses_measured_times(planlab: PlanLab) -> None:
    store = planlab.store
    plan = auto.from_vms(store, "Timed", ["dc01", "db [primary]"], delay_after=1).plan
    store.plans.add(plan)
    before = check_plan(store, "Timed")
    assert not any(t.measured for t in before.timings)
    assert before.estimated_seconds == 2 * ASSUMED_UP + 1
    run_plan(store, "Timed", reip_timeout=30)
    undo_plan(store, "Timed")
    after = check_plan(store, "Timed")
    assert all(t.measured for t in after.timings)
    total, delays = simulate(plan, {t.item: t.seconds for t in after.timings})
    assert after.estimated_seconds == pytest.approx(total) and delays == pytest.approx(1)
    assert total < 2 * ASSUMED_UP
