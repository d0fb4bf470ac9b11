"""A failover plan: which replicas come up together on the day of a disaster, in which order.

The model of `replicadesk plan ...` and of the console's plan editor; `core.plans` runs it,
`core.store.plans` keeps it. As in SRM, items sit in priority groups 1-5 (all of a group are up
before the next group starts) and may depend on other items of their own group; as in Veeam,
each item has a delay after it (60 s by default) and the plan runs pre- and post-scripts on the
backup server and starts at most 10 VMs at once. An item names its replica by id, or its
source VM (name or moref, optionally with the job replicating it), resolved when the plan runs.
Validation refuses what cannot run: a priority out of range, a VM listed twice, a dependency on
an unknown item, on an item of another group, or a dependency loop; each error names the field.

Plan files (YAML or JSON, read strictly as job files are, core.model.docload)::

    name: Tier 1 apps
    description: ...
    max_parallel: 10            # VMs starting at once, 1-10
    pre_script: {command: "/opt/dr/notify.sh start", timeout: 60}
    post_script: {command: "/opt/dr/notify.sh done"}
    items:
      - vm: dc01                # or replica: 12; job: "Tier 1" narrows a VM name to one job
        priority: 1             # 1 (first) to 5
        order: 1                # boot order in the group (default: the item's place in the list)
        delay_after: 60         # seconds before its dependants and the next group start
        depends_on: [dc02]      # items (by their name) of the same group
        wait_heartbeat: true    # wait for VMware Tools after power-on
        heartbeat_timeout: 300
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from core.errors import InvalidSettingError, JobFileError
from core.model import fields
from core.model.docload import dump_document, load_document
from core.model.jobfile import FORMATS, _bool, _int, _list, _Map, _str, _under
from core.model.runs import RunStatus, Severity

PRIORITIES = (1, 2, 3, 4, 5)
DEFAULT_PRIORITY = 3  # SRM's default group
DEFAULT_DELAY = 60.0
DEFAULT_HEARTBEAT_TIMEOUT = 300.0
MAX_PARALLEL = 10
MAX_ITEMS = 1000
MAX_DELAY = 3600.0
MAX_SCRIPT_TIMEOUT = 24 * 3600.0


def _seconds(field_name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSettingError(field_name, f"{fields.show(value)} is not a number of seconds")
    if not low <= value <= high:
        raise InvalidSettingError(
            field_name, f"{value:g} s is out of range ({low:g} to {high:g} s)"
        )
    return float(value)


@dataclass(frozen=True)
class PlanScript:
    """A command line run on the backup server (no shell: use `sh -c '...'` for one); its
    output goes to the plan session's log. A failing pre-script stops the plan."""

    command: str
    timeout: float = 300.0

    def __post_init__(self) -> None:
        fields.name("command", self.command, max_len=4000)
        _seconds("timeout", self.timeout, 1, MAX_SCRIPT_TIMEOUT)


@dataclass(frozen=True)
class PlanItem:
    vm: str = ""  # the source VM's name or moref ("" when `replica` names the item)
    job: str = ""  # the job replicating it ("" : any job that has a replica of it)
    replica: int | None = None
    priority: int = DEFAULT_PRIORITY
    order: int = 0  # boot order in its group; 0: its place in the plan's list
    delay_after: float = DEFAULT_DELAY
    depends_on: tuple[str, ...] = ()
    wait_heartbeat: bool = True
    heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT

    def __post_init__(self) -> None:
        if self.replica is None:
            fields.name("vm", self.vm)
        else:
            fields.integer("replica", self.replica, 1, 2**63 - 1)
            if self.vm:
                raise InvalidSettingError("vm", "give a VM or a replica id, not both")
        if self.job:
            fields.name("job", self.job, max_len=128)
        if self.priority not in PRIORITIES or isinstance(self.priority, bool):
            raise InvalidSettingError(
                "priority", f"{fields.show(self.priority)} is out of range (1 to 5)"
            )
        fields.integer("order", self.order, 0, MAX_ITEMS)
        _seconds("delay_after", self.delay_after, 0, MAX_DELAY)
        if not isinstance(self.depends_on, tuple):
            raise InvalidSettingError("depends_on", "must be a list of item names")
        for i, d in enumerate(self.depends_on):
            fields.name(f"depends_on[{i}]", d)
        fields.unique("depends_on", self.depends_on, "dependency")
        fields.flag("wait_heartbeat", self.wait_heartbeat)
        _seconds("heartbeat_timeout", self.heartbeat_timeout, 1, MAX_DELAY)

    @property
    def name(self) -> str:
        """How dependencies name this item: the VM, or "replica <id>"."""
        return self.vm if self.replica is None else f"replica {self.replica}"

    @property
    def key(self) -> tuple[str, str | int]:
        """What makes two items the same VM (before the replicas are looked up)."""
        return ("replica", self.replica) if self.replica is not None else ("vm", self.vm)


