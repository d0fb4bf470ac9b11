"""Bandwidth estimation for a job: can its RPO be met over this link, and how long is the seed?

Measured from the job's past replication sessions (successful or with warnings):
- the first full copy: the first session's read bytes (what was copied: allocated, non-zero
  data) and its processed bytes (the disks' size);
- the change rate: each later session read the blocks changed since the previous one (CBT's
  answer, or the blocks whose digests differed), so changed bytes / time between the two
  sessions' starts is the rate the VMs change at; summed over the sessions, it is per RPO
  interval `rate * rpo`;
- the compression ratio: transferred / read bytes over all sessions (1.0 when onsite: nothing
  compressed).
Or probed through CBT (`probe_changes`): for each VM, a snapshot is taken, the areas changed
since the latest restore point's change IDs are asked (QueryChangedDiskAreas), and the snapshot
removed; nothing is copied. Then, for a `Link` (Mbit/s, with throttling windows that cap it at
some hours, shared equally by the jobs under the rule):
- required bandwidth = change per RPO interval * ratio / RPO (the changes must travel as fast
  as they are made), against the slowest hour the job's window allows;
- first full copy time: hour by hour from `start`, sending only in the job's window at the
  rate the link allows that hour;
- the job fits its window when one RPO interval's changes, sent the same way, arrive within
  the RPO (closed window hours count as time passing).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import PlanningError, ReplicaDeskError
from core.jobs import servers
from core.model import fields
from core.model.runs import REPLICATION_TRIGGERS, RunStatus, Session
from core.model.schedule import ALL_DAYS, BackupWindow
from core.store.store import Store
from core.vsphere import cbt, snapshots

MBIT = 1_000_000 / 8  # bytes per second in one Mbit/s
MAX_HOURS = 24 * 365  # a seed that takes longer is reported as not finishing


@dataclass(frozen=True)
class Throttle:
    """A traffic rule's limit at some hours (of some weekdays; 0 = Monday)."""

    mbit: float
    hours: frozenset[int]
    days: frozenset[int] = ALL_DAYS

    def __post_init__(self) -> None:
        if not isinstance(self.mbit, int | float) or self.mbit <= 0:
            raise PlanningError(f"a throttle of {self.mbit!r} Mbit/s is not a positive rate")
        for h in self.hours:
            fields.integer("hours", h, 0, 23)
        for d in self.days:
            fields.integer("days", d, 0, 6)


@dataclass(frozen=True)
class Link:
    mbit: float
    throttles: tuple[Throttle, ...] = ()
    sharing_jobs: int = 1  # jobs under the same rule split it equally

    def __post_init__(self) -> None:
        if not isinstance(self.mbit, int | float) or self.mbit <= 0:
            raise PlanningError(f"a link of {self.mbit!r} Mbit/s is not a positive rate")
        if self.sharing_jobs < 1:
            raise PlanningError("a link is shared by at least one job")

    def rate_at(self, when: dt.datetime) -> float:
        """Bytes per second one job gets at `when`."""
        mbit = self.mbit
        for t in self.throttles:
            if when.weekday() in t.days and when.hour in t.hours:
                mbit = min(mbit, t.mbit)
        return mbit * MBIT / self.sharing_jobs


@dataclass(frozen=True)
class Measured:
    sessions: int
    full_bytes: int  # what the first full copy read (allocated data)
    disk_bytes: int  # what it processed (the disks' size)
    changed_bytes: int  # read by the incremental sessions
    span_seconds: float  # time the incremental sessions cover
    read_bytes: int
    transferred_bytes: int
    source: str  # "sessions" or "cbt probe"

    @property
    def change_rate(self) -> float:
        """Bytes changed per second."""
        return self.changed_bytes / self.span_seconds if self.span_seconds > 0 else 0.0

    @property
    def ratio(self) -> float:
        """Bytes sent per byte read (compression and zero skipping): 1.0 when not measured."""
        return self.transferred_bytes / self.read_bytes if self.read_bytes else 1.0


@dataclass(frozen=True)
class Estimate:
    job: str
    rpo_minutes: int
    measured: Measured
    changed_per_rpo: float  # bytes
    required_mbit: float  # to keep up with the changes within the RPO
    worst_mbit: float  # the slowest hour the job's window allows
    meets_rpo: bool
    first_copy_hours: float | None  # None: not done within a year
    run_hours: float | None  # sending one RPO interval's changes, in window hours only
    fits_window: bool  # that run ends within the RPO, its window's closed hours included
    notes: tuple[str, ...]


def _runs(store: Store, job: str) -> list[Session]:
    sessions = [
        s
        for s in store.sessions.list(job, limit=10_000)
        if s.trigger in REPLICATION_TRIGGERS and s.status in (RunStatus.SUCCESS, RunStatus.WARNING)
    ]
    return sorted(sessions, key=lambda s: s.started)


