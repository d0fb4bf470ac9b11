"""Schedules: next_run across day and week boundaries, periodic slots, windows and retries."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from core.errors import InvalidSettingError
from core.model.schedule import (
    ALL_HOURS,
    AfterJob,
    BackupWindow,
    Daily,
    IntervalUnit,
    JobSchedule,
    Periodic,
    RetryPolicy,
)

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """A time in the week of Monday 2026-11-23."""
    return dt.datetime(2026, 11, 23 + day, hour, minute)


def night_window() -> BackupWindow:
    hours = frozenset(range(0, 7)) | frozenset(range(20, 24))
    return BackupWindow((hours,) * 5 + (ALL_HOURS, ALL_HOURS))


def test_daily_later_today_then_tomorrow() -> None:
    s = JobSchedule(Daily((dt.time(22, 0), dt.time(4, 30))))
    assert s.next_run(at(MON, 12)) == at(MON, 22)
    assert s.next_run(at(MON, 22)) == at(TUE, 4, 30)  # strictly after
    assert s.next_run(at(MON, 23, 59)) == at(TUE, 4, 30)


def test_daily_on_chosen_weekdays_crosses_the_weekend() -> None:
    s = JobSchedule(Daily((dt.time(22, 0),), frozenset({MON, FRI})))
    assert s.next_run(at(FRI, 22, 0)) == at(MON + 7, 22)
    assert s.next_run(at(TUE, 9)) == at(FRI, 22)


def test_daily_across_month_and_year_ends() -> None:
    s = JobSchedule(Daily((dt.time(0, 15),)))
    assert s.next_run(dt.datetime(2026, 12, 31, 23, 0)) == dt.datetime(2027, 1, 1, 0, 15)
    assert s.next_run(dt.datetime(2028, 2, 28, 1, 0)) == dt.datetime(2028, 2, 29, 0, 15)


def test_periodic_slots_restart_at_midnight() -> None:
    s = JobSchedule(Periodic(5, IntervalUnit.HOURS))
    assert s.next_run(at(MON, 6)) == at(MON, 10)
    assert s.next_run(at(MON, 20)) == at(TUE, 0)  # not 01:00: slots restart each day
    every15 = JobSchedule(Periodic(15, IntervalUnit.MINUTES, offset_minutes=5))
    assert every15.next_run(at(MON, 9, 7)) == at(MON, 9, 20)
    assert every15.next_run(at(MON, 23, 50)) == at(TUE, 0, 5)


def test_starts_outside_the_window_are_skipped() -> None:
    s = JobSchedule(Periodic(1), window=night_window())
    assert s.next_run(at(MON, 7)) == at(MON, 20)
    assert s.next_run(at(FRI, 23)) == at(SAT, 0)
    assert s.next_run(at(SAT, 9)) == at(SAT, 10)  # weekend: any hour
    daily = JobSchedule(Daily((dt.time(12, 0), dt.time(21, 0))), window=night_window())
    assert daily.next_run(at(TUE, 1)) == at(TUE, 21)


def test_in_window_and_window_closes() -> None:
    s = JobSchedule(Periodic(1), window=night_window())
    assert s.in_window(at(MON, 6, 59)) and not s.in_window(at(MON, 7, 0))
    assert s.in_window(at(SUN, 13))
    assert s.window_closes(at(MON, 5, 30)) == at(MON, 7)
    assert s.window_closes(at(MON, 22)) == at(TUE, 7)  # through midnight
    assert s.window_closes(at(SAT, 3)) == at(MON + 7, 7)  # the whole weekend is open
    always = JobSchedule(Periodic(1))
    assert always.in_window(at(WED, 12)) and always.window_closes(at(WED, 12)) is None


def test_no_trigger_after_job_and_disabled_have_no_next_run() -> None:
    assert JobSchedule().next_run(at(MON, 1)) is None
    assert JobSchedule(AfterJob("Nightly SQL")).next_run(at(MON, 1)) is None
    assert JobSchedule(Daily((dt.time(1, 0),)), enabled=False).next_run(at(MON, 0)) is None


def test_aware_times_stay_on_the_wall_clock_across_dst() -> None:
    zone = ZoneInfo("Europe/Berlin")
    s = JobSchedule(Daily((dt.time(22, 0),)))
    # The night of 2026-10-25 the clocks go back: 22:00 is still 22:00 local time.
    after = dt.datetime(2026, 10, 24, 23, 0, tzinfo=zone)
    nxt = s.next_run(after)
    assert nxt == dt.datetime(2026, 10, 25, 22, 0, tzinfo=zone)
    assert nxt is not None and nxt.utcoffset() == dt.timedelta(hours=1)


def test_retries() -> None:
    retry = RetryPolicy(times=2, wait_minutes=10)
    failed = at(TUE, 3)
    assert retry.retry_at(failed, 0) == at(TUE, 3, 10)
    assert retry.retry_at(failed, 1) == at(TUE, 3, 10)
    assert retry.retry_at(failed, 2) is None
    assert RetryPolicy(times=0).retry_at(failed, 0) is None


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Daily(()), "at: give at least one time of day"),
        (lambda: Daily((dt.time(1), dt.time(1))), 'at[1]: time "01:00:00" is listed twice'),
        (lambda: Daily((dt.time(1),), frozenset()), "days: give at least one weekday"),
        (lambda: Periodic(0), "every: 0 is out of range (1 to 24)"),
        (lambda: Periodic(2000, IntervalUnit.MINUTES), "every: 2000 is out of range (1 to 1440)"),
        (lambda: Periodic(2, offset_minutes=150), "offset_minutes: 150 is out of range (0 to 119)"),
        (lambda: RetryPolicy(times=-1), "times: -1 is out of range (0 to 99)"),
        (lambda: RetryPolicy(wait_minutes=0), "wait_minutes: 0 is out of range (1 to 1440)"),
        (
            lambda: BackupWindow((frozenset(),) * 7),
            "the window allows no hour at all: the job could never run",
        ),
        (lambda: BackupWindow((frozenset({24}),) * 7), "mon: 24 is out of range (0 to 23)"),
        (
            lambda: JobSchedule(
                Daily((dt.time(12),), frozenset({MON, FRI})), window=night_window()
            ),
            "window: none of the daily start times falls inside the window",
        ),
        (lambda: AfterJob(""), "job: must not be empty"),
    ],
)
def test_bad_schedules_are_refused(build: object, message: str) -> None:
    with pytest.raises(InvalidSettingError) as err:
        build()  # type: ignore[operator]
    assert str(err.value) == message
