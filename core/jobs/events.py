"""What a running job tells the world: typed progress events.

The runner calls an `EventSink` (a plain callable) from its worker threads; the CLI prints the
events, the console turns them into Qt signals, the service ignores most of them. The store holds
the lasting record (sessions, task sessions, their logs); events are only for watching live.

`replicadesk job run NAME --events` writes them one JSON object a line (`event_to_json`), in
the order the runner emitted them, and ends with a `RunError` line when the run could not start
or broke off with an error of core's; the console runs its jobs that way in a child process and
reads them back (`event_from_json`, which checks every field of what another process wrote).
A line is `{"event": "<class name>", <the dataclass's fields>}`, plain ASCII.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import EventStreamError
from core.model.runs import RunStatus, Severity


@dataclass(frozen=True)
class SessionStarted:
    session_id: int
    job: str
    vms: int


@dataclass(frozen=True)
class TaskStarted:
    session_id: int
    task_id: int
    vm: str


@dataclass(frozen=True)
class TaskProgress:
    session_id: int
    task_id: int
    vm: str
    disk_key: int
    phase: str  # "copy", "rebuild"
    done: int
    total: int


@dataclass(frozen=True)
class TaskLog:
    session_id: int
    task_id: int | None
    vm: str
    severity: Severity
    message: str


@dataclass(frozen=True)
class TaskFinished:
    session_id: int
    task_id: int
    vm: str
    status: RunStatus
    processed_bytes: int
    transferred_bytes: int


@dataclass(frozen=True)
class SessionFinished:
    session_id: int
    job: str
    status: RunStatus


Event = SessionStarted | TaskStarted | TaskProgress | TaskLog | TaskFinished | SessionFinished
EventSink = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The sink of a run nobody watches."""


@dataclass(frozen=True)
class RunError:
    """Not the runner's: the last line of `job run --events` when the command ends in an error
    of core's (the job is unknown, another process runs it, ...). `message` is what the CLI
    would print; `kind` the error's class name; `exit_code` the command's."""

    message: str
    kind: str
    exit_code: int


Record = Event | RunError
"""What a line of `job run --events` holds."""

_RECORDS: dict[str, type[Record]] = {
    cls.__name__: cls
    for cls in (
        SessionStarted,
        TaskStarted,
        TaskProgress,
        TaskLog,
        TaskFinished,
        SessionFinished,
        RunError,
    )
}
# Each record's fields and their types, resolved once (the console decodes every line).
_FIELDS: dict[str, dict[str, object]] = {
    name: {f.name: typing.get_type_hints(cls)[f.name] for f in dataclasses.fields(cls)}
    for name, cls in _RECORDS.items()
}


def event_to_json(record: Record) -> str:
    """One line (no newline) for `record`: its class name under "event", then its fields."""
    doc: dict[str, Any] = {"event": type(record).__name__}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        doc[f.name] = str(value) if isinstance(value, (RunStatus, Severity)) else value
    return json.dumps(doc, separators=(",", ":"))


def event_from_json(untrusted_line: str | bytes) -> Record:
    """The record a line of `event_to_json` holds; `EventStreamError` for anything else (not
    JSON, an unknown event, a missing, extra or mistyped field, an unknown status)."""
    try:
        untrusted = json.loads(untrusted_line)
    except (ValueError, UnicodeDecodeError) as e:
        raise EventStreamError(f"not a JSON line ({e}): {_show(untrusted_line)}") from None
    if not isinstance(untrusted, dict):
        raise EventStreamError(f"not a JSON object: {_show(untrusted_line)}")
    name = untrusted.pop("event", None)
    cls = _RECORDS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise EventStreamError(f"unknown event {name!r}: {_show(untrusted_line)}")
    types = _FIELDS[name]
    if untrusted.keys() != types.keys():
        missing = sorted(types.keys() - untrusted.keys())
        extra = sorted(untrusted.keys() - types.keys())
        raise EventStreamError(f"{name}: missing fields {missing}, unknown fields {extra}")
    values: dict[str, Any] = {n: _field(name, n, t, untrusted[n]) for n, t in types.items()}
    return cls(**values)


def _field(event: str, name: str, kind: object, untrusted: object) -> object:
    where = f"{event}.{name}"
    if kind is RunStatus or kind is Severity:
        if isinstance(untrusted, str) and untrusted in {m.value for m in kind}:
            return kind(untrusted)
        raise EventStreamError(f"{where}: {untrusted!r} is not a {kind.__name__}")
    if kind == int | None and untrusted is None:
        return None
    if kind in (int, int | None):
        # bool is an int to Python, not to the stream.
        if isinstance(untrusted, int) and not isinstance(untrusted, bool):
            return untrusted
        raise EventStreamError(f"{where}: {untrusted!r} is not a whole number")
    if kind is str and isinstance(untrusted, str):
        return untrusted
    raise EventStreamError(f"{where}: {untrusted!r} is not text")


def _show(line: str | bytes) -> str:
    text = line if isinstance(line, str) else line.decode("utf-8", "replace")
    text = text.strip()
    return repr(text if len(text) <= 200 else text[:200] + "...")
