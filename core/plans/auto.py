"""One-click planning: a failover plan built from a job, a folder or a list of VMs.

The order is the one a DR runbook follows, inferred from each VM's name (split into words at
spaces, dashes, dots, brackets and digits) and guest OS: infrastructure first (domain
controllers, directory and name servers: `dc`, `ad`, `dns`...), then databases (`db`, `sql`,
`postgres`, `mysql`, `oracle`...), then application tiers (everything not recognised lands here
too), then web and front ends (`web`, `www`, `frontend`, `proxy`, `lb`...), as priority groups
1 to 4; inside a group, VMs boot by name. A Windows server guest whose name says nothing is an
application. Every item gets the default delay and heartbeat wait; the plan is a normal plan,
edited afterwards like any other (`replicadesk plan edit`). Each VM's reason is reported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import PlanError, ReplicaDeskError
from core.jobs import servers
from core.model.plans import DEFAULT_DELAY, FailoverPlan, PlanItem
from core.model.replicas import Replica
from core.store.store import Store
from core.vsphere.inventory import read_inventory

TIERS: tuple[tuple[int, str, frozenset[str]], ...] = (
    (
        1,
        "infrastructure (domain controller, directory, DNS)",
        frozenset({"dc", "ad", "adds", "dns", "ldap", "domain", "pdc", "bdc", "dhcp", "ntp"}),
    ),
    (
        2,
        "database",
        frozenset(
            {
                "db",
                "sql",
                "mssql",
                "postgres",
                "postgresql",
                "pg",
                "pgsql",
                "mysql",
                "mariadb",
                "oracle",
                "ora",
                "mongo",
                "mongodb",
                "redis",
                "database",
                "dwh",
            }
        ),
    ),
    (
        4,
        "web / front end",
        frozenset(
            {
                "web",
                "www",
                "front",
                "frontend",
                "fe",
                "nginx",
                "iis",
                "apache",
                "proxy",
                "lb",
                "portal",
                "dmz",
            }
        ),
    ),
    (
        3,
        "application",
        frozenset(
            {
                "app",
                "api",
                "cache",
                "mq",
                "erp",
                "batch",
                "be",
                "backend",
                "worker",
                "crm",
                "mail",
                "exchange",
                "file",
                "fs",
            }
        ),
    ),
)
_WORDS = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Choice:
    vm: str
    job: str
    priority: int
    reason: str


@dataclass(frozen=True)
class AutoPlan:
    plan: FailoverPlan
    choices: tuple[Choice, ...]


def classify(name: str, guest_id: str = "") -> tuple[int, str]:
    """(priority group, why) for a VM's name and guest OS id."""
    words = _WORDS.findall(name.lower())
    for priority, what, keys in TIERS:
        hit = next((w for w in words if w in keys), None)
        if hit is not None:
            return priority, f"{what}: its name has {hit!r}"
    guest = f" (guest {guest_id})" if guest_id else ""
    return 3, f"application: nothing in its name says otherwise{guest}"


def build(
    name: str,
    replicas: Sequence[Replica],
    guests: dict[str, str] | None = None,
    *,
    delay_after: float = DEFAULT_DELAY,
    description: str = "",
) -> AutoPlan:
    """The plan for these replicas; `guests`: the replica's guest OS id by replica moref."""
    if not replicas:
        raise PlanError(name, "no replicated VM was selected: nothing to plan")
    guests = guests or {}
    choices = []
    for r in replicas:
        priority, why = classify(r.vm_name, guests.get(r.replica_moref or "", ""))
        choices.append(Choice(r.vm_name, r.job, priority, why))
    choices.sort(key=lambda c: (c.priority, c.vm.lower(), c.job))
    items = tuple(
        PlanItem(c.vm, job=c.job, priority=c.priority, delay_after=delay_after) for c in choices
    )
    text = description or "built by one-click planning: " + ", ".join(
        f"{sum(1 for c in choices if c.priority == p)} in group {p}"
        for p in sorted({c.priority for c in choices})
    )
    return AutoPlan(FailoverPlan(name, items, text), tuple(choices))


def _guests(store: Store, replicas: Sequence[Replica]) -> dict[str, str]:
    """Guest OS ids of the replica VMs, read from their DR servers (what answers)."""
    out: dict[str, str] = {}
    for server in sorted({r.target_server for r in replicas}):
        try:
            with servers.connect_stored(store, server, keepalive=False) as client:
                inv = read_inventory(client)
        except ReplicaDeskError:
            continue
        for r in replicas:
            if r.target_server == server and r.replica_moref and inv.has(r.replica_moref):
                out[r.replica_moref] = inv.vm(r.replica_moref).guest_id
    return out


def from_job(store: Store, name: str, job: str, **kw: object) -> AutoPlan:
    store.jobs.get(job)  # NotFoundError for a job that does not exist
    replicas = store.replicas.list(job)
    return build(name, replicas, _guests(store, replicas), **kw)  # type: ignore[arg-type]


def from_vms(store: Store, name: str, vms: Sequence[str], **kw: object) -> AutoPlan:
    """VMs by name or moref; each must have exactly one replica."""
    from core.plans.resolve import find_replica

    replicas = [find_replica(store, name, PlanItem(vm)) for vm in vms]
    return build(name, replicas, _guests(store, replicas), **kw)  # type: ignore[arg-type]


def from_folder(store: Store, name: str, folder: str, **kw: object) -> AutoPlan:
    """Every replicated VM in a production VM folder (a path such as "Apps/Data"), below it too."""
    wanted = tuple(p for p in folder.split("/") if p)
    all_replicas = store.replicas.list()
    chosen: list[Replica] = []
    for server in sorted({r.source_server for r in all_replicas}):
        try:
            with servers.connect_stored(store, server, keepalive=False) as client:
                inv = read_inventory(client)
        except ReplicaDeskError as e:
            raise PlanError(name, f"the folder's vCenter {server} cannot be read: {e}") from e
        in_folder = {v.moref for v in inv.vms if v.folder_path[: len(wanted)] == wanted}
        chosen += [r for r in all_replicas if r.source_server == server and r.vm_moref in in_folder]
    if not chosen:
        raise PlanError(name, f"no replicated VM is in folder {folder!r}")
    return build(name, chosen, _guests(store, chosen), **kw)  # type: ignore[arg-type]
