"""Replica mapping in a run: the checks on the existing DR VM a source VM is mapped to.

`mapped_vm` runs in the VM task's pre-flight, before anything is written, on the first run of a
VM whose job maps it (core.model.seeding). The mapped VM must exist on the job's target server,
be powered off, not be a template or another replica, and have the replicated disks' count and
capacities in order; each problem stops the VM with the mapped VM and disk named. The task then
seeds each disk's chain from the mapped VM's disk at the target (core.replica.seed) and adopts
the VM as the replica when the first restore point is recorded; until then the store does not
know it, so a failed or cancelled run leaves it as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import PreflightError, VSphereError
from core.jobs.context import RunContext
from core.model.objects import ObjectRef
from core.vsphere.inventory import read_vm
from core.vsphere.models import Disk, Vm


@dataclass(frozen=True)
class MappedVm:
    """The mapped VM, checked, and which of its disks seeds which source disk (by key)."""

    vm: Vm
    disks: dict[int, Disk]


def _disk_name(d: Disk) -> str:
    return f"{d.label} ({d.key})" if d.label else f"disk {d.key}"


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def mapped_vm(ctx: RunContext, source: Vm, disks: list[Disk], ref: ObjectRef) -> MappedVm:
    """The existing VM `ref` checked as the replica of `source` (whose replicated disks are
    `disks`); PreflightError naming the mapped VM and the disk otherwise."""
    name = f"{ref.name!r} ({ref.moref})"
    server = ctx.target_server.address

    def refuse(problem: str) -> PreflightError:
        return PreflightError(source.name, f"the VM it is mapped to, {name}, {problem}")

    try:
        vm = read_vm(ctx.target, ref.moref)
    except VSphereError as e:
        raise refuse(f"cannot be found on the DR server {server}: {e}") from e
    if vm.template:
        raise refuse("is a template: map the VM to a VM")
    if vm.power_state != "poweredOff":
        raise refuse(
            f"is {vm.power_state}: a mapped VM must be powered off (it becomes the replica, and "
            "its disks must not change while they are read)"
        )
    for other in ctx.store.replicas.list(include_permanent=True):
        if other.target_server == server and other.replica_moref == vm.moref:
            raise refuse(f"is already the replica of {other.vm_name!r} in job {other.job!r}")
    if len(vm.disks) != len(disks):
        raise refuse(
            f"has {len(vm.disks)} disk(s), the source VM replicates {len(disks)}: the disk "
            "layouts must be the same"
        )
    pairs: dict[int, Disk] = {}
    for i, (theirs, ours) in enumerate(zip(vm.disks, disks, strict=True), 1):
        if theirs.capacity != ours.capacity:
            raise refuse(
                f"has disk {i}, {_disk_name(theirs)}, of {_size(theirs.capacity)}; the source's "
                f"disk {i}, {_disk_name(ours)}, has {_size(ours.capacity)}: the capacities must "
                "be the same"
            )
        if not ctx.target_inventory.has(theirs.datastore):
            raise refuse(
                f"has disk {_disk_name(theirs)} on a datastore the DR server does not list"
            )
        pairs[ours.key] = theirs
    return MappedVm(vm, pairs)
