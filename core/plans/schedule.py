"""The order a plan brings its items up in: groups, boot order, dependencies, delays, parallelism.

Priority groups run one after the other, 1 first. Inside a group, items start in boot order as
soon as (a) every item they depend on is up and that item's delay after it has passed, and (b)
fewer than `max_parallel` items are starting (an item is "starting" from its operation's start
until it is up: powered on, re-IP checked and, when asked, its heartbeat seen). The next group
starts once every item of this one is up and each one's delay after it has passed (the delay
after the last group's items is not waited: the plan is done). An item whose dependency failed
is not started. An item skipped because its VM already runs counts as up, with no delay.

Cancel (a `threading.Event`) is looked at before each item starts and at each group; a delay
being waited ends when it is set. Once set, no further item starts: the items already starting
finish (their operation got the same event and stops if it had not changed anything yet), the
others are CANCELLED ("not started: the plan was cancelled").

The work on one item is an `Action` run on a worker thread; it records its own steps. Here the
session gets GROUP, GROUP_DONE and WAIT steps; WAIT is recorded only when nothing is starting and
the plan waits for a delay alone, so "time to bring the plan up, minus the delays" is the
session's span minus its WAIT seconds.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

from core.errors import CancelledError, ReplicaDeskError
from core.model.plans import FailoverPlan, StepKind
from core.model.runs import RunStatus, Severity
from core.plans.resolve import Resolved
from core.store.store import Store


class Outcome(StrEnum):
    UP = "up"
    SKIPPED = "skipped"  # its VM already runs (failed over before): counts as up
    FAILED = "failed"
    NOT_STARTED = "not started"  # a dependency failed
    CANCELLED = "cancelled"  # not started (or stopped before changing anything): plan cancelled


@dataclass(frozen=True)
class ItemResult:
    name: str
    replica_id: int
    outcome: Outcome
    message: str = ""
    warnings: tuple[str, ...] = ()
    op_session: int | None = None


class Recorder:
    """The plan session's steps, written from any thread; counts warnings and failures."""

    def __init__(self, store: Store, session_id: int) -> None:
        self.store = store
        self.session_id = session_id
        self._lock = threading.Lock()
        self.warnings = 0
        self.errors = 0

    def step(
        self,
        kind: StepKind,
        message: str,
        *,
        item: str = "",
        replica_id: int | None = None,
        severity: Severity = Severity.INFO,
        op_session: int | None = None,
        seconds: float = 0.0,
    ) -> None:
        with self._lock:
            if severity == Severity.WARNING:
                self.warnings += 1
            elif severity == Severity.ERROR:
                self.errors += 1
        self.store.plan_sessions.step(
            self.session_id,
            kind,
            message,
            item=item,
            replica_id=replica_id,
            severity=severity,
            op_session=op_session,
            seconds=seconds,
        )

    def status(self) -> RunStatus:
        if self.errors:
            return RunStatus.FAILED
        return RunStatus.WARNING if self.warnings else RunStatus.SUCCESS


Action = Callable[[Resolved], ItemResult]

CANCELLED_ITEM = "not started: the plan was cancelled"


def guarded(action: Action, rec: Recorder) -> Action:
    """The action, with any failure it raises turned into a FAILED result and an error step."""

    def run(r: Resolved) -> ItemResult:
        try:
            return action(r)
        except CancelledError as e:
            message = f"{CANCELLED_ITEM} ({e})"
            rec.step(
                StepKind.SKIP,
                message,
                item=r.name,
                replica_id=r.replica.id,
                severity=Severity.WARNING,
            )
            return ItemResult(r.name, r.replica.id, Outcome.CANCELLED, message)
        except ReplicaDeskError as e:
            message = str(e)
        except Exception as e:  # a bug must not leave the plan waiting for this item forever
            message = f"internal error: {type(e).__name__}: {e}"
        rec.step(
            StepKind.FAILED,
            message,
            item=r.name,
            replica_id=r.replica.id,
            severity=Severity.ERROR,
        )
        return ItemResult(r.name, r.replica.id, Outcome.FAILED, message)

    return run


