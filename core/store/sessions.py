"""Sessions (job runs), task sessions (one VM in a run) and their logs in the database.

A session records the process that runs it; `fail_orphans` marks sessions whose process died
(a crash, a kill, a reboot) as failed with a log line saying so, so a restarted service shows
what happened instead of runs that stay "running" forever. Sessions outlive their job.

A session's trigger tells a replication run (`REPLICATION_TRIGGERS`: manual, scheduled, retry,
after another job) from a replica operation on one of the job's replicas (failover, failback...,
core.failover), whose incremental runs (a planned failover's) carry the operation's trigger too:
`running(replication_only=True)` is what says a job is running.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
from typing import Any

from sqlite_utils import Database

from core.errors import NotFoundError, UsageError
from core.model.runs import (
    REPLICATION_TRIGGERS,
    Bottleneck,
    LogEntry,
    RunStatus,
    RunTrigger,
    Session,
    Severity,
    TaskSession,
    TransferStats,
)
from core.store import process
from core.store.connection import Connection
from core.store.timefmt import from_db, from_db_opt, now, to_db

Row = dict[str, Any]


def _stats(row: Row) -> TransferStats:
    return TransferStats(
        processed_bytes=row["processed_bytes"],
        read_bytes=row["read_bytes"],
        transferred_bytes=row["transferred_bytes"],
        duration=row["duration"],
        bottleneck=None if row["bottleneck"] is None else Bottleneck(row["bottleneck"]),
        busy=tuple((str(k), float(v)) for k, v in json.loads(row.get("busy") or "{}").items()),
    )


def _stats_row(stats: TransferStats) -> Row:
    return {
        "processed_bytes": stats.processed_bytes,
        "read_bytes": stats.read_bytes,
        "transferred_bytes": stats.transferred_bytes,
        "duration": float(stats.duration),
        "bottleneck": None if stats.bottleneck is None else str(stats.bottleneck),
        "busy": json.dumps(dict(stats.busy)) if stats.busy else None,
    }


def _entries(db: Database, session_id: int, task_id: int | None) -> tuple[LogEntry, ...]:
    if task_id is None:
        sql = "SELECT * FROM session_log WHERE session_id = ? AND task_id IS NULL ORDER BY id"
        params: tuple[object, ...] = (session_id,)
    else:
        sql = "SELECT * FROM session_log WHERE session_id = ? AND task_id = ? ORDER BY id"
        params = (session_id, task_id)
    return tuple(
        LogEntry(from_db(r["time"]), Severity(r["severity"]), r["message"])
        for r in db.query(sql, params)
    )


def _session(db: Database, row: Row, with_log: bool) -> Session:
    return Session(
        id=row["id"],
        job=row["job"],
        trigger=RunTrigger(row["trigger"]),
        attempt=row["attempt"],
        status=RunStatus(row["status"]),
        started=from_db(row["started_at"]),
        ended=from_db_opt(row["ended_at"]),
        stats=_stats(row),
        log=_entries(db, row["id"], None) if with_log else (),
    )


def _task(db: Database, row: Row) -> TaskSession:
    return TaskSession(
        id=row["id"],
        session_id=row["session_id"],
        vm_moref=row["vm_moref"],
        vm_name=row["vm_name"],
        status=RunStatus(row["status"]),
        started=from_db(row["started_at"]),
        ended=from_db_opt(row["ended_at"]),
        stats=_stats(row),
        log=_entries(db, row["session_id"], row["id"]),
    )


def _get(db: Database, table: str, what: str, ident: int) -> Row:
    row = next(iter(db.query(f"SELECT * FROM {table} WHERE id = ?", (ident,))), None)
    if row is None:
        raise NotFoundError(what, ident)
    return row


def _finished(status: RunStatus) -> RunStatus:
    status = RunStatus(status)
    if status is RunStatus.RUNNING:
        raise UsageError("a session ends as success, warning or failed, not running")
    return status


class Sessions:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def start(
        self,
        job: str,
        trigger: RunTrigger,
        attempt: int = 0,
        at: dt.datetime | None = None,
    ) -> Session:
        owner = process.current()
        with self._conn.write() as db:
            cur = db.execute(
                "INSERT INTO sessions (job, trigger, attempt, status, started_at, owner_host, "
                "owner_pid, owner_started, owner_boot) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?)",
                (
                    job,
                    str(RunTrigger(trigger)),
                    attempt,
                    to_db(at or now()),
                    owner.host,
                    owner.pid,
                    owner.started,
                    owner.boot,
                ),
            )
            assert cur.lastrowid is not None
            return _session(db, _get(db, "sessions", "session", cur.lastrowid), with_log=True)

    def log(
        self,
        session_id: int,
        severity: Severity,
        message: str,
        *,
        task_id: int | None = None,
        at: dt.datetime | None = None,
    ) -> LogEntry:
        entry = LogEntry(at or now(), Severity(severity), message)
        with self._conn.write() as db:
            _get(db, "sessions", "session", session_id)
            db.execute(
                "INSERT INTO session_log (session_id, task_id, time, severity, message) "
                "VALUES (?, ?, ?, ?, ?)",
                (session_id, task_id, to_db(entry.time), str(entry.severity), entry.message),
            )
        return entry

    def start_task(
        self, session_id: int, vm_moref: str, vm_name: str, at: dt.datetime | None = None
    ) -> TaskSession:
        with self._conn.write() as db:
            _get(db, "sessions", "session", session_id)
            cur = db.execute(
                "INSERT INTO task_sessions (session_id, vm_moref, vm_name, status, started_at) "
                "VALUES (?, ?, ?, 'running', ?)",
                (session_id, vm_moref, vm_name, to_db(at or now())),
            )
            assert cur.lastrowid is not None
            return _task(db, _get(db, "task_sessions", "task session", cur.lastrowid))

    def update_task(self, task_id: int, stats: TransferStats) -> None:
        """Progress of a running task (the console shows it live)."""
        row = _stats_row(stats)
        sets = ", ".join(f"{k} = :{k}" for k in row)
        with self._conn.write() as db:
            cur = db.execute(
                f"UPDATE task_sessions SET {sets} WHERE id = :id", {**row, "id": task_id}
            )
            if cur.rowcount == 0:
                raise NotFoundError("task session", task_id)

    def finish_task(
        self,
        task_id: int,
        status: RunStatus,
        stats: TransferStats,
        at: dt.datetime | None = None,
    ) -> TaskSession:
        row = {
            **_stats_row(stats),
            "status": str(_finished(status)),
            "ended_at": to_db(at or now()),
        }
        sets = ", ".join(f"{k} = :{k}" for k in row)
        with self._conn.write() as db:
            cur = db.execute(
                f"UPDATE task_sessions SET {sets} WHERE id = :id", {**row, "id": task_id}
            )
            if cur.rowcount == 0:
                raise NotFoundError("task session", task_id)
            return _task(db, _get(db, "task_sessions", "task session", task_id))

    def finish(
        self,
        session_id: int,
        status: RunStatus,
        stats: TransferStats,
        at: dt.datetime | None = None,
    ) -> Session:
        row = {
            **_stats_row(stats),
            "status": str(_finished(status)),
            "ended_at": to_db(at or now()),
        }
        sets = ", ".join(f"{k} = :{k}" for k in row)
        with self._conn.write() as db:
            current = _get(db, "sessions", "session", session_id)
            if current["status"] != RunStatus.RUNNING:
                raise UsageError(f"session {session_id} has already ended ({current['status']})")
            db.execute(f"UPDATE sessions SET {sets} WHERE id = :id", {**row, "id": session_id})
            return _session(db, _get(db, "sessions", "session", session_id), with_log=True)

    def get(self, session_id: int) -> Session:
        with self._conn.read() as db:
            return _session(db, _get(db, "sessions", "session", session_id), with_log=True)

    def list(self, job: str | None = None, limit: int = 100) -> list[Session]:
        """Newest first, without their logs (`get` has them)."""
        with self._conn.read() as db:
            if job is None:
                rows = db.query(
                    "SELECT * FROM sessions ORDER BY started_at DESC, id DESC LIMIT ?", (limit,)
                )
            else:
                rows = db.query(
                    "SELECT * FROM sessions WHERE job = ? "
                    "ORDER BY started_at DESC, id DESC LIMIT ?",
                    (job, limit),
                )
            return [_session(db, r, with_log=False) for r in rows]

    def tasks(self, session_id: int) -> builtins.list[TaskSession]:
        with self._conn.read() as db:
            rows = db.query(
                "SELECT * FROM task_sessions WHERE session_id = ? ORDER BY id", (session_id,)
            )
            return [_task(db, r) for r in rows]

    def running(self, replication_only: bool = False) -> builtins.list[Session]:
        """Sessions running now, oldest first; only replication runs (no replica operation)
        when `replication_only`."""
        with self._conn.read() as db:
            rows = db.query("SELECT * FROM sessions WHERE status = 'running' ORDER BY id")
            return [
                _session(db, r, with_log=False)
                for r in rows
                if not replication_only or r["trigger"] in REPLICATION_TRIGGERS
            ]

    def fail_orphans(self, at: dt.datetime | None = None) -> builtins.list[int]:
        """Mark running sessions whose process is gone as failed; returns their IDs."""
        ended = to_db(at or now())
        failed: builtins.list[int] = []
        with self._conn.write() as db:
            for row in list(db.query("SELECT * FROM sessions WHERE status = 'running'")):
                owner = process.ProcessId(
                    row["owner_host"], row["owner_pid"], row["owner_started"], row["owner_boot"]
                )
                if process.is_alive(owner) is not False:
                    continue
                db.execute(
                    "UPDATE task_sessions SET status = 'failed', ended_at = ? "
                    "WHERE session_id = ? AND status = 'running'",
                    (ended, row["id"]),
                )
                db.execute(
                    "UPDATE sessions SET status = 'failed', ended_at = ? WHERE id = ?",
                    (ended, row["id"]),
                )
                db.execute(
                    "INSERT INTO session_log (session_id, task_id, time, severity, message) "
                    "VALUES (?, NULL, ?, 'error', ?)",
                    (
                        row["id"],
                        ended,
                        f"The run was interrupted: {owner} ended before it finished",
                    ),
                )
                failed.append(row["id"])
        return failed
