"""Network mapping: which target network each source network's NICs are connected to.

Rows map a source network name to a target network name. A source network without a row maps
to the target network of the same name when one exists (unless `same_name` is off); otherwise
the NIC is disconnected, and the runner warns. Whether the mapped target network still exists
is checked by the runner before every run and at failover; here the rules are pure.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from core.model import fields


@dataclass(frozen=True)
class NetworkMapping:
    source: str
    target: str

    def __post_init__(self) -> None:
        fields.name("source", self.source)
        fields.name("target", self.target)


@dataclass(frozen=True)
class NetworkMap:
    mappings: tuple[NetworkMapping, ...] = ()
    same_name: bool = True

    def __post_init__(self) -> None:
        fields.flag("same_name", self.same_name)
        fields.unique("mappings", (r.source for r in self.mappings), "source network")

    def target_for(self, source: str, target_networks: Collection[str]) -> str | None:
        """The target network for a NIC on `source`, or None: the NIC is to be disconnected.

        An explicit row wins even when its target is missing from `target_networks` (the runner
        reports that as an error rather than silently disconnecting the NIC).
        """
        for row in self.mappings:
            if row.source == source:
                return row.target
        if self.same_name and source in target_networks:
            return source
        return None
