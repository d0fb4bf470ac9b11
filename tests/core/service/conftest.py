"""A running lab, a store on it, a clock the test moves, and schedulers on the test's database.

One lab per test module (3 small VMs); each test gets its own store and its own replica suffix,
so replicas on the shared DR site do not collide between tests. Schedulers read schedules in UTC
and take their time from a `FakeClock`, so "tomorrow at 22:00" is one assignment away.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from core.lab.lab import Lab, LabState
from core.lab.register import lab_job, register_lab
from core.lab.topology import LabOptions
from core.model.runs import ScheduleState
from core.model.schedule import JobSchedule
from core.service.events import EventKind, ServiceEvent
from core.service.scheduler import Scheduler
from core.store.store import Store

# A Monday.
DAY = dt.date(2030, 3, 4)


def at(hour: int, minute: int = 0, second: int = 0, days: int = 0) -> dt.datetime:
    return dt.datetime.combine(
        DAY + dt.timedelta(days=days), dt.time(hour, minute, second), tzinfo=dt.UTC
    )


class FakeClock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self._lock = threading.Lock()

    def set(self, now: dt.datetime) -> None:
        with self._lock:
            self.now = now

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self.now


class Events:
    """What a scheduler reported, with a wait for a given event."""

    def __init__(self) -> None:
        self.seen: list[ServiceEvent] = []
        self._cond = threading.Condition()

    def __call__(self, event: ServiceEvent) -> None:
        with self._cond:
            self.seen.append(event)
            self._cond.notify_all()

    def of(self, kind: EventKind, job: str | None = None) -> list[ServiceEvent]:
        with self._cond:
            return [e for e in self.seen if e.kind == kind and (job is None or e.job == job)]

    def wait_for(self, kind: EventKind, job: str, count: int = 1, timeout: float = 120) -> None:
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.of(kind, job)) >= count, timeout)
        assert ok, f"no {count} {kind} event(s) for {job}: {[e.line() for e in self.seen]}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    folder = tmp_path_factory.mktemp("lab")
    with Lab(LabOptions(vms=3, disk_mib=(8, 16)), folder=folder, wan=False) as state:
        yield state


@pytest.fixture
def store(tmp_path: Path, lab: LabState) -> Iterator[Store]:
    with Store.open(tmp_path / "replicadesk.db") as s:
        register_lab(s, lab, tmp_path / "metadata")
        yield s


@pytest.fixture
def add_job(lab: LabState, store: Store, request: pytest.FixtureRequest) -> Callable[..., str]:
    """add_job(name, vm_names, schedule, **lab_job options) -> the job's name, stored."""
    suffix = "_" + request.node.name.removeprefix("test_")[:30]

    def add(name: str, vms: list[str], schedule: JobSchedule, **options: Any) -> str:
        job = lab_job(lab, name, vms, **options)
        job = replace(job, schedule=schedule, settings=replace(job.settings, replica_suffix=suffix))
        store.jobs.add(job)
        return name

    return add


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def scheduler(store: Store, events: Events) -> Iterator[Callable[..., Scheduler]]:
    """scheduler(clock, **options) -> a started Scheduler on the test's database (closed after)."""
    made: list[Scheduler] = []

    def make(clock: FakeClock, **options: Any) -> Scheduler:
        options.setdefault("events", events)
        options.setdefault("tick", 0.05)
        s = Scheduler(store.path, clock=clock, zone=dt.UTC, **options)
        s.start()
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def state(store: Store, job: str) -> ScheduleState:
    return store.jobs.schedule_state(job)
