"""How the console writes values people read: sizes, times, durations, rates, statuses.

Pure functions, no Qt: the table models and the session window share them, and the CLI's
conventions (binary units, local time to the second) carry over so both say the same thing.
"""

from __future__ import annotations

import datetime as dt

from core.cli.context import size as _size
from core.model.runs import RunStatus

STATUS_WORDS = {
    RunStatus.RUNNING: "Running",
    RunStatus.SUCCESS: "Success",
    RunStatus.WARNING: "Warning",
    RunStatus.FAILED: "Failed",
}


def size(n: float) -> str:
    return _size(n)


def when(value: dt.datetime | None, empty: str = "") -> str:
    """Local time to the second, or `empty` when there is none."""
    if value is None:
        return empty
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float) -> str:
    """ "0:42", "12:05", "3:04:05" (hours only when needed)."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def rate(bytes_per_second: float) -> str:
    return f"{size(bytes_per_second)}/s" if bytes_per_second > 0 else ""


def status(value: RunStatus | None) -> str:
    return "" if value is None else STATUS_WORDS[RunStatus(value)]


def elapsed(
    started: dt.datetime, ended: dt.datetime | None, now: dt.datetime | None = None
) -> float:
    """Seconds from start to end (or to now while running)."""
    end = ended or now or dt.datetime.now(dt.UTC)
    return max(0.0, (end - started).total_seconds())