@dataclass(frozen=True)
class FailoverPlan:
    name: str
    items: tuple[PlanItem, ...]
    description: str = ""
    max_parallel: int = MAX_PARALLEL
    pre_script: PlanScript | None = None
    post_script: PlanScript | None = None

    def __post_init__(self) -> None:
        fields.name("name", self.name, max_len=128)
        fields.text("description", self.description)
        fields.integer("max_parallel", self.max_parallel, 1, MAX_PARALLEL)
        if not isinstance(self.items, tuple) or not self.items:
            raise InvalidSettingError("items", "a plan needs at least one VM")
        if len(self.items) > MAX_ITEMS:
            raise InvalidSettingError("items", f"{len(self.items)} items, at most {MAX_ITEMS}")
        seen: dict[tuple[str, str | int], int] = {}
        for i, item in enumerate(self.items):
            if not isinstance(item, PlanItem):
                raise InvalidSettingError(f"items[{i}]", "is not a plan item")
            other = seen.get(item.key)
            if other is not None:
                raise InvalidSettingError(
                    f"items[{i}]", f"{item.name!r} is already in the plan (items[{other}])"
                )
            seen[item.key] = i
        _check_dependencies(self.items)

    def item(self, name: str) -> PlanItem:
        for it in self.items:
            if it.name == name:
                return it
        raise InvalidSettingError("items", f"no item named {name!r}")

    def boot_order(self, item: PlanItem) -> int:
        return item.order or self.items.index(item) + 1

    def groups(self) -> list[tuple[int, list[PlanItem]]]:
        """(priority, items in boot order) for each group in use, first group first."""
        out = []
        for p in PRIORITIES:
            members = [it for it in self.items if it.priority == p]
            if members:
                members.sort(key=lambda it: (self.boot_order(it), self.items.index(it)))
                out.append((p, members))
        return out


def _check_dependencies(items: Sequence[PlanItem]) -> None:
    index = {it.name: i for i, it in enumerate(items)}
    for i, it in enumerate(items):
        for j, dep in enumerate(it.depends_on):
            where = f"items[{i}].depends_on[{j}]"
            if dep == it.name:
                raise InvalidSettingError(where, f"{it.name!r} cannot depend on itself")
            if dep not in index:
                raise InvalidSettingError(where, f"{dep!r} is not an item of this plan")
            other = items[index[dep]]
            if other.priority != it.priority:
                raise InvalidSettingError(
                    where,
                    f"{it.name!r} (priority {it.priority}) depends on {dep!r} of priority "
                    f"{other.priority}: dependencies stay inside a priority group (a lower "
                    "group is up before a higher one starts anyway)",
                )
    # A loop: depth-first search, reporting the cycle by names.
    state: dict[str, int] = {}  # 1: on the path, 2: done
    graph = {it.name: it.depends_on for it in items}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in graph[name]:
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep] if dep in path else [name, dep]
                raise InvalidSettingError(
                    f"items[{index[name]}].depends_on",
                    "dependency loop: " + " -> ".join(repr(n) for n in cycle),
                )
            if state.get(dep) is None:
                visit(dep, [*path, dep])
        state[name] = 2

    for it in items:
        if state.get(it.name) is None:
            visit(it.name, [it.name])


# --- plan files --------------------------------------------------------------------------------


def _number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSettingError(path, f"{fields.show(value)} is not a number of seconds")
    return float(value)


def _script(value: object, path: str) -> PlanScript:
    if isinstance(value, str):
        with _under(path):
            return PlanScript(value)
    m = _Map(value, path)
    command = m.need("command", _str)
    timeout = m.get("timeout", _number, 300.0)
    m.done()
    with _under(path):
        return PlanScript(command, timeout)


def _item(value: object, path: str) -> PlanItem:
    m = _Map(value, path)
    defaults = PlanItem(vm="-")
    vm = m.get("vm", _str, "")
    job = m.get("job", _str, "")
    replica = m.get("replica", _int, None)
    priority = m.get("priority", _int, defaults.priority)
    order = m.get("order", _int, 0)
    delay = m.get("delay_after", _number, defaults.delay_after)
    depends = m.get("depends_on", _list(_str), ())
    heartbeat = m.get("wait_heartbeat", _bool, defaults.wait_heartbeat)
    timeout = m.get("heartbeat_timeout", _number, defaults.heartbeat_timeout)
    m.done()
    if not vm and replica is None:
        raise InvalidSettingError(path, "give the item's vm (name or moref) or its replica id")
    with _under(path):
        return PlanItem(vm, job, replica, priority, order, delay, depends, heartbeat, timeout)


