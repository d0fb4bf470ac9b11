"""Failover plans as tables: the plans, a plan's items in run order, plan sessions, the live
progress of each VM of a running plan, its steps, and the readiness report's problems and
timings. Like every model here they hold frozen rows read on another thread and are tested
without a window.

`item_progress` is the heart of the plan run window: from the plan (its groups and boot order)
and the plan session's steps as core.plans records them, each VM's current step in words.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from core.model.plans import FailoverPlan, PlanAction, PlanItem, PlanSession, PlanStep, StepKind
from core.model.runs import RunStatus, Severity
from core.plans.readiness import ItemTiming, Problem
from gui import format as fmt
from gui.models.base import RIGHT, Column, RecordTableModel
from gui.plan_watcher import PlanRow

ACTION_WORDS = {PlanAction.RUN: "Run", PlanAction.UNDO: "Undo", PlanAction.TEST: "Test"}
CHECK_WORDS = {
    "replica": "Replica",
    "state": "State",
    "rpo": "RPO",
    "network": "Network mapping",
    "reip": "Re-IP",
    "cpu": "CPU",
    "memory": "Memory",
    "datastore": "Datastore",
    "site": "DR site",
}


def _groups(plan: FailoverPlan) -> str:
    return ", ".join(f"{p}: {len(items)}" for p, items in plan.groups())


def _session_text(s: PlanSession | None) -> str:
    if s is None:
        return "Never run"
    state = "running" if s.ended is None else fmt.status(s.status)
    return f"{ACTION_WORDS[s.action]} {fmt.when(s.started)} ({state})"


def _session_status(s: PlanSession | None) -> str | None:
    if s is None or s.ended is None:
        return None if s is None else RunStatus.RUNNING
    return s.status


class PlansModel(RecordTableModel):
    NAME, VMS, GROUPS, LAST, DESCRIPTION = range(5)
    columns = (
        Column("Name", lambda r: r.plan.name, width=24),
        Column(
            "VMs", lambda r: str(len(r.plan.items)), sort=lambda r: len(r.plan.items), align=RIGHT
        ),
        Column("Priority groups", lambda r: _groups(r.plan), tip="Group: VMs in it"),
        Column(
            "Last session",
            lambda r: _session_text(r.last),
            sort=lambda r: r.last.started.timestamp() if r.last else 0.0,
        ),
        Column("Description", lambda r: r.plan.description),
    )
    status_column = LAST

    def key(self, record: PlanRow) -> Hashable:
        return record.plan.name

    def status(self, record: PlanRow) -> str | None:
        return _session_status(record.last)


@dataclass(frozen=True)
class ItemRow:
    """An item of a plan with its place in the run: group and position in the group."""

    item: PlanItem
    priority: int
    position: int  # 1-based boot position in its group
    rank: int  # 0-based position in the whole run order

    @property
    def name(self) -> str:
        return self.item.name


def item_rows(plan: FailoverPlan) -> list[ItemRow]:
    rows = []
    rank = 0
    for priority, items in plan.groups():
        for position, item in enumerate(items, start=1):
            rows.append(ItemRow(item, priority, position, rank))
            rank += 1
    return rows


def _heartbeat(it: PlanItem) -> str:
    return f"Yes, {fmt.duration(it.heartbeat_timeout)}" if it.wait_heartbeat else "No"


class PlanItemsModel(RecordTableModel):
    ORDER, VM, JOB, GROUP, DELAY, DEPENDS, HEARTBEAT = range(7)
    columns = (
        Column("#", lambda r: str(r.rank + 1), sort=lambda r: r.rank, align=RIGHT),
        Column("VM", lambda r: r.name),
        Column("Job", lambda r: r.item.job or "any"),
        Column("Priority group", lambda r: f"{r.priority} (#{r.position})", sort=lambda r: r.rank),
        Column(
            "Delay after",
            lambda r: fmt.duration(r.item.delay_after),
            sort=lambda r: r.item.delay_after,
            align=RIGHT,
        ),
        Column("Depends on", lambda r: ", ".join(r.item.depends_on)),
        Column("Heartbeat", lambda r: _heartbeat(r.item)),
    )

    def key(self, record: ItemRow) -> Hashable:
        return record.name


class PlanSessionsModel(RecordTableModel):
    ID, PLAN, ACTION, STATUS, STARTED, ENDED = range(6)
    columns = (
        Column("Session", lambda s: str(s.id), sort=lambda s: s.id, align=RIGHT),
        Column("Plan", lambda s: s.plan),
        Column("Action", lambda s: ACTION_WORDS[s.action]),
        Column("Status", lambda s: fmt.status(s.status)),
        Column("Started", lambda s: fmt.when(s.started), sort=lambda s: s.started.timestamp()),
        Column(
            "Ended",
            lambda s: fmt.when(s.ended, "running"),
            sort=lambda s: s.ended.timestamp() if s.ended else float("inf"),
        ),
    )
    status_column = STATUS

    def key(self, record: PlanSession) -> Hashable:
        return record.id

    def status(self, record: PlanSession) -> str | None:
        return record.status


# -- live progress of a plan session -------------------------------------------------------------

STEP_WORDS = {
    StepKind.START: "Starting",
    StepKind.POWERED_ON: "Powered on",
    StepKind.HEARTBEAT: "Heartbeat",
    StepKind.UP: "Up",
    StepKind.DELAY: "Delay over",
    StepKind.SKIP: "Skipped",
    StepKind.FAILED: "Failed",
    StepKind.DONE: "Done",
    StepKind.INFO: "",
}
# Steps that say where an item is (INFO lines, such as re-IP results, do not move it).
PROGRESS_KINDS = frozenset(STEP_WORDS) - {StepKind.INFO}


@dataclass(frozen=True)
class ItemProgress:
    name: str
    priority: int
    position: int
    rank: int
    step: str  # the item's current step in words
    message: str  # what that step said
    last: PlanStep | None  # that step (None: not started)
    status: str  # RunStatus: running, success, warning, failed ("" while waiting)
    warnings: int = 0


def _status_of(kind: StepKind, severity: Severity, action: PlanAction) -> str:
    if kind == StepKind.FAILED or severity == Severity.ERROR:
        return RunStatus.FAILED
    if kind in (StepKind.UP, StepKind.DELAY, StepKind.SKIP, StepKind.DONE):
        if action == PlanAction.TEST and kind == StepKind.UP:
            return RunStatus.RUNNING  # the cleanup follows
        return RunStatus.SUCCESS
    return RunStatus.RUNNING


def item_progress(plan: FailoverPlan, session: PlanSession | None) -> list[ItemProgress]:
    """Each item of `plan`, in run order, with its latest step in `session`."""
    out = []
    steps = session.steps if session is not None else ()
    action = session.action if session is not None else PlanAction.RUN
    for row in item_rows(plan):
        mine = [s for s in steps if s.item == row.name]
        moving = [s for s in mine if s.kind in PROGRESS_KINDS]
        warnings = sum(1 for s in mine if s.severity == Severity.WARNING)
        if not moving:
            out.append(
                ItemProgress(
                    row.name,
                    row.priority,
                    row.position,
                    row.rank,
                    "Waiting",
                    "",
                    None,
                    "",
                    warnings,
                )
            )
            continue
        last = moving[-1]
        status = _status_of(last.kind, last.severity, action)
        if status == RunStatus.SUCCESS and warnings:
            status = RunStatus.WARNING
        if session is not None and session.ended is not None and status == RunStatus.RUNNING:
            status = RunStatus.FAILED if last.kind != StepKind.UP else RunStatus.SUCCESS
        out.append(
            ItemProgress(
                row.name,
                row.priority,
                row.position,
                row.rank,
                STEP_WORDS[last.kind],
                last.message,
                last,
                status,
                warnings,
            )
        )
    return out


class PlanProgressModel(RecordTableModel):
    ORDER, VM, GROUP, STEP, TIME, MESSAGE = range(6)
    columns = (
        Column("#", lambda r: str(r.rank + 1), sort=lambda r: r.rank, align=RIGHT),
        Column("VM", lambda r: r.name),
        Column("Group", lambda r: f"{r.priority} (#{r.position})", sort=lambda r: r.rank),
        Column(
            "Step",
            lambda r: r.step + (f" ({r.warnings} warning(s))" if r.warnings else ""),
        ),
        Column(
            "Time",
            lambda r: fmt.when(r.last.time)[11:] if r.last else "",
            sort=lambda r: r.last.time.timestamp() if r.last else 0.0,
        ),
        Column("Last message", lambda r: r.message),
    )
    status_column = STEP

    def key(self, record: ItemProgress) -> Hashable:
        return record.name

    def status(self, record: ItemProgress) -> str | None:
        return record.status or None


SEVERITY_STATUS = {
    Severity.INFO: None,
    Severity.WARNING: RunStatus.WARNING,
    Severity.ERROR: RunStatus.FAILED,
}


class PlanStepsModel(RecordTableModel):
    TIME, ITEM, KIND, MESSAGE = range(4)
    columns = (
        Column("Time", lambda s: fmt.when(s.time)[11:], sort=lambda s: s.id),
        Column("VM", lambda s: s.item),
        Column(
            "Step", lambda s: STEP_WORDS.get(s.kind) or str(s.kind).replace("_", " ").capitalize()
        ),
        Column("Message", lambda s: s.message),
    )
    status_column = MESSAGE

    def key(self, record: PlanStep) -> Hashable:
        return record.id

    def status(self, record: PlanStep) -> str | None:
        return SEVERITY_STATUS.get(record.severity)


# -- readiness report ----------------------------------------------------------------------------


class ProblemsModel(RecordTableModel):
    CHECK, ITEM, PROBLEM, FIX = range(4)
    columns = (
        Column("Check", lambda p: CHECK_WORDS.get(p.check, p.check)),
        Column("VM", lambda p: p.item or "whole plan"),
        Column("What blocks", lambda p: p.message, width=60),
        Column("How to fix it", lambda p: p.fix),
    )
    status_column = CHECK

    def key(self, record: Problem) -> Hashable:
        return (record.check, record.item, record.message)

    def status(self, record: Problem) -> str | None:
        return RunStatus.FAILED


class TimingsModel(RecordTableModel):
    ITEM, SECONDS, MEASURED = range(3)
    columns = (
        Column("VM", lambda t: t.item),
        Column(
            "Start to up",
            lambda t: fmt.duration(t.seconds) if t.seconds else "skipped (failed over)",
            sort=lambda t: t.seconds,
            align=RIGHT,
        ),
        Column(
            "From",
            lambda t: "measured (past runs)" if t.measured else "assumed (never measured)",
        ),
    )

    def key(self, record: ItemTiming) -> Hashable:
        return record.item
