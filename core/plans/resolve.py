"""Each item of a plan matched with its replica in the store, before anything runs.

An item names a replica by id, or a source VM by name or moref (optionally with its job). A VM
replicated by several jobs needs its job; a VM with no replica is an error naming it. Replicas
failed over permanently are still found (the run skips them: they run as production already).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from core.errors import NotFoundError, PlanError
from core.model.plans import FailoverPlan, PlanItem
from core.model.replicas import Replica, ReplicaState, RestorePoint
from core.store.store import Store


@dataclass(frozen=True)
class Resolved:
    item: PlanItem
    replica: Replica

    @property
    def name(self) -> str:
        return self.item.name


def find_replica(store: Store, plan: str, item: PlanItem) -> Replica:
    if item.replica is not None:
        try:
            return store.replicas.get(item.replica)
        except NotFoundError:
            raise PlanError(plan, f"{item.name}: there is no replica {item.replica}") from None
    found = [
        r
        for r in store.replicas.list(item.job or None, include_permanent=True)
        if item.vm in (r.vm_name, r.vm_moref)
    ]
    if len(found) > 1:
        live = [r for r in found if r.state != ReplicaState.PERMANENT_FAILOVER]
        found = live or found
    if not found:
        where = f" in job {item.job!r}" if item.job else ""
        raise PlanError(plan, f"VM {item.vm!r} has no replica{where}: replicate it first")
    if len(found) > 1:
        jobs = ", ".join(sorted(repr(r.job) for r in found))
        raise PlanError(
            plan, f"VM {item.vm!r} is replicated by several jobs ({jobs}): give the item's job"
        )
    return found[0]


def resolve(store: Store, plan: FailoverPlan) -> list[Resolved]:
    out = [Resolved(it, find_replica(store, plan.name, it)) for it in plan.items]
    seen: dict[int, str] = {}
    for r in out:
        other = seen.get(r.replica.id)
        if other is not None:
            raise PlanError(
                plan.name,
                f"{r.name!r} and {other!r} are the same replica ({r.replica.replica_name!r}): "
                "list it once",
            )
        seen[r.replica.id] = r.name
    return out


def point_at(store: Store, plan: str, replica: Replica, when: dt.datetime) -> RestorePoint:
    """The replica's newest restore point made at or before `when`."""
    points = [p for p in store.replicas.points(replica.id) if p.created <= when]
    if not points:
        first = store.replicas.points(replica.id)
        since = f" (its oldest is of {first[0].created:%Y-%m-%d %H:%M:%S} UTC)" if first else ""
        raise PlanError(
            plan,
            f"{replica.vm_name!r} has no restore point at or before "
            f"{when.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC{since}",
        )
    return points[-1]
