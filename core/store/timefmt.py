"""Datetimes in the database: ISO 8601 text in UTC, so text order is time order."""

from __future__ import annotations

import datetime as dt

from core.errors import UsageError


def to_db(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise UsageError(f"time {value.isoformat()} has no time zone; the store needs one")
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def to_db_opt(value: dt.datetime | None) -> str | None:
    return None if value is None else to_db(value)


def from_db(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def from_db_opt(text: str | None) -> dt.datetime | None:
    return None if text is None else from_db(text)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
