"""Failover plans and plan sessions in the database.

A plan is stored as its plan document (`core.model.plans.plan_to_document`, JSON); its items
name replicas or source VMs, resolved when the plan runs, so a plan outlives the replicas it
named (the readiness report says what is missing). A plan session is one run, undo or test of a
plan (`core.plans`), with one row per step and its time: the order a plan brought VMs up in is
read back from here. Like job sessions, a plan session records the process that runs it, and
one whose process died is marked failed (`fail_orphans`).
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
from typing import Any

from sqlite_utils import Database

from core.errors import AlreadyExistsError, InvalidSettingError, NotFoundError, StoreError
from core.model.plans import (
    FailoverPlan,
    PlanAction,
    PlanSession,
    PlanStep,
    StepKind,
    plan_from_document,
    plan_to_document,
)
from core.model.runs import RunStatus, Severity
from core.store import process
from core.store.connection import Connection
from core.store.timefmt import from_db, from_db_opt, now, to_db, to_db_opt

Row = dict[str, Any]


def _plan(name: str, definition: str) -> FailoverPlan:
    try:
        return plan_from_document(json.loads(definition))
    except (InvalidSettingError, ValueError) as e:
        raise StoreError(f"plan {name!r}", f"the stored definition is invalid: {e}") from None


def _one(db: Database, sql: str, params: tuple[object, ...]) -> Row | None:
    return next(iter(db.query(sql, params)), None)


class Plans:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, plan: FailoverPlan) -> None:
        with self._conn.write() as db:
            if _one(db, "SELECT 1 FROM plans WHERE name = ?", (plan.name,)):
                raise AlreadyExistsError("failover plan", plan.name)
            stamp = to_db(now())
            db.table("plans").insert(
                {
                    "name": plan.name,
                    "definition": json.dumps(plan_to_document(plan), ensure_ascii=False),
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )

    def update(self, plan: FailoverPlan, old_name: str | None = None) -> None:
        """Replace a plan (renamed when `old_name` is given)."""
        name = old_name or plan.name
        with self._conn.write() as db:
            if _one(db, "SELECT 1 FROM plans WHERE name = ?", (name,)) is None:
                raise NotFoundError("failover plan", name)
            if name != plan.name and _one(db, "SELECT 1 FROM plans WHERE name = ?", (plan.name,)):
                raise AlreadyExistsError("failover plan", plan.name)
            db.execute(
                "UPDATE plans SET name = ?, definition = ?, updated_at = ? WHERE name = ?",
                (
                    plan.name,
                    json.dumps(plan_to_document(plan), ensure_ascii=False),
                    to_db(now()),
                    name,
                ),
            )

    def get(self, name: str) -> FailoverPlan:
        row = _one(self._conn.db(), "SELECT definition FROM plans WHERE name = ?", (name,))
        if row is None:
            raise NotFoundError("failover plan", name)
        return _plan(name, row["definition"])

    def names(self) -> list[str]:
        return [r["name"] for r in self._conn.db().query("SELECT name FROM plans ORDER BY name")]

    def list(self) -> list[FailoverPlan]:
        rows = self._conn.db().query("SELECT name, definition FROM plans ORDER BY name")
        return [_plan(r["name"], r["definition"]) for r in rows]

    def remove(self, name: str) -> None:
        with self._conn.write() as db:
            if db.execute("DELETE FROM plans WHERE name = ?", (name,)).rowcount == 0:
                raise NotFoundError("failover plan", name)


def _step(row: Row) -> PlanStep:
    return PlanStep(
        id=row["id"],
        session_id=row["session_id"],
        time=from_db(row["time"]),
        kind=StepKind(row["kind"]),
        message=row["message"],
        item=row["item"],
        replica_id=row["replica_id"],
        severity=Severity(row["severity"]),
        op_session=row["op_session"],
        seconds=row["seconds"],
    )


def _session(db: Database, row: Row, with_steps: bool) -> PlanSession:
    steps: tuple[PlanStep, ...] = ()
    if with_steps:
        steps = tuple(
            _step(r)
            for r in db.query(
                "SELECT * FROM plan_steps WHERE session_id = ? ORDER BY id", (row["id"],)
            )
        )
    return PlanSession(
        id=row["id"],
        plan=row["plan"],
        action=PlanAction(row["action"]),
        status=RunStatus(row["status"]),
        started=from_db(row["started_at"]),
        ended=from_db_opt(row["ended_at"]),
        point_in_time=from_db_opt(row["point_in_time"]),
        steps=steps,
    )


class PlanSessions:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def start(
        self, plan: str, action: PlanAction, point_in_time: dt.datetime | None = None
    ) -> PlanSession:
        owner = process.current()
        with self._conn.write() as db:
            cur = db.execute(
                "INSERT INTO plan_sessions (plan, action, status, started_at, point_in_time, "
                "owner_host, owner_pid, owner_started, owner_boot) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                (
                    plan,
                    str(PlanAction(action)),
                    to_db(now()),
                    to_db_opt(point_in_time),
                    owner.host,
                    owner.pid,
                    owner.started,
                    owner.boot,
                ),
            )
            assert cur.lastrowid is not None
            row = _one(db, "SELECT * FROM plan_sessions WHERE id = ?", (cur.lastrowid,))
            assert row is not None
            return _session(db, row, with_steps=False)

    def step(
        self,
        session_id: int,
        kind: StepKind,
        message: str,
        *,
        item: str = "",
        replica_id: int | None = None,
        severity: Severity = Severity.INFO,
        op_session: int | None = None,
        seconds: float = 0.0,
    ) -> None:
        with self._conn.write() as db:
            db.execute(
                "INSERT INTO plan_steps (session_id, time, kind, item, replica_id, severity, "
                "message, op_session, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    session_id,
                    to_db(now()),
                    str(StepKind(kind)),
                    item,
                    replica_id,
                    str(Severity(severity)),
                    message,
                    op_session,
                    float(seconds),
                ),
            )

    def finish(self, session_id: int, status: RunStatus) -> None:
        with self._conn.write() as db:
            cur = db.execute(
                "UPDATE plan_sessions SET status = ?, ended_at = ? WHERE id = ?",
                (str(RunStatus(status)), to_db(now()), session_id),
            )
            if cur.rowcount == 0:
                raise NotFoundError("plan session", str(session_id))

    def get(self, session_id: int) -> PlanSession:
        db = self._conn.db()
        row = _one(db, "SELECT * FROM plan_sessions WHERE id = ?", (session_id,))
        if row is None:
            raise NotFoundError("plan session", str(session_id))
        return _session(db, row, with_steps=True)

    def list(self, plan: str | None = None, limit: int = 50) -> builtins.list[PlanSession]:
        db = self._conn.db()
        if plan is None:
            rows = db.query("SELECT * FROM plan_sessions ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = db.query(
                "SELECT * FROM plan_sessions WHERE plan = ? ORDER BY id DESC LIMIT ?",
                (plan, limit),
            )
        return [_session(db, r, with_steps=False) for r in rows]

    def fail_orphans(self) -> builtins.list[int]:
        """Mark running plan sessions whose process is gone as failed; their ids."""
        failed = []
        with self._conn.write() as db:
            for row in list(db.query("SELECT * FROM plan_sessions WHERE status = 'running'")):
                owner = process.ProcessId(
                    row["owner_host"], row["owner_pid"], row["owner_started"], row["owner_boot"]
                )
                if process.is_alive(owner) is not False:
                    continue
                db.execute(
                    "UPDATE plan_sessions SET status = 'failed', ended_at = ? WHERE id = ?",
                    (to_db(now()), row["id"]),
                )
                db.execute(
                    "INSERT INTO plan_steps (session_id, time, kind, severity, message) "
                    "VALUES (?, ?, 'info', 'error', ?)",
                    (
                        row["id"],
                        to_db(now()),
                        "the process running this plan session ended without finishing it",
                    ),
                )
                failed.append(row["id"])
        return failed
