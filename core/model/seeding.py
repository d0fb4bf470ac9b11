"""Replica seeding, the wizard's Seeding step: source VMs mapped to existing VMs at the DR site.

A mapping names a source VM and a VM that already exists on the job's target server (a copy
restored there earlier, or the replica of a job that was re-created). The first run of that VM
adopts the mapped VM as its replica instead of creating one: `core.jobs.seed` checks it, copies
its disks into the replica chains at the target and sends only the blocks that differ. Seeding
from backup files does not exist in ReplicaDesk (it keeps no backups). Here the rules are pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InvalidSettingError
from core.model import fields
from core.model.objects import ObjectKind, ObjectRef


@dataclass(frozen=True)
class ReplicaMapping:
    vm: ObjectRef  # the source VM
    replica: ObjectRef  # an existing VM on the target server

    def __post_init__(self) -> None:
        self.vm.require_kind("vm", {ObjectKind.VM})
        self.replica.require_kind("replica", {ObjectKind.VM})


@dataclass(frozen=True)
class Seeding:
    mappings: tuple[ReplicaMapping, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.mappings, tuple):
            raise InvalidSettingError("mappings", "must be a list of mappings")
        fields.unique("mappings", (m.vm.moref for m in self.mappings), "source VM")
        seen: dict[str, str] = {}
        for i, m in enumerate(self.mappings):
            other = seen.get(m.replica.moref)
            if other is not None:
                raise InvalidSettingError(
                    f"mappings[{i}].replica",
                    f"{fields.show(m.replica.name)} is already the replica of {fields.show(other)}",
                )
            seen[m.replica.moref] = m.vm.name

    def replica_for(self, vm_moref: str) -> ObjectRef | None:
        """The existing VM the first run of `vm_moref` adopts, or None: a new replica is made."""
        for m in self.mappings:
            if m.vm.moref == vm_moref:
                return m.replica
        return None
