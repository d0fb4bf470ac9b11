"""Failover plan benchmark: time from "run plan" to all 10 VMs powered on with re-IP verified,
minus the configured delays (the target is under 60 s on the lab).

Starts the lab (12 VMs, 8-16 MiB thin disks), gives the 10 plan VMs guest addresses in
172.17.0.0/16 (and 10.1.0.0/16 on a second NIC), replicates them with two re-IP rules
(172.17.*.* -> 192.168.*.*, 10.1.0.0/16 -> 10.201.0.0/16), runs a plan of the 10 VMs in three
priority groups with 1 s delays (heartbeat waited), and reads the plan session: the span from
its start to the last VM's re-IP-verified power-on, the delays waited (WAIT steps), and each
VM's start-to-powered-on time; checks every guest reports its new addresses; then undoes the
plan. `python benchmarks/plan_bench.py [--json]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.jobs.runner import run_job
from core.lab.lab import Lab
from core.lab.register import inventories, lab_job, register_lab
from core.lab.topology import LabOptions, vm_names
from core.model.plans import FailoverPlan, PlanItem, StepKind
from core.model.reip import ReIpRule
from core.model.replicas import ReplicaState
from core.plans.run import run_plan, undo_plan
from core.store.store import Store
from core.vsphere import power
from core.vsphere.connection import VSphereClient
from core.vsphere.customization import Customization, NicIp, customize_vm

GROUPS = {
    1: ["dc01", "dc02"],
    2: ["db #2 & replica", "db [primary]", "app+cache", "app-02", "50% batch"],
    3: ["web 02 (canary)", "web-01", "Zürich fileserver [fs]"],
}
DELAY = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    names = vm_names(10)
    with tempfile.TemporaryDirectory(prefix="plan-bench-") as tmp:
        work = Path(tmp)
        with (
            Lab(
                LabOptions(vms=12, disk_mib=(8, 16)), folder=work / "lab", wan=os.geteuid() == 0
            ) as lab,
            Store.open(work / "replicadesk.db") as store,
        ):
            register_lab(store, lab, work / "metadata")
            prod, _ = inventories(lab)
            p = lab.production
            expected: dict[str, list[str]] = {}
            with VSphereClient.connect(
                p.address, p.port, lab.user, lab.password, protocol="http"
            ) as c:
                for i, name in enumerate(names):
                    (vm,) = prod.vms_named(name)
                    nics = [NicIp(f"172.17.{i}.{10 + i}", "255.255.0.0")]
                    expected[name] = [f"192.168.{i}.{10 + i}"]
                    if len(vm.nics) > 1:
                        nics.append(NicIp(f"10.1.{i}.{20 + i}", "255.255.0.0"))
                        expected[name].append(f"10.201.{i}.{20 + i}")
                    power.power_off(c, vm.moref)
                    customize_vm(c, vm.moref, Customization("linux", f"src{i}", tuple(nics)))
                    power.power_on(c, vm.moref)
                    power.wait_for_guest_ips(c, vm.moref, [n.ip for n in nics], timeout=30)
            rules = (
                ReIpRule(
                    "172.17.*.*",
                    "192.168.*.*",
                    source_mask="255.255.0.0",
                    target_mask="255.255.0.0",
                    gateway="192.168.0.1",
                ),
                ReIpRule("10.1.0.0/16", "10.201.0.0/16", gateway="10.201.0.1"),
            )
            job = replace(lab_job(lab, "Bench", names), reip=rules)
            store.jobs.add(job)
            t = time.monotonic()
            session = run_job(store, job.name)
            replicate_s = time.monotonic() - t
            items = tuple(
                PlanItem(vm, priority=p, delay_after=DELAY, heartbeat_timeout=30)
                for p, vms in GROUPS.items()
                for vm in vms
            )
            store.plans.add(FailoverPlan("Bench plan", items))
            t = time.monotonic()
            result = run_plan(store, "Bench plan", reip_timeout=60)
            wall = time.monotonic() - t
            plan_session = store.plan_sessions.get(result.session_id)
            start = {s.item: s.time for s in plan_session.of(StepKind.START)}
            on = {s.item: s.time for s in plan_session.of(StepKind.POWERED_ON)}
            up = {s.item: s.time for s in plan_session.of(StepKind.UP)}
            waited = sum(s.seconds for s in plan_session.of(StepKind.WAIT))
            to_on = (max(on.values()) - plan_session.started).total_seconds()
            to_up = (max(up.values()) - plan_session.started).total_seconds()
            per_vm = {vm: (on[vm] - start[vm]).total_seconds() for vm in on}
            states = {r.vm_name: r.state for r in store.replicas.list(job.name)}
            _, dr = inventories(lab)
            verified = 0
            for r in store.replicas.list(job.name):
                ips = set(dr.vm(r.replica_moref or "").guest_ips)
                if set(expected[r.vm_name]) <= ips and r.state == ReplicaState.FAILOVER:
                    verified += 1
            t = time.monotonic()
            undo = undo_plan(store, "Bench plan")
            undo_s = time.monotonic() - t
            figures = {
                "vms": len(names),
                "groups": len(GROUPS),
                "delay_after_s": DELAY,
                "replication_run_s": round(replicate_s, 2),
                "replication_status": str(session.status),
                "plan_status": str(result.status),
                "reip_verified_vms": verified,
                "states": sorted({str(s) for s in states.values()}),
                "run_to_all_powered_on_reip_verified_s": round(to_on, 3),
                "delays_waited_s": round(waited, 3),
                "result_minus_delays_s": round(to_on - waited, 3),
                "run_to_all_heartbeats_s": round(to_up, 3),
                "heartbeats_minus_delays_s": round(to_up - waited, 3),
                "plan_call_wall_s": round(wall, 3),
                "per_vm_start_to_powered_on_s": {
                    "median": round(statistics.median(per_vm.values()), 3),
                    "max": round(max(per_vm.values()), 3),
                },
                "undo_s": round(undo_s, 3),
                "undo_status": str(undo.status),
                "target_s": 60,
            }
    if args.json:
        json.dump(figures, sys.stdout, indent=2)
        print()
    else:
        for k, v in figures.items():
            print(f"{k:42} {v}")
    return 0 if figures["reip_verified_vms"] == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())
