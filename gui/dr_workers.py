"""Workers of the disaster-recovery side of the console: replica operations, failover plans
(run, undo, test, one-click planning, save, delete, readiness) and bandwidth estimation.

Each is a `gui.workers.Worker`: started by `Workers.start` on its own thread, it calls core and
reports through queued signals; nothing here touches a widget. An error of core's (a
`ReplicaDeskError`) is reported in its own words, with the detail (the operation's session log
so far) a click away in the window that shows it.

Started and Cancel: core calls `on_started(session id)` as soon as an operation's (or a plan
action's) session exists; the workers emit it as `started`, so a window follows that very session
(no guessing from the job's newest sessions). The worker's cancel event is core's `cancel` for the
operations that take one (failover now, planned failover, failback, plan run and plan test:
`gui.replica_ops.SPECS` says what a cancel of each leaves, in core's promise); core looks at it
between its steps and stops where the replica is consistent. A cancelled replica operation raises
core's `CancelledError`, reported as `stopped` (not `failed`); a cancelled plan returns its result
with `cancelled` set. The other operations cannot be stopped half way (each completes or puts back
what it changed). A plan's readiness check, one-click planning and an estimate only read, and their
windows can simply drop the answer.
"""

from __future__ import annotations

import datetime as dt
import time
import traceback
from collections.abc import Callable, Sequence

from PySide6.QtCore import Signal, Slot

from core.errors import CancelledError, ReplicaDeskError
from core.failover.session import OperationCancelledError
from core.model.plans import FailoverPlan, PlanAction
from core.model.runs import Session
from core.planning.bandwidth import Link, estimate
from core.plans import auto
from core.plans.readiness import check_plan
from core.plans.run import run_plan, run_plan_test, undo_plan
from core.store.store import Store
from gui.replica_ops import OpRequest, perform
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

    started = Signal(int)  # the operation's session id, as soon as core made it
    progress = Signal(int, int)  # failback: bytes compared, bytes to compare
    finished = Signal(object)  # OperationResult
    stopped = Signal(str, str)  # cancelled: where it stopped and what that left; detail

    def __init__(self, store: Store, request: OpRequest) -> None:
        super().__init__()
        self.store = store
        self.request = request
        self.session_id: int | None = None  # the operation's, once core announced it
        self._last_progress = 0.0

    @Slot()
    def run(self) -> None:
        try:
            self.work()
        except CancelledError as e:
            # Core's words on where it stopped and what that left ("before anything was
            # stopped: the replica runs on, state Failover"), without the "Replica X: cancelled:".
            mine = isinstance(e, OperationCancelledError) and len(e.args) > 1
            words = str(e.args[1]) if mine else str(e)
            self.stopped.emit(words, self._detail(e))
        except ReplicaDeskError as e:
            self.failed.emit(str(e), self._detail(e))
        except Exception as e:
            detail = f"{self._detail(e)}\n\n{traceback.format_exc()}"
            self.failed.emit(f"Internal error: {type(e).__name__}: {e}", detail)
        finally:
            self.done.emit()

    def work(self) -> None:
        result = perform(
            self.store,
            self.request,
            self._progress,
            cancel=self.cancel_event,
            on_started=self._started,
        )
        self.finished.emit(result)

    def _started(self, session_id: int) -> None:
        self.session_id = session_id
        self.started.emit(session_id)

    def _detail(self, error: BaseException) -> str:
        head = f"{type(error).__name__}: {error}"
        if self.session_id is None:
            return head
        try:
            log = session_log(self.store, self.store.sessions.get(self.session_id))
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
    """Run, undo or test a failover plan (core.plans.run); a run or a test takes the cancel."""

    started = Signal(int)  # the plan session's id, as soon as core made it
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

    def work(self) -> None:
        started = self.started.emit
        if self.action == PlanAction.RUN:
            result = run_plan(
                self.store,
                self.plan,
                point_in_time=self.point_in_time,
                cancel=self.cancel_event,
                on_started=started,
            )
        elif self.action == PlanAction.UNDO:
            result = undo_plan(self.store, self.plan, on_started=started)
        else:
            result = run_plan_test(
                self.store,
                self.plan,
                point_in_time=self.point_in_time,
                cancel=self.cancel_event,
                on_started=started,
            )
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
