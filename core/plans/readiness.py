"""The readiness report of a failover plan: can it run now, and how long will it take?

Checked without changing anything (the DR server is read, the production vCenter too when it
answers): every item has a replica, in a state a failover accepts; its newest restore point is
within its job's RPO; every NIC of it goes to a DR network that exists (the job's network
mapping, as failover applies it, core.failover.networks); when the job has re-IP rules, every
source address has a rule (core.failover.reip, from the source VM's addresses or those the last
run saw); and the DR site has the CPU, memory and datastore space for the whole plan. Capacity
rules: the plan's memory must fit in the DR hosts' memory not used now; its vCPUs within
`VCPU_PER_CORE` per physical core; on each datastore, its VMs' swap files (their memory) plus
`GROWTH` of their disks' capacity (what the running VMs write goes into new delta files). Each
problem says how to fix it. The estimated recovery time is the plan's own schedule (groups,
dependencies, delays, parallelism; core.plans.schedule's rules) over each VM's measured time
from start to up (the latest plan runs and failovers of its replica), or `ASSUMED_UP` seconds
when it was never measured.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.errors import FailoverError, PlanError, ReplicaDeskError
from core.failover import networks, reip
from core.failover.session import FAILED_OVER
from core.jobs import servers
from core.model.plans import FailoverPlan, StepKind
from core.model.replicas import Replica, ReplicaState
from core.model.runs import RunTrigger
from core.plans.resolve import Resolved, find_replica
from core.store.store import Store
from core.vsphere.connection import VSphereClient
from core.vsphere.inventory import read_inventory
from core.vsphere.models import Inventory, Vm
from core.vsphere.props import retrieve

VCPU_PER_CORE = 4
GROWTH = 0.10
ASSUMED_UP = 30.0
MIB = 1 << 20


@dataclass(frozen=True)
class Problem:
    check: str  # replica, state, rpo, network, reip, cpu, memory, datastore
    message: str
    fix: str
    item: str = ""  # "" for the whole plan


@dataclass(frozen=True)
class ItemTiming:
    item: str
    seconds: float  # start to up
    measured: bool


@dataclass(frozen=True)
class Readiness:
    plan: str
    problems: tuple[Problem, ...]
    notes: tuple[str, ...]
    timings: tuple[ItemTiming, ...]
    estimated_seconds: float  # from "run plan" to every VM up, delays included
    delays_seconds: float  # the part of it that is waiting for delays
    capacity: dict[str, float] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return not self.problems


def _rpo(store: Store, item: str, replica: Replica, at: dt.datetime) -> list[Problem]:
    job = store.jobs.get(replica.job)
    rpo = dt.timedelta(minutes=job.settings.rpo_minutes)
    latest = store.replicas.latest_point(replica.id)
    if latest is None:
        return [
            Problem(
                "rpo", f"{replica.vm_name!r} has no restore point", f"run job {job.name!r}", item
            )
        ]
    age = at - latest.created
    if age > rpo:
        return [
            Problem(
                "rpo",
                f"the newest restore point of {replica.vm_name!r} is {_span(age)} old, "
                f"beyond the RPO of job {job.name!r} ({_span(rpo)})",
                f"run job {job.name!r} (and check why its schedule did not)",
                item,
            )
        ]
    return []


def _span(d: dt.timedelta) -> str:
    s = d.total_seconds()
    if s >= 2 * 3600:
        return f"{s / 3600:.1f} h"
    if s >= 120:
        return f"{s / 60:.0f} min"
    return f"{s:.0f} s"


def _vm_checks(
    store: Store, r: Resolved, client: VSphereClient, vm: Vm, source: Vm | None
) -> list[Problem]:
    job = store.jobs.get(r.replica.job)
    out = []
    try:
        for nic in networks.plan(client, job, vm, source):
            if nic.target is None and nic.note:
                out.append(
                    Problem(
                        "network",
                        nic.note,
                        f"add a row for its network to the network mapping of job {job.name!r}",
                        r.name,
                    )
                )
    except FailoverError as e:
        out.append(
            Problem(
                "network",
                str(e),
                f"map the network to an existing DR network in job {job.name!r}",
                r.name,
            )
        )
    if job.reip:
        p = reip.plan(job.reip, vm, source, known=r.replica.guest_addresses)
        for problem in p.problems if p is not None else ():
            out.append(
                Problem(
                    "reip",
                    f"{r.replica.vm_name!r}: {problem}",
                    f"add a re-IP rule for that subnet to job {job.name!r}",
                    r.name,
                )
            )
    return out


def _host_capacity(client: VSphereClient, inv: Inventory) -> tuple[int, float, float]:
    """(physical cores, memory MiB, memory MiB in use) of the connected DR hosts."""
    hosts = [h for h in inv.hosts if h.connection_state == "connected" and not h.in_maintenance]
    props = retrieve(
        client,
        [client.obj("HostSystem", h.moref) for h in hosts],
        [
            "summary.hardware.numCpuCores",
            "summary.hardware.memorySize",
            "summary.quickStats.overallMemoryUsage",
        ],
        "read the DR hosts' capacity",
    )
    cores = sum(int(p.get("summary.hardware.numCpuCores", 0) or 0) for p in props.values())
    memory = sum(int(p.get("summary.hardware.memorySize", 0) or 0) for p in props.values()) / MIB
    used = sum(
        float(p.get("summary.quickStats.overallMemoryUsage", 0) or 0) for p in props.values()
    )
    return cores, memory, used


def _measured(store: Store, replica: Replica) -> float | None:
    """Median seconds from start to up of the replica in past plan runs, else of its past
    failovers (session spans)."""
    spans = []
    for s in store.plan_sessions.list(limit=20):
        full = store.plan_sessions.get(s.id)
        start = {x.replica_id: x.time for x in full.of(StepKind.START) if x.replica_id}
        for up in full.of(StepKind.UP):
            if up.replica_id == replica.id and replica.id in start:
                spans.append((up.time - start[replica.id]).total_seconds())
    if not spans:
        for sess in store.sessions.list(replica.job, limit=200):
            if sess.trigger != RunTrigger.FAILOVER or sess.ended is None:
                continue
            if any(t.vm_moref == replica.vm_moref for t in store.sessions.tasks(sess.id)):
                spans.append((sess.ended - sess.started).total_seconds())
    return statistics.median(spans) if spans else None


def simulate(plan: FailoverPlan, seconds: dict[str, float]) -> tuple[float, float]:
    """(total, of which waiting for delays) of the plan's schedule when item X takes
    seconds[X] from start to up."""
    now = 0.0
    delays = 0.0
    groups = plan.groups()
    for gi, (_, items) in enumerate(groups):
        up: dict[str, float] = {}
        ready: dict[str, float] = {}
        running: list[tuple[float, str]] = []
        pending = list(items)
        t = now
        while pending or running:
            started = False
            for it in list(pending):
                if len(running) >= plan.max_parallel:
                    break
                if all(d in ready and ready[d] <= t for d in it.depends_on):
                    pending.remove(it)
                    running.append((t + seconds.get(it.name, ASSUMED_UP), it.name))
                    started = True
            if started:
                continue
            candidates = [e for e, _ in running]
            waits = [
                max(ready[d] for d in it.depends_on)
                for it in pending
                if it.depends_on and all(d in ready for d in it.depends_on)
            ]
            candidates += [w for w in waits if w > t]
            if not candidates:
                break
            nxt = min(candidates)
            if not running:
                delays += nxt - t
            t = nxt
            for end, name in [x for x in running if x[0] <= t]:
                running.remove((end, name))
                up[name] = end
                ready[name] = end + plan.item(name).delay_after
        now = max(up.values(), default=t)
        if gi < len(groups) - 1 and ready:
            until = max(ready.values())
            if until > now:
                delays += until - now
                now = until
    return now, delays


def check_plan(store: Store, name: str, at: dt.datetime | None = None) -> Readiness:
    """The readiness report of plan `name` (`at`: the time RPOs are measured at, default now)."""
    plan = store.plans.get(name)
    at = at or dt.datetime.now(dt.UTC)
    problems: list[Problem] = []
    notes: list[str] = []
    resolved: list[Resolved] = []
    for it in plan.items:
        try:
            resolved.append(Resolved(it, find_replica(store, plan.name, it)))
        except PlanError as e:
            problems.append(Problem("replica", str(e), "replicate the VM or fix the item", it.name))
    to_start: list[Resolved] = []
    for r in resolved:
        state = r.replica.state
        if state in FAILED_OVER or state == ReplicaState.PERMANENT_FAILOVER:
            notes.append(f"{r.name!r} is failed over already ({state}): the run skips it")
        elif state != ReplicaState.READY:
            problems.append(
                Problem(
                    "state",
                    f"{r.replica.replica_name!r} is {state}: a failover needs it Ready",
                    "finish or undo what it is in (see `replicadesk replica show`)",
                    r.name,
                )
            )
        else:
            to_start.append(r)
            problems += _rpo(store, r.name, r.replica, at)
    capacity: dict[str, float] = {}
    for server in sorted({r.replica.target_server for r in to_start}):
        mine = [r for r in to_start if r.replica.target_server == server]
        problems += _site_checks(store, server, mine, capacity, notes)
    timings = []
    per_item: dict[str, float] = {}
    for r in resolved:
        measured = _measured(store, r.replica)
        seconds = measured if measured is not None else ASSUMED_UP
        if r not in to_start:
            seconds = 0.0
        per_item[r.name] = seconds
        timings.append(ItemTiming(r.name, seconds, measured is not None))
    total, delays = simulate(plan, per_item)
    return Readiness(
        plan.name, tuple(problems), tuple(notes), tuple(timings), total, delays, capacity
    )


def _site_checks(
    store: Store,
    server: str,
    items: Sequence[Resolved],
    capacity: dict[str, float],
    notes: list[str],
) -> list[Problem]:
    out: list[Problem] = []
    try:
        client = servers.connect_stored(store, server, keepalive=False)
    except ReplicaDeskError as e:
        return [
            Problem(
                "site",
                f"the DR server {server} cannot be reached: {e}",
                "check the DR server's address and credentials",
            )
        ]
    with client:
        inv = read_inventory(client)
        sources = _sources(store, items, notes)
        vms: list[tuple[Resolved, Vm]] = []
        for r in items:
            moref = r.replica.replica_moref
            if not moref or not inv.has(moref):
                out.append(
                    Problem(
                        "replica",
                        f"the replica VM of {r.replica.vm_name!r} is not on {server}",
                        f"run job {r.replica.job!r} again to recreate it",
                        r.name,
                    )
                )
                continue
            vm = inv.vm(moref)
            vms.append((r, vm))
            out += _vm_checks(store, r, client, vm, sources.get(r.replica.id))
        cores, memory, used = _host_capacity(client, inv)
        need_cpu = sum(vm.cpus for _, vm in vms)
        need_mem = sum(vm.memory_mb for _, vm in vms)
        capacity.update(
            {
                "cores": cores,
                "vcpus_needed": need_cpu,
                "memory_mib": memory,
                "memory_used_mib": used,
                "memory_needed_mib": need_mem,
            }
        )
        if need_cpu > cores * VCPU_PER_CORE:
            out.append(
                Problem(
                    "cpu",
                    f"the plan starts {need_cpu} vCPUs on {cores} physical cores at {server} "
                    f"(more than {VCPU_PER_CORE} per core)",
                    "add DR hosts, or move VMs to another plan run after this one",
                )
            )
        if need_mem > memory - used:
            out.append(
                Problem(
                    "memory",
                    f"the plan needs {need_mem / 1024:.1f} GiB of memory; the DR hosts at "
                    f"{server} have {(memory - used) / 1024:.1f} GiB free",
                    "add memory or hosts at the DR site, or split the plan",
                )
            )
        per_ds: dict[str, float] = {}
        for _, vm in vms:
            ds = next(iter({d.datastore for d in vm.disks}), "")
            per_ds[ds] = (
                per_ds.get(ds, 0.0)
                + vm.memory_mb * MIB
                + GROWTH * sum(d.capacity for d in vm.disks)
            )
        for moref, need in per_ds.items():
            store_ = next((d for d in inv.datastores if d.moref == moref), None)
            if store_ is None:
                continue
            capacity[f"datastore {store_.name} needed bytes"] = need
            capacity[f"datastore {store_.name} free bytes"] = store_.free
            if need > store_.free:
                out.append(
                    Problem(
                        "datastore",
                        f"datastore {store_.name} has {store_.free / (1 << 30):.1f} GiB free; the "
                        f"running VMs need about {need / (1 << 30):.1f} GiB (swap files and "
                        f"{GROWTH:.0%} of their disks for what they write)",
                        "free space on the datastore or move replicas to another",
                    )
                )
    return out


def _sources(store: Store, items: Sequence[Resolved], notes: list[str]) -> dict[int, Vm]:
    """The source VMs as production sees them now (by replica id); none when it is gone."""
    out: dict[int, Vm] = {}
    for server in sorted({r.replica.source_server for r in items}):
        try:
            with servers.connect_stored(store, server, keepalive=False) as client:
                inv = read_inventory(client)
        except ReplicaDeskError as e:
            notes.append(
                f"the production server {server} was not reached ({e}): networks and "
                "addresses are checked from what the last runs saw"
            )
            continue
        for r in items:
            if r.replica.source_server == server and inv.has(r.replica.vm_moref):
                out[r.replica.id] = inv.vm(r.replica.vm_moref)
    return out
