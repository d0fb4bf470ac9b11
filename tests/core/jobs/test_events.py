"""The runner's events as JSON lines (`job run --events`, read by the console): every record
round-trips, and a line another process wrote wrong is refused with what is wrong."""

from __future__ import annotations

import json

import pytest

from core.errors import EventStreamError
from core.jobs import events as ev
from core.model.runs import RunStatus, Severity

RECORDS: list[ev.Record] = [
    ev.SessionStarted(7, "Tier 1 to DR", 50),
    ev.TaskStarted(7, 31, "Zürich fileserver [fs]"),
    ev.TaskProgress(7, 31, "db #2 & replica", 2000, "copy", 3 << 20, 16 << 30),
    ev.TaskLog(7, None, "", Severity.WARNING, 'a "quoted" line\nand a second one'),
    ev.TaskLog(7, 31, "web 02 (canary)", Severity.ERROR, "disk 2000: read failed"),
    ev.TaskFinished(7, 31, "50% batch", RunStatus.WARNING, 1 << 40, 0),
    ev.SessionFinished(7, "Tier 1 to DR", RunStatus.FAILED),
    ev.RunError("job 'x' is being processed by another run (pid 12)", "LockHeldError", 22),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_every_record_round_trips_on_one_ascii_line(record: ev.Record) -> None:
    line = ev.event_to_json(record)
    assert "\n" not in line and line.isascii()
    assert json.loads(line)["event"] == type(record).__name__
    back = ev.event_from_json(line)
    assert back == record and type(back) is type(record)
    assert ev.event_from_json(line.encode()) == record
    if isinstance(record, ev.TaskFinished):
        assert back.status is RunStatus.WARNING  # the enum, not its text


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("", "not a JSON line"),
        ("replicadesk: cancelling", "not a JSON line"),
        ("[1, 2]", "not a JSON object"),
        ('{"session_id": 1}', "unknown event None"),
        ('{"event": "Exploded"}', "unknown event 'Exploded'"),
        ('{"event": "SessionStarted", "session_id": 1, "job": "j"}', "missing fields ['vms']"),
        (
            '{"event": "SessionStarted", "session_id": 1, "job": "j", "vms": 2, "pid": 3}',
            "unknown fields ['pid']",
        ),
        (
            '{"event": "SessionStarted", "session_id": "1", "job": "j", "vms": 2}',
            "SessionStarted.session_id: '1' is not a whole number",
        ),
        (
            '{"event": "SessionStarted", "session_id": true, "job": "j", "vms": 2}',
            "SessionStarted.session_id: True is not a whole number",
        ),
        (
            '{"event": "SessionFinished", "session_id": 1, "job": 5, "status": "success"}',
            "SessionFinished.job: 5 is not text",
        ),
        (
            '{"event": "SessionFinished", "session_id": 1, "job": "j", "status": "great"}',
            "SessionFinished.status: 'great' is not a RunStatus",
        ),
        (
            '{"event": "TaskLog", "session_id": 1, "task_id": null, "vm": "", '
            '"severity": "loud", "message": "m"}',
            "TaskLog.severity: 'loud' is not a Severity",
        ),
        (
            '{"event": "TaskStarted", "session_id": 1, "task_id": null, "vm": "v"}',
            "TaskStarted.task_id: None is not a whole number",
        ),
    ],
)
def test_a_wrong_line_is_refused_with_what_is_wrong(line: str, says: str) -> None:
    with pytest.raises(EventStreamError) as raised:
        ev.event_from_json(line)
    assert says in str(raised.value)
