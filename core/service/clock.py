"""Time for the scheduler: an injectable clock and the zone schedules are read in.

The clock is a callable returning aware UTC datetimes (tests pass one they move by hand, so a
run "tomorrow at 22:00" takes no waiting). Schedules are wall-clock times ("daily at 22:00"), so
the scheduler converts each instant to the zone it reads schedules in, the machine's own by
default, found as a named zone so that DST changes move the next run correctly.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Clock = Callable[[], dt.datetime]

_LOCALTIME = Path("/etc/localtime")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def local_zone() -> dt.tzinfo:
    """The machine's zone: $TZ, else the zone /etc/localtime links to, else the current offset."""
    names = [os.environ.get("TZ", "").lstrip(":")]
    try:
        target = str(_LOCALTIME.resolve())
    except OSError:
        target = ""
    if "zoneinfo/" in target:
        names.append(target.split("zoneinfo/", 1)[1])
    for name in names:
        if not name:
            continue
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    # A fixed offset: right until the next DST change, which is the best this host tells us.
    zone = dt.datetime.now().astimezone().tzinfo
    return zone if zone is not None else dt.UTC
