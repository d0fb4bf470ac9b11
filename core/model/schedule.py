"""When a job runs: a trigger (daily, periodic, after another job, or none), retries, a window.

All computations are pure functions of the datetime passed in, in that datetime's own time
(a naive datetime is local wall-clock time; an aware one is handled in its zone), so the
scheduler and the tests agree on every instant:

- `next_run(after)`: the first start strictly after `after` that the trigger gives and the
  window allows (a start that falls outside the window is skipped, as in Veeam), or None.
- `in_window(dt)`: whether a job may run at `dt`; outside the window a running job is stopped.
- `window_closes(dt)`: the instant the window next closes after `dt` (None: it never does).

The window is an hourly grid per weekday, like the wizard's "Time Periods" dialog. Periodic
slots restart at midnight each day: every 5 hours gives 00:00, 05:00, 10:00, 15:00, 20:00.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from core.errors import InvalidSettingError
from core.model import fields

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAYS = frozenset(range(7))
ALL_HOURS = frozenset(range(24))
# How far ahead next_run looks for a start the window allows: a week covers every weekday.
_HORIZON_DAYS = 8


class IntervalUnit(StrEnum):
    MINUTES = "minutes"
    HOURS = "hours"


@dataclass(frozen=True)
class Daily:
    at: tuple[dt.time, ...]
    days: frozenset[int] = ALL_DAYS  # 0 = Monday ... 6 = Sunday

    def __post_init__(self) -> None:
        if not isinstance(self.at, tuple) or not self.at:
            raise InvalidSettingError("at", "give at least one time of day")
        for i, t in enumerate(self.at):
            if not isinstance(t, dt.time) or t.tzinfo is not None:
                raise InvalidSettingError(f"at[{i}]", f"{fields.show(str(t))} is not a time")
        fields.unique("at", (t.isoformat() for t in self.at), "time")
        if not self.days:
            raise InvalidSettingError("days", "give at least one weekday")
        for d in sorted(self.days):
            fields.integer("days", d, 0, 6)

    def starts_on(self, day: dt.date) -> Iterator[dt.time]:
        if day.weekday() in self.days:
            yield from sorted(self.at)


@dataclass(frozen=True)
class Periodic:
    every: int
    unit: IntervalUnit = IntervalUnit.HOURS
    offset_minutes: int = 0  # first slot of the day, minutes after midnight

    def __post_init__(self) -> None:
        fields.choice("unit", self.unit, IntervalUnit)
        high = 1440 if self.unit == IntervalUnit.MINUTES else 24
        fields.integer("every", self.every, 1, high)
        fields.integer("offset_minutes", self.offset_minutes, 0, self.interval_minutes - 1)

    @property
    def interval_minutes(self) -> int:
        return self.every * (60 if self.unit == IntervalUnit.HOURS else 1)

    def starts_on(self, day: dt.date) -> Iterator[dt.time]:
        minute = self.offset_minutes
        while minute < 1440:
            yield dt.time(minute // 60, minute % 60)
            minute += self.interval_minutes


@dataclass(frozen=True)
class AfterJob:
    """Start when the named job finishes (the scheduler triggers it; no time of its own)."""

    job: str

    def __post_init__(self) -> None:
        fields.name("job", self.job)


Trigger = Daily | Periodic | AfterJob


@dataclass(frozen=True)
class RetryPolicy:
    """Retry the failed VMs of a run `times` times, `wait_minutes` apart (Veeam: 3 and 10)."""

    times: int = 3
    wait_minutes: int = 10

    def __post_init__(self) -> None:
        fields.integer("times", self.times, 0, 99)
        fields.integer("wait_minutes", self.wait_minutes, 1, 1440)

    def retry_at(self, failed_at: dt.datetime, attempts_done: int) -> dt.datetime | None:
        """When to retry after the run that ended at `failed_at`; attempts_done counts retries
        already made (0 after the first run). None when no retry is left."""
        if attempts_done >= self.times:
            return None
        return failed_at + dt.timedelta(minutes=self.wait_minutes)


@dataclass(frozen=True)
class BackupWindow:
    """Hours a job may run, per weekday (index 0 = Monday); an hour h allows h:00 to h:59."""

    hours: tuple[frozenset[int], ...] = field(default=(ALL_HOURS,) * 7)

    def __post_init__(self) -> None:
        if not isinstance(self.hours, tuple) or len(self.hours) != 7:
            raise InvalidSettingError("hours", "give the allowed hours of each of the 7 weekdays")
        for day, allowed in zip(WEEKDAYS, self.hours, strict=True):
            for h in sorted(allowed):
                fields.integer(day, h, 0, 23)
        if not any(self.hours):
            raise InvalidSettingError(
                "", "the window allows no hour at all: the job could never run"
            )

    def allows(self, when: dt.datetime) -> bool:
        return when.hour in self.hours[when.weekday()]

    def closes_after(self, when: dt.datetime) -> dt.datetime | None:
        """The first hour boundary after `when` at which running is no longer allowed."""
        if all(len(h) == 24 for h in self.hours):
            return None
        hour = when.replace(minute=0, second=0, microsecond=0)
        for _ in range(24 * 7 + 1):
            # Wall-clock steps (Python adds timedeltas to aware datetimes in wall time), so an
            # hour boundary stays on the hour across a DST change.
            hour += dt.timedelta(hours=1)
            if not self.allows(hour):
                return hour
        return None


def _combine(day: dt.date, t: dt.time, like: dt.datetime) -> dt.datetime:
    return dt.datetime.combine(day, t, tzinfo=like.tzinfo)


@dataclass(frozen=True)
class JobSchedule:
    trigger: Trigger | None = None  # None: run on demand only
    retry: RetryPolicy = RetryPolicy()
    window: BackupWindow | None = None  # None: any time
    enabled: bool = True

    def __post_init__(self) -> None:
        fields.flag("enabled", self.enabled)
        if isinstance(self.trigger, Daily) and self.window is not None:
            possible = any(
                self.window.allows(dt.datetime.combine(dt.date(2024, 1, 1 + d), t))
                for d in self.trigger.days
                for t in self.trigger.at
            )
            if not possible:
                raise InvalidSettingError(
                    "window", "none of the daily start times falls inside the window"
                )

    def in_window(self, when: dt.datetime) -> bool:
        return self.window is None or self.window.allows(when)

    def window_closes(self, when: dt.datetime) -> dt.datetime | None:
        return None if self.window is None else self.window.closes_after(when)

    def next_run(self, after: dt.datetime) -> dt.datetime | None:
        trigger = self.trigger
        if not self.enabled or trigger is None or isinstance(trigger, AfterJob):
            return None
        day = after.date()
        for _ in range(_HORIZON_DAYS):
            for t in trigger.starts_on(day):
                start = _combine(day, t, after)
                if start > after and self.in_window(start):
                    return start
            day += dt.timedelta(days=1)
        return None
