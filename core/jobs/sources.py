"""Which VMs a job replicates this run: its VMs and containers expanded against the live inventory.

Containers (folder, host, cluster, datacenter) are expanded at run time, so a VM added to a
folder is picked up by the next run. The order is the job's: each object contributes at its
position, a container's VMs in inventory order (by name); a VM reached twice counts once.
Excluded VMs are dropped; excluded disks are listed per VM. Templates are skipped. A VM the job
names that no longer exists is reported, not silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.model.objects import ObjectKind, SourceSelection
from core.vsphere.models import Inventory, Vm


@dataclass(frozen=True)
class SourceVm:
    vm: Vm
    excluded_disks: frozenset[int]
    parents: tuple[str, ...]  # morefs of the containers the VM is in


@dataclass(frozen=True)
class Expansion:
    vms: tuple[SourceVm, ...]
    missing: tuple[str, ...]  # "name (moref)" of objects the job names that are gone


def _parents(inv: Inventory, vm: Vm) -> tuple[str, ...]:
    chain = [vm.folder, vm.host, vm.cluster, vm.datacenter, vm.resource_pool]
    folder_morefs = []
    for f in inv.folders:
        # Every folder whose path is a prefix of the VM's folder path contains the VM.
        if f.datacenter == vm.datacenter and vm.folder_path[: len(f.path)] == f.path:
            folder_morefs.append(f.moref)
    return tuple(m for m in (*chain, *folder_morefs) if m)


def _members(inv: Inventory, kind: ObjectKind, moref: str) -> list[Vm]:
    vms = sorted((v for v in inv.vms if not v.template), key=lambda v: (v.name, v.moref))
    if kind == ObjectKind.VM:
        return [v for v in inv.vms if v.moref == moref]
    if kind == ObjectKind.HOST:
        return [v for v in vms if v.host == moref]
    if kind == ObjectKind.CLUSTER:
        return [v for v in vms if v.cluster == moref]
    if kind == ObjectKind.DATACENTER:
        return [v for v in vms if v.datacenter == moref]
    if kind == ObjectKind.FOLDER:
        return [v for v in vms if moref in _parents(inv, v)]
    return []


def expand(selection: SourceSelection, inv: Inventory) -> Expansion:
    seen: set[str] = set()
    out: list[SourceVm] = []
    missing: list[str] = []
    for obj in selection.objects:
        if not inv.has(obj.moref):
            missing.append(f"{obj.name} ({obj.moref})")
            continue
        for vm in _members(inv, obj.kind, obj.moref):
            if vm.moref in seen or selection.is_excluded(vm.moref) or vm.template:
                continue
            seen.add(vm.moref)
            parents = _parents(inv, vm)
            out.append(SourceVm(vm, selection.excluded_disks(vm.moref, parents), parents))
    return Expansion(tuple(out), tuple(missing))
