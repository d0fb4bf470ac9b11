"""Workers of the disaster-recovery side of the console: replica operations, failover plans
(run, undo, test, one-click planning, save, delete, readiness) and bandwidth estimation.

Each is a `gui.workers.Worker`: started by `Workers.start` on its own thread, it calls core and
reports through queued signals; nothing here touches a widget. An error of core's (a
`ReplicaDeskError`) is reported in its own words, with the detail (the operation's session log
so far) a click away in the window that shows it.

Cancel: none of core's replica operations or plan runs takes a cancel request (each one either
completes or puts back what it changed, and a crash is finished or rolled back by the next
operation on the replica), so these workers cannot be stopped half way; windows say so instead
of offering a Cancel that would not stop anything. A plan's readiness check, one-click planning
and an estimate only read, and their windows can simply drop the answer.
"""

from __future__ import annotations

import datetime as dt
import time
import traceback
from collections.abc import Callable, Sequence

from PySide6.QtCore import Signal, Slot

from core.errors import ReplicaDeskError
from core.model.plans import FailoverPlan, PlanAction
from core.model.runs import Session
from core.planning.bandwidth import Link, estimate
from core.plans import auto
from core.plans.readiness import check_plan
from core.plans.run import run_plan, run_plan_test, undo_plan
from core.store.store import Store
from gui.replica_ops import SPECS, OpRequest, perform
from gui.workers import Worker

PROGRESS_EVERY = 0.1  # seconds between failback progress signals


class CallWorker(Worker):
    """Runs `call(store)` and emits its result: the reads and small writes of the plans view."""

    result = Signal(object)

    def __init__(self, store: Store, call: Callable[[Store], object], what: str) -> None:
        super().__init__()
        self.store = store
        self.call = call
        self.what = what

    def work(self) -> None:
        value = self.call(self.store)
        if not self.cancelled:
            self.result.emit(value)


def session_log(store: Store, session: Session | None) -> str:
    if session is None:
        return ""
    full = store.sessions.get(session.id)
    lines = [f"Session {full.id} of job {full.job} ({full.trigger}), {full.status}:"]
    lines += [
        f"{e.time.astimezone():%H:%M:%S}  {e.severity.upper():7}  {e.message}" for e in full.log
    ]
    for t in store.sessions.tasks(full.id):
        lines += [
            f"{e.time.astimezone():%H:%M:%S}  {e.severity.upper():7}  {t.vm_name}: {e.message}"
            for e in t.log
        ]
    return "\n".join(lines)


class ReplicaOperationWorker(Worker):
    """One replica operation (`gui.replica_ops.perform`)."""

    baseline = Signal(int)  # the job's newest session id before the operation started
    progress = Signal(int, int)  # failback: bytes compared, bytes to compare
    finished = Signal(object)  # OperationResult

    def __init__(self, store: Store, request: OpRequest) -> None:
        super().__init__()
        self.store = store
        self.request = request
        self.first_session = 0  # session ids above this one are the operation's
        self._last_progress = 0.0

    @Slot()
    def run(self) -> None:
        try:
            self.work()
        except ReplicaDeskError as e:
            self.failed.emit(str(e), self._detail(e))
        except Exception as e:
            detail = f"{self._detail(e)}\n\n{traceback.format_exc()}"
            self.failed.emit(f"Internal error: {type(e).__name__}: {e}", detail)
        finally:
            self.done.emit()

    def work(self) -> None:
        job = self.request.replica.job
        newest = self.store.sessions.list(job, limit=1)
        self.first_session = newest[0].id if newest else 0
        self.baseline.emit(self.first_session)
        result = perform(self.store, self.request, self._progress)
        self.finished.emit(result)

    def own_session(self) -> Session | None:
        """The operation's session (the first of its trigger after the baseline)."""
        trigger = SPECS[self.request.op].trigger
        mine = [
            s
            for s in self.store.sessions.list(self.request.replica.job, limit=50)
            if s.id > self.first_session and s.trigger == trigger
        ]
        return min(mine, key=lambda s: s.id) if mine else None

    def _detail(self, error: BaseException) -> str:
        head = f"{type(error).__name__}: {error}"
        try:
            log = session_log(self.store, self.own_session())
        except ReplicaDeskError as e:
            log = f"(the operation's session could not be read: {e})"
        return f"{head}\n\n{log}" if log else head

    def _progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last_progress < PROGRESS_EVERY:
            return
        self._last_progress = now
        self.progress.emit(done, total)


class PlanWorker(Worker):
    """Run, undo or test a failover plan (core.plans.run)."""

    baseline = Signal(int)  # the newest plan session id before this one started
    finished = Signal(object)  # PlanResult

    def __init__(
        self,
        store: Store,
        plan: str,
        action: PlanAction,
        point_in_time: dt.datetime | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.plan = plan
        self.action = action
        self.point_in_time = point_in_time
        self.first_session = 0

    def work(self) -> None:
        newest = self.store.plan_sessions.list(limit=1)
        self.first_session = newest[0].id if newest else 0
        self.baseline.emit(self.first_session)
        if self.action == PlanAction.RUN:
            result = run_plan(self.store, self.plan, point_in_time=self.point_in_time)
        elif self.action == PlanAction.UNDO:
            result = undo_plan(self.store, self.plan)
        else:
            result = run_plan_test(self.store, self.plan, point_in_time=self.point_in_time)
        self.finished.emit(result)


def unique_name(taken: Sequence[str], wanted: str) -> str:
    if wanted not in taken:
        return wanted
    n = 2
    while f"{wanted} ({n})" in taken:
        n += 1
    return f"{wanted} ({n})"


def make_auto_plan(
    name: str, *, job: str = "", vms: Sequence[str] = ()
) -> Callable[[Store], auto.AutoPlan]:
    """One-click planning from a job or from VMs (names or morefs), saved under a free name."""

    def call(store: Store) -> auto.AutoPlan:
        free = unique_name(store.plans.names(), name)
        made = auto.from_job(store, free, job) if job else auto.from_vms(store, free, list(vms))
        store.plans.add(made.plan)
        return made

    return call


def save_plan(plan: FailoverPlan, old_name: str | None) -> Callable[[Store], FailoverPlan]:
    def call(store: Store) -> FailoverPlan:
        if old_name is None:
            store.plans.add(plan)
        else:
            store.plans.update(plan, old_name)
        return plan

    return call


def delete_plan(name: str) -> Callable[[Store], str]:
    def call(store: Store) -> str:
        store.plans.remove(name)
        return name

    return call


def readiness(name: str) -> Callable[[Store], object]:
    return lambda store: check_plan(store, name)


def bandwidth(job: str, link: Link, probe: bool) -> Callable[[Store], object]:
    return lambda store: estimate(store, job, link, probe=probe)