def plan_from_document(untrusted: object) -> FailoverPlan:
    """A plan from parsed YAML/JSON; InvalidSettingError naming the key path otherwise."""
    m = _Map(untrusted, "")
    name = m.need("name", _str)
    description = m.get("description", _str, "")
    max_parallel = m.get("max_parallel", _int, MAX_PARALLEL)
    pre = m.get("pre_script", _script, None)
    post = m.get("post_script", _script, None)
    items = m.need("items", _list(_item))
    m.done()
    return FailoverPlan(name, items, description, max_parallel, pre, post)


def _script_doc(script: PlanScript) -> dict[str, Any]:
    return {"command": script.command, "timeout": script.timeout}


def item_to_document(item: PlanItem) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if item.replica is not None:
        doc["replica"] = item.replica
    else:
        doc["vm"] = item.vm
    if item.job:
        doc["job"] = item.job
    doc["priority"] = item.priority
    if item.order:
        doc["order"] = item.order
    doc["delay_after"] = item.delay_after
    if item.depends_on:
        doc["depends_on"] = list(item.depends_on)
    doc["wait_heartbeat"] = item.wait_heartbeat
    doc["heartbeat_timeout"] = item.heartbeat_timeout
    return doc


def plan_to_document(plan: FailoverPlan) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": plan.name,
        "description": plan.description,
        "max_parallel": plan.max_parallel,
    }
    if plan.pre_script is not None:
        doc["pre_script"] = _script_doc(plan.pre_script)
    if plan.post_script is not None:
        doc["post_script"] = _script_doc(plan.post_script)
    doc["items"] = [item_to_document(it) for it in plan.items]
    return doc


def parse_plan(text: str, fmt: str = "yaml", source: str = "<text>") -> FailoverPlan:
    document = load_document(text, fmt, source)
    try:
        return plan_from_document(document)
    except InvalidSettingError as e:
        raise JobFileError(source, str(e)) from None


def load_plan(path: Path) -> FailoverPlan:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise JobFileError(path, "name it .yaml, .yml or .json so its format is known")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise JobFileError(path, f"cannot be read: {e}") from None
    return parse_plan(text, fmt, str(path))


def dump_plan(plan: FailoverPlan, fmt: str = "yaml") -> str:
    return dump_document(plan_to_document(plan), fmt)


def save_plan(plan: FailoverPlan, path: Path) -> None:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise JobFileError(path, "name it .yaml, .yml or .json so its format is known")
    path.write_text(dump_plan(plan, fmt), encoding="utf-8")


def replace_items(plan: FailoverPlan, changes: Mapping[str, Mapping[str, Any]]) -> FailoverPlan:
    """The plan with some items' settings changed ({item name: {field: value}}), validated
    again: what `plan edit --set` does."""
    items = []
    for it in plan.items:
        change = changes.get(it.name)
        items.append(replace(it, **change) if change else it)
    unknown = sorted(set(changes) - {it.name for it in plan.items})
    if unknown:
        raise InvalidSettingError("items", f"no item named {unknown[0]!r}")
    return replace(plan, items=tuple(items))


# --- plan sessions -----------------------------------------------------------------------------


class PlanAction(StrEnum):
    RUN = "run"
    UNDO = "undo"
    TEST = "test"


class StepKind(StrEnum):
    """What a plan session records, one row per step, each with its time."""

    SCRIPT = "script"  # a pre- or post-script ran
    GROUP = "group"  # a priority group starts
    GROUP_DONE = "group_done"  # every item of the group is up (or failed)
    START = "start"  # the item's operation was started
    POWERED_ON = "powered_on"  # failover done: powered on (and re-IP checked when it has rules)
    HEARTBEAT = "heartbeat"  # VMware Tools answer
    UP = "up"  # the item counts as up: its dependants may start after its delay
    DELAY = "delay"  # the item's delay after it is over
    WAIT = "wait"  # nothing to do but wait for a delay (`seconds`): a benchmark subtracts it
    SKIP = "skip"  # not touched, with the reason
    FAILED = "failed"  # the item's operation failed
    DONE = "done"  # undo, test or cleanup of the item finished
    INFO = "info"


@dataclass(frozen=True)
class PlanStep:
    id: int
    session_id: int
    time: dt.datetime
    kind: StepKind
    message: str
    item: str = ""  # the item's name ("" for plan-wide steps)
    replica_id: int | None = None
    severity: Severity = Severity.INFO
    op_session: int | None = None  # the replica operation's session (core.failover)
    seconds: float = 0.0  # WAIT and DELAY: how long


@dataclass(frozen=True)
class PlanSession:
    id: int
    plan: str
    action: PlanAction
    status: RunStatus
    started: dt.datetime
    ended: dt.datetime | None = None
    point_in_time: dt.datetime | None = None
    steps: tuple[PlanStep, ...] = ()

    def of(self, kind: StepKind) -> list[PlanStep]:
        return [s for s in self.steps if s.kind == kind]