def bring_up(
    rec: Recorder,
    plan: FailoverPlan,
    resolved: Sequence[Resolved],
    action: Action,
    *,
    with_delays: bool = True,
    cancel: threading.Event | None = None,
) -> list[ItemResult]:
    """Run `action` on every item, group by group, as the module says; the results in the
    order the items finished (then the items the cancel left out)."""
    by_name = {r.name: r for r in resolved}
    results: list[ItemResult] = []
    safe = guarded(action, rec)
    groups = plan.groups()

    def cancelled() -> bool:
        return cancel is not None and cancel.is_set()

    def cancel_rest(rest: Iterable[Resolved]) -> None:
        for r in rest:
            rec.step(
                StepKind.SKIP,
                CANCELLED_ITEM,
                item=r.name,
                replica_id=r.replica.id,
                severity=Severity.WARNING,
            )
            results.append(ItemResult(r.name, r.replica.id, Outcome.CANCELLED, CANCELLED_ITEM))

    with ThreadPoolExecutor(plan.max_parallel, thread_name_prefix="plan") as pool:
        for gi, (priority, items) in enumerate(groups):
            if cancelled():
                cancel_rest(by_name[it.name] for _, rest in groups[gi:] for it in rest)
                break
            last_group = gi == len(groups) - 1
            rec.step(
                StepKind.GROUP,
                f"priority group {priority}: " + ", ".join(repr(it.name) for it in items),
            )
            done: dict[str, ItemResult] = {}
            ready_at: dict[str, float] = {}  # when an up item's dependants may start
            pending = [by_name[it.name] for it in items]
            running = 0
            finished: queue.Queue[ItemResult] = queue.Queue()

            def start(r: Resolved, q: queue.Queue[ItemResult] = finished) -> None:
                pool.submit(lambda: q.put(safe(r)))

            while pending or running:
                if cancelled() and pending:
                    cancel_rest(pending)
                    pending = []
                    continue
                now = time.monotonic()
                for r in list(pending):
                    deps = r.item.depends_on
                    broken = [
                        d
                        for d in deps
                        if d in done and done[d].outcome in (Outcome.FAILED, Outcome.NOT_STARTED)
                    ]
                    if broken:
                        pending.remove(r)
                        message = f"not started: {broken[0]!r}, which it depends on, failed"
                        rec.step(
                            StepKind.SKIP,
                            message,
                            item=r.name,
                            replica_id=r.replica.id,
                            severity=Severity.ERROR,
                        )
                        done[r.name] = ItemResult(
                            r.name, r.replica.id, Outcome.NOT_STARTED, message
                        )
                        results.append(done[r.name])
                        continue
                    if running >= plan.max_parallel:
                        break
                    if all(d in ready_at and ready_at[d] <= now for d in deps):
                        pending.remove(r)
                        running += 1
                        start(r)
                # What to wait for: an item finishing, or the next delay running out.
                waits = [
                    max(ready_at[d] for d in r.item.depends_on)
                    for r in pending
                    if r.item.depends_on and all(d in ready_at for d in r.item.depends_on)
                ]
                next_delay = min((w for w in waits if w > now), default=None)
                if running:
                    timeout = None if next_delay is None else max(0.0, next_delay - now)
                    try:
                        res = finished.get(timeout=timeout)
                    except queue.Empty:
                        continue
                    running -= 1
                    done[res.name] = res
                    results.append(res)
                    if res.outcome == Outcome.UP:
                        delay = by_name[res.name].item.delay_after if with_delays else 0.0
                        ready_at[res.name] = time.monotonic() + delay
                    elif res.outcome == Outcome.SKIPPED:
                        ready_at[res.name] = time.monotonic()
                elif next_delay is not None:
                    _wait(
                        rec,
                        cancel,
                        next_delay,
                        "the delay after "
                        + ", ".join(
                            repr(d)
                            for r in pending
                            for d in r.item.depends_on
                            if ready_at.get(d) == next_delay
                        ),
                    )
                elif pending:
                    # Every pending item waits for a dependency that is not up: only possible
                    # if the plan changed under us; refuse rather than wait forever.
                    for r in pending:
                        message = "not started: its dependencies never came up"
                        rec.step(StepKind.SKIP, message, item=r.name, severity=Severity.ERROR)
                        results.append(
                            ItemResult(r.name, r.replica.id, Outcome.NOT_STARTED, message)
                        )
                    pending = []
            up = [n for n, res in done.items() if res.outcome in (Outcome.UP, Outcome.SKIPPED)]
            rec.step(
                StepKind.GROUP_DONE,
                f"priority group {priority}: {len(up)} of {len(items)} up",
                severity=Severity.INFO if len(up) == len(items) else Severity.WARNING,
            )
            if not last_group and ready_at:
                until = max(ready_at.values())
                if until > time.monotonic():
                    last = [n for n, t in ready_at.items() if t == until]
                    _wait(rec, cancel, until, f"the delay after {last[0]!r} before the next group")
    return results


def _wait(rec: Recorder, cancel: threading.Event | None, until: float, why: str) -> None:
    """Wait until `until` (monotonic), or until `cancel` is set."""
    start = time.monotonic()
    if until <= start:
        return
    if cancel is None:
        time.sleep(until - start)
    elif cancel.wait(until - start):
        seconds = time.monotonic() - start
        rec.step(StepKind.WAIT, f"waited {seconds:.1f} s, then cancelled: {why}", seconds=seconds)
        return
    seconds = time.monotonic() - start
    rec.step(StepKind.WAIT, f"waited {seconds:.1f} s: {why}", seconds=seconds)
