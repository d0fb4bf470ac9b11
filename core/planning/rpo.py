"""RPO violations: a VM whose newest restore point is older than its job's RPO.

The job's `settings.rpo_minutes` (24 h by default) is the recovery point objective. A replica
with no restore point at all is a violation too (it has nothing to fail over to). Replicas
failed over permanently are production now and not checked. Read from the store only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from core.errors import NotFoundError
from core.store.store import Store


@dataclass(frozen=True)
class RpoViolation:
    job: str
    replica_id: int
    vm: str
    rpo_minutes: int
    newest: dt.datetime | None  # None: no restore point yet
    age_seconds: float | None

    @property
    def message(self) -> str:
        if self.newest is None or self.age_seconds is None:
            return f"{self.vm!r} (job {self.job!r}) has no restore point: run the job"
        hours = self.age_seconds / 3600
        return (
            f"{self.vm!r} (job {self.job!r}): its newest restore point is {hours:.1f} h old, "
            f"beyond the RPO of {self.rpo_minutes / 60:g} h: run the job and check its schedule"
        )


def violations(
    store: Store, job: str | None = None, at: dt.datetime | None = None
) -> list[RpoViolation]:
    """Every RPO violation now (or at `at`), of one job or of all."""
    at = at or dt.datetime.now(dt.UTC)
    out = []
    for name in [job] if job else store.jobs.names():
        try:
            settings = store.jobs.get(name).settings
        except NotFoundError:
            continue
        rpo = dt.timedelta(minutes=settings.rpo_minutes)
        for r in store.replicas.list(name):
            latest = store.replicas.latest_point(r.id)
            if latest is None:
                out.append(RpoViolation(name, r.id, r.vm_name, settings.rpo_minutes, None, None))
            elif at - latest.created > rpo:
                age = (at - latest.created).total_seconds()
                out.append(
                    RpoViolation(name, r.id, r.vm_name, settings.rpo_minutes, latest.created, age)
                )
    return out
