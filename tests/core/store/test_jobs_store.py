"""Jobs and their schedule state in a real database."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest

from core.errors import AlreadyExistsError, InUseError, NotFoundError, StoreError
from core.model.infra import BackupProxy
from core.model.job import ReplicationJob
from core.model.runs import RunStatus, ScheduleState
from core.model.schedule import AfterJob, JobSchedule
from core.store import Store

from .conftest import add_infrastructure

UTC = dt.UTC


def test_a_job_round_trips(store: Store, example_job: ReplicationJob) -> None:
    add_infrastructure(store)
    store.jobs.add(example_job)
    assert store.jobs.get(example_job.name) == example_job
    assert store.jobs.list() == [example_job] and store.jobs.names() == [example_job.name]
    with pytest.raises(AlreadyExistsError):
        store.jobs.add(example_job)


def test_references_must_exist(store: Store, example_job: ReplicationJob) -> None:
    with pytest.raises(NotFoundError) as err:
        store.jobs.add(example_job)
    assert str(err.value) == "There is no server 'vc-prod.example.net'"
    add_infrastructure(store)
    store.proxies.remove("proxy-prod-2")
    with pytest.raises(NotFoundError) as err:
        store.jobs.add(example_job)
    assert str(err.value) == "There is no proxy 'proxy-prod-2'"
    store.proxies.add(BackupProxy("proxy-prod-2", "10.0.0.12", "prod"))
    follower = dataclasses.replace(
        example_job, name="After SQL", schedule=JobSchedule(AfterJob("SQL"))
    )
    with pytest.raises(NotFoundError) as err:
        store.jobs.add(follower)
    assert str(err.value) == "There is no job 'SQL'"


def test_update_and_remove(store: Store, example_job: ReplicationJob) -> None:
    add_infrastructure(store)
    store.jobs.add(example_job)
    store.jobs.set_schedule_state(
        ScheduleState(example_job.name, next_run=dt.datetime(2026, 12, 1, 22, tzinfo=UTC))
    )
    edited = dataclasses.replace(example_job, description="edited")
    store.jobs.update(edited)
    assert store.jobs.get(example_job.name).description == "edited"
    assert store.jobs.schedule_state(example_job.name).next_run is None  # to be recomputed
    follower = dataclasses.replace(
        example_job, name="After SQL", schedule=JobSchedule(AfterJob(example_job.name))
    )
    store.jobs.add(follower)
    with pytest.raises(InUseError) as err:
        store.jobs.remove(example_job.name)
    assert str(err.value) == "Job 'SQL tier #1 (prod)' is still used by job 'After SQL'"
    store.jobs.remove("After SQL")
    store.jobs.remove(example_job.name)
    with pytest.raises(NotFoundError):
        store.jobs.get(example_job.name)
    with pytest.raises(NotFoundError):
        store.jobs.schedule_state(example_job.name)
    with pytest.raises(NotFoundError):
        store.jobs.update(example_job)


def test_schedule_state_round_trips(store: Store, example_job: ReplicationJob) -> None:
    add_infrastructure(store)
    store.jobs.add(example_job)
    assert store.jobs.schedule_state(example_job.name) == ScheduleState(example_job.name)
    berlin = dt.timezone(dt.timedelta(hours=1))
    state = ScheduleState(
        example_job.name,
        last_run=dt.datetime(2026, 11, 30, 22, 0, 1, 5, tzinfo=berlin),
        last_status=RunStatus.WARNING,
        next_run=dt.datetime(2026, 12, 1, 22, 0, tzinfo=berlin),
        retries_done=1,
        retry_at=dt.datetime(2026, 11, 30, 22, 10, tzinfo=berlin),
    )
    store.jobs.set_schedule_state(state)
    assert store.jobs.schedule_state(example_job.name) == state  # the same instants, kept in UTC
    with pytest.raises(NotFoundError):
        store.jobs.set_schedule_state(ScheduleState("nope"))


def test_a_damaged_stored_definition_is_reported(
    store: Store, example_job: ReplicationJob, db_path: Path
) -> None:
    add_infrastructure(store)
    store.jobs.add(example_job)
    with sqlite3.connect(db_path) as conn:
        doc = json.loads(conn.execute("SELECT definition FROM jobs").fetchone()[0])
        doc["settings"]["restore_points"] = 99
        conn.execute("UPDATE jobs SET definition = ?", (json.dumps(doc),))
    with pytest.raises(StoreError) as err:
        store.jobs.get(example_job.name)
    assert str(err.value) == (
        "Database job 'SQL tier #1 (prod)': the stored definition is invalid: "
        "settings.restore_points: 99 is out of range (1 to 28)"
    )