def measure(store: Store, job: str) -> Measured:
    store.jobs.get(job)
    runs = _runs(store, job)
    if not runs:
        raise PlanningError(f"job {job!r} has no successful run to measure: run it once first")
    first, rest = runs[0], runs[1:]
    changed = sum(s.stats.read_bytes for s in rest)
    span = (rest[-1].started - first.started).total_seconds() if rest else 0.0
    return Measured(
        len(runs),
        first.stats.read_bytes,
        first.stats.processed_bytes,
        changed,
        span,
        sum(s.stats.read_bytes for s in runs),
        sum(s.stats.transferred_bytes for s in runs),
        "sessions",
    )


def probe_changes(store: Store, job: str) -> Measured:
    """The data changed since each VM's latest restore point, asked through CBT (a probe
    snapshot taken and removed; nothing is copied), with the ratio of past sessions."""
    base = measure(store, job)
    now = dt.datetime.now(dt.UTC)
    changed = 0
    span = 0.0
    for r in store.replicas.list(job):
        latest = store.replicas.latest_point(r.id)
        if latest is None or any(d.change_id is None for d in latest.disks):
            raise PlanningError(
                f"{r.vm_name!r} has no CBT change ID at its latest point: measure from "
                "sessions instead"
            )
        try:
            with servers.connect_stored(store, r.source_server, keepalive=False) as client:
                snap = snapshots.create_snapshot(
                    client,
                    r.vm_moref,
                    f"ReplicaDesk CBT probe {uuid.uuid4().hex[:8]}",
                    "change rate probe: no data is copied; removed at once",
                )
                store.run_snapshots.add(r.source_server, r.vm_moref, snap, None)
                try:
                    for d in latest.disks:
                        areas = cbt.changed_areas(
                            client, r.vm_moref, snap, d.disk_key, d.change_id or "*"
                        )
                        changed += areas.changed_bytes
                finally:
                    snapshots.remove_snapshot(client, r.vm_moref, snap)
                    store.run_snapshots.forget(r.source_server, r.vm_moref, snap)
        except ReplicaDeskError as e:
            raise PlanningError(f"the CBT probe of {r.vm_name!r} failed: {e}") from e
        span = max(span, (now - latest.created).total_seconds())
    return Measured(
        base.sessions,
        base.full_bytes,
        base.disk_bytes,
        changed,
        span,
        base.read_bytes,
        base.transferred_bytes,
        "cbt probe",
    )


def _hours(start: dt.datetime, window: BackupWindow, link: Link, count: int) -> list[float]:
    """Bytes per second the job gets in each of the `count` hours from `start`'s hour (0 when
    its window forbids running)."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    out = []
    for _ in range(count):
        out.append(link.rate_at(hour) if window.allows(hour) else 0.0)
        hour += dt.timedelta(hours=1)
    return out


def first_copy_hours(
    size: float, start: dt.datetime, window: BackupWindow, link: Link
) -> float | None:
    """Hours from `start` until `size` bytes are sent, in window hours only; None after a year."""
    left = size
    for i, rate in enumerate(_hours(start, window, link, MAX_HOURS)):
        if rate <= 0:
            continue
        if rate * 3600 >= left:
            return i + left / (rate * 3600)
        left -= rate * 3600
    return None


def estimate(
    store: Store,
    job: str,
    link: Link,
    *,
    start: dt.datetime | None = None,
    probe: bool = False,
) -> Estimate:
    definition = store.jobs.get(job)
    m = probe_changes(store, job) if probe else measure(store, job)
    rpo_s = definition.settings.rpo_minutes * 60.0
    window = definition.schedule.window or BackupWindow()
    start = start or dt.datetime.now(dt.UTC)
    notes = []
    if m.source == "sessions" and m.sessions < 2:
        notes.append("only the first full copy was measured: no change rate yet (run it again)")
    changed = m.change_rate * rpo_s
    required = changed * m.ratio / rpo_s
    week = _hours(start, window, link, 24 * 7)
    allowed = [r for r in week if r > 0]
    worst = min(allowed) if allowed else 0.0
    seed = first_copy_hours(m.full_bytes * m.ratio, start, window, link)
    run = first_copy_hours(changed * m.ratio, start, window, link)
    fits = run is not None and run * 3600 <= rpo_s
    if not allowed:
        notes.append("the job's window allows no hour this week")
    return Estimate(
        job,
        definition.settings.rpo_minutes,
        m,
        changed,
        required / MBIT,
        worst / MBIT,
        required <= worst,
        seed,
        run,
        fits,
        tuple(notes),
    )


def jobs_estimates(
    store: Store, jobs: Sequence[str], link: Link, start: dt.datetime | None = None
) -> list[Estimate]:
    """Every job under one link, the link split equally between them."""
    shared = Link(link.mbit, link.throttles, max(1, len(jobs)))
    return [estimate(store, j, shared, start=start) for j in jobs]
