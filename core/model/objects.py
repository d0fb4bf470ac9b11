"""vSphere objects as a job refers to them, and the job's source selection.

Objects are addressed by managed object ID (`moref`), never by name: names with spaces,
brackets, `#`, `&`, `+`, `%` or non-ASCII letters break scripts, and names change. The display
name is kept beside the ID for people. Containers (folder, host, cluster, datacenter) are
expanded into VMs at run time by the runner, so a VM added to a folder is picked up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from core.errors import InvalidSettingError
from core.model import fields

# VMware numbers virtual disk devices from 2000 (SCSI 0:0) upward; a device key is an int32.
MAX_DEVICE_KEY = 2**31 - 1


class ObjectKind(StrEnum):
    VM = "vm"
    FOLDER = "folder"
    HOST = "host"
    CLUSTER = "cluster"
    DATACENTER = "datacenter"
    RESOURCE_POOL = "resource_pool"
    DATASTORE = "datastore"


SOURCE_KINDS = frozenset(
    {ObjectKind.VM, ObjectKind.FOLDER, ObjectKind.HOST, ObjectKind.CLUSTER, ObjectKind.DATACENTER}
)
CONTAINER_KINDS = SOURCE_KINDS - {ObjectKind.VM}


@dataclass(frozen=True)
class ObjectRef:
    kind: ObjectKind
    moref: str
    name: str

    def __post_init__(self) -> None:
        fields.choice("kind", self.kind, ObjectKind)
        fields.moref("moref", self.moref)
        fields.name("name", self.name)

    def require_kind(self, field: str, kinds: Iterable[ObjectKind]) -> ObjectRef:
        allowed = sorted(str(k) for k in kinds)
        if self.kind not in allowed:
            raise InvalidSettingError(
                f"{field}.kind",
                f"{fields.show(str(self.kind))} is not one of: {', '.join(allowed)}",
            )
        return self


@dataclass(frozen=True)
class DiskExclusion:
    """Disks (by device key) not replicated for a VM, or for every VM of a container."""

    object: ObjectRef
    disk_keys: tuple[int, ...]

    def __post_init__(self) -> None:
        self.object.require_kind("object", SOURCE_KINDS)
        if not isinstance(self.disk_keys, tuple) or not self.disk_keys:
            raise InvalidSettingError("disk_keys", "list at least one disk device key")
        for i, key in enumerate(self.disk_keys):
            fields.integer(f"disk_keys[{i}]", key, 0, MAX_DEVICE_KEY)
        fields.unique("disk_keys", self.disk_keys, "disk key")


@dataclass(frozen=True)
class SourceSelection:
    """What to replicate: VMs and containers, in processing order, minus the exclusions.

    The order of `objects` is the processing order: VMs are started in that order (a container
    contributes its VMs, in inventory order, at its position), within the proxies' task limits.
    """

    server: str  # the address of the ManagedServer the objects belong to
    objects: tuple[ObjectRef, ...]
    exclude_vms: tuple[ObjectRef, ...] = ()
    exclude_disks: tuple[DiskExclusion, ...] = ()

    def __post_init__(self) -> None:
        fields.address("server", self.server)
        if not isinstance(self.objects, tuple) or not self.objects:
            raise InvalidSettingError("objects", "add at least one VM or container")
        for i, obj in enumerate(self.objects):
            obj.require_kind(f"objects[{i}]", SOURCE_KINDS)
        fields.unique("objects", (o.moref for o in self.objects), "object")
        for i, vm in enumerate(self.exclude_vms):
            vm.require_kind(f"exclude_vms[{i}]", {ObjectKind.VM})
        fields.unique("exclude_vms", (o.moref for o in self.exclude_vms), "VM")
        explicit = {o.moref for o in self.objects if o.kind == ObjectKind.VM}
        for i, vm in enumerate(self.exclude_vms):
            if vm.moref in explicit:
                raise InvalidSettingError(
                    f"exclude_vms[{i}]",
                    f"VM {fields.show(vm.name)} ({vm.moref}) is both added and excluded",
                )
        fields.unique("exclude_disks", (d.object.moref for d in self.exclude_disks), "object")

    def is_excluded(self, vm_moref: str) -> bool:
        return any(vm.moref == vm_moref for vm in self.exclude_vms)

    def excluded_disks(self, vm_moref: str, parents: Iterable[str] = ()) -> frozenset[int]:
        """Device keys not to replicate for a VM, given the morefs of the containers it is in."""
        scope = {vm_moref, *parents}
        keys: set[int] = set()
        for exclusion in self.exclude_disks:
            if exclusion.object.moref in scope:
                keys.update(exclusion.disk_keys)
        return frozenset(keys)
