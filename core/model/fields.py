"""Validation helpers shared by the model's dataclasses.

Every check raises `InvalidSettingError(field, problem)`, where `field` is the name of the
attribute inside the dataclass being built; the job-file reader places it under the key path
of the enclosing object (`InvalidSettingError.under`), so a user sees `schedule.daily.at[1]: ...`.
Values are shown JSON-quoted (`"25:00"`), which is how they appear in a JSON or YAML file.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import TypeVar

from core.errors import InvalidSettingError

MAX_NAME = 255
E = TypeVar("E", bound=StrEnum)

# A vSphere managed object ID: "vm-42", "group-v3", "domain-c7", "resgroup-8"; on a standalone
# ESXi host "ha-host", "ha-datacenter" or a bare number for VMs. The simulator names a local
# datastore by its folder and datastore folder ("/srv/lab/ds-1@folder-5", core/lab/vcsim/main.go),
# so "/" and "@" are allowed too; spaces and control characters never are.
_MOREF = re.compile(r"^[A-Za-z0-9/][A-Za-z0-9_.:@/-]{0,1023}$")
# A DNS name (RFC 1123 labels) for a server or proxy address.
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def show(value: object) -> str:
    """A value as it would be written in a job file: strings quoted, numbers bare."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def fail(field: str, problem: str) -> InvalidSettingError:
    return InvalidSettingError(field, problem)


def name(field: str, value: object, *, max_len: int = MAX_NAME) -> str:
    """A display name: any letters, spaces, brackets or symbols, but no control characters."""
    if not isinstance(value, str):
        raise fail(field, f"{show(value)} is not a text")
    if not value.strip():
        raise fail(field, "must not be empty")
    if value != value.strip():
        raise fail(field, f"{show(value)} starts or ends with spaces")
    if _CONTROL.search(value):
        raise fail(field, f"{show(value)} contains control characters")
    if len(value) > max_len:
        raise fail(field, f"is {len(value)} characters long, at most {max_len} are allowed")
    return value


def text(field: str, value: object, *, max_len: int = 4000) -> str:
    """A free text such as a description (may be empty, may span lines)."""
    if not isinstance(value, str):
        raise fail(field, f"{show(value)} is not a text")
    if len(value) > max_len:
        raise fail(field, f"is {len(value)} characters long, at most {max_len} are allowed")
    return value


def moref(field: str, value: object) -> str:
    if not isinstance(value, str) or not _MOREF.match(value):
        raise fail(field, f'{show(value)} is not a vSphere managed object ID (such as "vm-42")')
    return value


def address(field: str, value: object) -> str:
    """A host name or an IPv4/IPv6 address."""
    if isinstance(value, str) and value:
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            if _HOSTNAME.match(value) and not value.replace(".", "").isdigit():
                return value
    raise fail(field, f"{show(value)} is not a host name or an IP address")


def integer(field: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(field, f"{show(value)} is not a whole number")
    if not low <= value <= high:
        raise fail(field, f"{value} is out of range ({low} to {high})")
    return value


def port(field: str, value: object) -> int:
    return integer(field, value, 1, 65535)


def flag(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise fail(field, f"{show(value)} is not true or false")
    return value


def choice(field: str, value: object, enum: type[E]) -> E:
    if isinstance(value, enum):
        return value
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    allowed = ", ".join(member.value for member in enum)
    raise fail(field, f"{show(value)} is not one of: {allowed}")


def unique(field: str, values: Iterable[object], what: str) -> None:
    seen: set[object] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise fail(f"{field}[{i}]", f"{what} {show(value)} is listed twice")
        seen.add(value)
