"""Where replicas go: target host or cluster, resource pool, VM folder, datastore, disk type.

One `Placement` per VM comes out of `Destination.for_vm`: the job-wide choices with that VM's
overrides applied. In a cluster the runner picks the host with the fewest registered VMs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from core.errors import InvalidSettingError
from core.model import fields
from core.model.objects import ObjectKind, ObjectRef

TARGET_KINDS = frozenset({ObjectKind.HOST, ObjectKind.CLUSTER})


class DiskType(StrEnum):
    SAME = "same"  # as the source disk
    THIN = "thin"
    THICK = "thick"


@dataclass(frozen=True)
class Placement:
    target: ObjectRef  # host or cluster
    datastore: ObjectRef
    resource_pool: ObjectRef | None = None  # None: the root pool of the host or cluster
    folder: ObjectRef | None = None  # None: the datacenter's VM folder
    disk_type: DiskType = DiskType.SAME

    def __post_init__(self) -> None:
        self.target.require_kind("target", TARGET_KINDS)
        self.datastore.require_kind("datastore", {ObjectKind.DATASTORE})
        if self.resource_pool is not None:
            self.resource_pool.require_kind("resource_pool", {ObjectKind.RESOURCE_POOL})
        if self.folder is not None:
            self.folder.require_kind("folder", {ObjectKind.FOLDER})
        fields.choice("disk_type", self.disk_type, DiskType)


@dataclass(frozen=True)
class VmOverride:
    """A VM placed differently from the rest of the job; None keeps the job's choice."""

    vm: ObjectRef
    datastore: ObjectRef | None = None
    resource_pool: ObjectRef | None = None
    folder: ObjectRef | None = None
    disk_type: DiskType | None = None

    def __post_init__(self) -> None:
        self.vm.require_kind("vm", {ObjectKind.VM})
        if self.datastore is not None:
            self.datastore.require_kind("datastore", {ObjectKind.DATASTORE})
        if self.resource_pool is not None:
            self.resource_pool.require_kind("resource_pool", {ObjectKind.RESOURCE_POOL})
        if self.folder is not None:
            self.folder.require_kind("folder", {ObjectKind.FOLDER})
        if self.disk_type is not None:
            fields.choice("disk_type", self.disk_type, DiskType)
        if (self.datastore, self.resource_pool, self.folder, self.disk_type) == (None,) * 4:
            raise InvalidSettingError("", "an override must change at least one setting")


@dataclass(frozen=True)
class Destination:
    server: str  # the address of the target ManagedServer (a DR vCenter or ESXi host)
    placement: Placement
    overrides: tuple[VmOverride, ...] = ()

    def __post_init__(self) -> None:
        fields.address("server", self.server)
        fields.unique("overrides", (o.vm.moref for o in self.overrides), "VM")

    def for_vm(self, vm_moref: str) -> Placement:
        for o in self.overrides:
            if o.vm.moref == vm_moref:
                return replace(
                    self.placement,
                    datastore=o.datastore or self.placement.datastore,
                    resource_pool=o.resource_pool or self.placement.resource_pool,
                    folder=o.folder or self.placement.folder,
                    disk_type=o.disk_type or self.placement.disk_type,
                )
        return self.placement
