"""A secret (a password) in memory, and a named credential that holds one.

`Secret` never shows its value: repr, str and format print `********`, so a secret that ends up
in a log line, an exception or a dataclass repr is not disclosed. The value is read only through
`reveal()`, at the place that hands it to vSphere. At rest secrets are encrypted by
`core.store.secrets`; a `Secret` is never pickled (it refuses to be), so it cannot leak into a
multiprocessing queue or a cache file by accident.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import NoReturn

from core.errors import InvalidSettingError
from core.model import fields

MASK = "********"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise InvalidSettingError("secret", "must be a non-empty text")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(Secret)  # equal secrets must hash alike; the value itself is not hashed

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret is not pickled: pass the credential's name, not its value")


@dataclass(frozen=True)
class Credential:
    """A password stored under a name; managed servers refer to it by that name."""

    name: str
    secret: Secret
    description: str = ""

    def __post_init__(self) -> None:
        fields.name("name", self.name)
        if not isinstance(self.secret, Secret):
            raise InvalidSettingError("secret", "must be a Secret")
        fields.text("description", self.description)
