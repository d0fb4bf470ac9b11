"""Replication jobs and their schedule state in the database.

A job is stored as its job document (`core.model.jobfile.job_to_document`, JSON) plus the
columns other tables and queries need (servers, repository, enabled). Adding or updating a job
checks that the servers, repository, chosen proxies and the job it runs after exist. A job's
name is its identity; its sessions and replicas outlive it as history.
"""

from __future__ import annotations

import json

from sqlite_utils import Database

from core.errors import (
    AlreadyExistsError,
    InUseError,
    InvalidSettingError,
    NotFoundError,
    StoreError,
)
from core.model.job import ReplicationJob
from core.model.jobfile import job_from_document, job_to_document
from core.model.runs import RunStatus, ScheduleState
from core.model.schedule import AfterJob
from core.store.connection import Connection
from core.store.timefmt import from_db_opt, now, to_db, to_db_opt


def _exists(db: Database, table: str, column: str, value: str) -> bool:
    return (
        next(iter(db.query(f"SELECT 1 FROM {table} WHERE {column} = ?", (value,))), None)
        is not None
    )


def _check_references(db: Database, job: ReplicationJob) -> None:
    for server in (job.source.server, job.destination.server):
        if not _exists(db, "servers", "address", server):
            raise NotFoundError("server", server)
    if not _exists(db, "repositories", "name", job.settings.repository):
        raise NotFoundError("repository", job.settings.repository)
    for selection in (job.transfer.source_proxies, job.transfer.target_proxies):
        for proxy in selection.proxies:
            if not _exists(db, "proxies", "name", proxy):
                raise NotFoundError("proxy", proxy)
    trigger = job.schedule.trigger
    if isinstance(trigger, AfterJob) and not _exists(db, "jobs", "name", trigger.job):
        raise NotFoundError("job", trigger.job)


def _row(job: ReplicationJob) -> dict[str, object]:
    return {
        "name": job.name,
        "definition": json.dumps(job_to_document(job), ensure_ascii=False),
        "enabled": int(job.schedule.enabled),
        "source_server": job.source.server,
        "target_server": job.destination.server,
        "repository": job.settings.repository,
    }


def _job(name: str, definition: str) -> ReplicationJob:
    try:
        return job_from_document(json.loads(definition))
    except (InvalidSettingError, ValueError) as e:
        raise StoreError("job " + repr(name), f"the stored definition is invalid: {e}") from None


class Jobs:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, job: ReplicationJob) -> None:
        with self._conn.write() as db:
            if _exists(db, "jobs", "name", job.name):
                raise AlreadyExistsError("job", job.name)
            _check_references(db, job)
            stamp = to_db(now())
            db.table("jobs").insert({**_row(job), "created_at": stamp, "updated_at": stamp})
            db.table("schedule_state").insert({"job": job.name, "retries_done": 0})

    def update(self, job: ReplicationJob) -> None:
        """Replace a job's settings; its schedule state's next run is cleared for recomputation."""
        row = _row(job)
        with self._conn.write() as db:
            if not _exists(db, "jobs", "name", job.name):
                raise NotFoundError("job", job.name)
            _check_references(db, job)
            sets = ", ".join(f"{k} = :{k}" for k in row if k != "name")
            db.execute(
                f"UPDATE jobs SET {sets}, updated_at = :updated_at WHERE name = :name",
                {**row, "updated_at": to_db(now())},
            )
            db.execute("UPDATE schedule_state SET next_run = NULL WHERE job = ?", (job.name,))

    def get(self, name: str) -> ReplicationJob:
        row = next(
            iter(self._conn.db().query("SELECT definition FROM jobs WHERE name = ?", (name,))), None
        )
        if row is None:
            raise NotFoundError("job", name)
        return _job(name, row["definition"])

    def names(self) -> list[str]:
        return [r["name"] for r in self._conn.db().query("SELECT name FROM jobs ORDER BY name")]

    def list(self) -> list[ReplicationJob]:
        rows = self._conn.db().query("SELECT name, definition FROM jobs ORDER BY name")
        return [_job(r["name"], r["definition"]) for r in rows]

    def remove(self, name: str) -> None:
        with self._conn.write() as db:
            followers = [
                r["name"]
                for r in db.query("SELECT name, definition FROM jobs ORDER BY name")
                if json.loads(r["definition"]).get("schedule", {}).get("after") == name
            ]
            if followers:
                raise InUseError("Job", name, "job " + ", ".join(repr(f) for f in followers))
            if db.execute("DELETE FROM jobs WHERE name = ?", (name,)).rowcount == 0:
                raise NotFoundError("job", name)

    def schedule_state(self, name: str) -> ScheduleState:
        row = next(
            iter(self._conn.db().query("SELECT * FROM schedule_state WHERE job = ?", (name,))),
            None,
        )
        if row is None:
            raise NotFoundError("job", name)
        return ScheduleState(
            job=row["job"],
            last_run=from_db_opt(row["last_run"]),
            last_status=None if row["last_status"] is None else RunStatus(row["last_status"]),
            next_run=from_db_opt(row["next_run"]),
            retries_done=row["retries_done"],
            retry_at=from_db_opt(row["retry_at"]),
        )

    def set_schedule_state(self, state: ScheduleState) -> None:
        with self._conn.write() as db:
            cur = db.execute(
                "UPDATE schedule_state SET last_run = ?, last_status = ?, next_run = ?, "
                "retries_done = ?, retry_at = ? WHERE job = ?",
                (
                    to_db_opt(state.last_run),
                    None if state.last_status is None else str(state.last_status),
                    to_db_opt(state.next_run),
                    state.retries_done,
                    to_db_opt(state.retry_at),
                    state.job,
                ),
            )
            if cur.rowcount == 0:
                raise NotFoundError("job", state.job)
