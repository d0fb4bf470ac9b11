"""Waiting for vSphere tasks: WaitForUpdatesEx on a PropertyCollector of the wait's own, always
with a deadline.

Every long operation of core.vsphere (snapshots, power, reconfiguration, file operations) returns
a Task; `wait` follows ``info.state``, ``info.progress``, ``info.result`` and ``info.error``
through the PropertyCollector, never through ``task.info`` (pyVmomi 9 raises TypeError on the
``info`` of FileManager and snapshot tasks when the server puts a non-entity in ``info.entity``,
LAB.md). Each wait makes its own collector (CreatePropertyCollector) and destroys it at the end,
so waits in parallel threads never see each other's update versions. A task that never ends
(seen on the simulator when a handler panics) is reported after `timeout` as a
`VSphereTaskTimeoutError` naming the task; the task itself is left alone.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import VSphereError, VSphereTaskTimeoutError
from core.vsphere._pyvmomi import vim, vmodl
from core.vsphere.connection import VSphereClient
from core.vsphere.faults import map_fault
from core.vsphere.props import moref, retrieve

PC = vmodl.query.PropertyCollector
Progress = Callable[[int], None]
TASK_PATHS = ["info.state", "info.error", "info.result", "info.progress"]
# One WaitForUpdatesEx round asks for at most this long, so a closed session or a cancelled run
# is noticed within it (vcsim counts maxWaitSeconds in whole seconds).
MAX_ROUND = 10


@dataclass(frozen=True)
class TaskInfo:
    moref: str
    name: str  # "PowerOnVM_Task"
    entity_name: str
    state: str  # "queued", "running", "success", "error"
    progress: int  # percent, -1 when not reported
    error: str  # the fault's words when state is "error"


def wait(
    client: VSphereClient,
    task: Any,
    what: str,
    timeout: float,
    progress: Progress | None = None,
) -> Any:
    """The task's ``info.result`` once it succeeded; its fault, mapped, if it failed."""
    content = client.content
    task_id = moref(task)
    pc = client.call(what, content.propertyCollector.CreatePropertyCollector)
    try:
        spec = PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=task, skip=False)],
            propSet=[PC.PropertySpec(type=vim.Task, pathSet=TASK_PATHS)],
        )
        client.call(what, lambda: pc.CreateFilter(spec, partialUpdates=False))
        deadline = time.monotonic() + timeout
        version = ""
        seen: dict[str, Any] = {}
        last_progress = -1
        while True:
            left = deadline - time.monotonic()
            if version and left <= 0:
                raise VSphereTaskTimeoutError(
                    what, task_id, timeout, seen.get("info.state", "queued")
                )
            rounds = max(1, min(MAX_ROUND, math.ceil(left)))
            options = PC.WaitOptions(maxWaitSeconds=rounds)
            update = client.call(
                what,
                lambda v=version, o=options: pc.WaitForUpdatesEx(v, o),  # type: ignore[misc]
            )
            if update is None:
                continue
            version = update.version
            for fs in update.filterSet or ():
                for obj in fs.objectSet or ():
                    for change in obj.changeSet or ():
                        seen[change.name] = None if change.op == "remove" else change.val
            state = seen.get("info.state")
            pct = seen.get("info.progress")
            if progress is not None and isinstance(pct, int) and pct != last_progress:
                last_progress = pct
                progress(pct)
            if state == "success":
                if progress is not None and last_progress != 100:
                    progress(100)
                return seen.get("info.result")
            if state == "error":
                fault = seen.get("info.error")
                if fault is None:
                    raise VSphereError(what, f"task {task_id} failed without saying why")
                raise map_fault(fault, what)
    finally:
        # The session may be gone; the server drops the collector with it then.
        with contextlib.suppress(VSphereError):
            client.call(f"{what} (clean up)", pc.DestroyPropertyCollector)


def wait_for_task(
    client: VSphereClient,
    task: str,
    what: str,
    timeout: float,
    progress: Progress | None = None,
) -> str:
    """Wait for the task with ID `task`; its result's managed object ID ("" when it has none)."""
    result = wait(client, client.obj("Task", task), what, timeout, progress)
    return moref(result) if hasattr(result, "_moId") else ""


def recent_tasks(client: VSphereClient) -> list[TaskInfo]:
    """The server's recent tasks (TaskManager.recentTask), read through the PropertyCollector."""
    tm = client.content.taskManager
    props = next(iter(retrieve(client, [tm], ["recentTask"], "list recent tasks").values()), {})
    tasks = list(props.get("recentTask") or ())
    paths = ["info.name", "info.descriptionId", "info.entityName", "info.state", "info.progress"]
    rows = retrieve(client, tasks, [*paths, "info.error"], "read recent tasks")
    out = []
    for t in tasks:
        p = rows.get(moref(t), {})
        err = p.get("info.error")
        out.append(
            TaskInfo(
                moref=moref(t),
                name=str(p.get("info.name") or p.get("info.descriptionId") or ""),
                entity_name=str(p.get("info.entityName") or ""),
                state=str(p.get("info.state") or ""),
                progress=int(p["info.progress"]) if p.get("info.progress") is not None else -1,
                error=str(map_fault(err, "task")) if err is not None else "",
            )
        )
    return out
