"""Virtual appliance (hot-add) transport: a source disk attached to the proxy VM, then detached.

Part of the vSphere adapter (`core.vsphere`): the job runner (`core.jobs.transport`) calls it to
read a snapshot's disk through the backup proxy's own VM. `attach_disk` adds the disk file as an
existing disk (no file operation: vSphere opens the file, it creates nothing) on a free unit of
one of the proxy VM's SCSI controllers, in independent-nonpersistent mode as VMware's own hot-add
does: whatever the proxy's guest might write goes to a redo log that is thrown away, never into
the source disk. `detach_disk` removes the device again with no file operation, so the file is
kept (a `destroy` file operation would delete the source disk). `free_slot` is separate from
`attach_disk` so the caller can record the slot before the attach (see `core.store.hotadd`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import VSphereInvalidRequestError
from core.vsphere._pyvmomi import vim
from core.vsphere.connection import VSphereClient
from core.vsphere.props import retrieve_one
from core.vsphere.tasks import wait

TIMEOUT = 300.0
HOTADD_MODE = "independent_nonpersistent"
SCSI_UNITS = [u for u in range(16) if u != 7]  # unit 7 is the controller itself


@dataclass(frozen=True)
class ProxyDisk:
    """A disk of the proxy VM as vSphere lists it."""

    key: int
    controller_key: int
    unit_number: int
    file_name: str
    mode: str


def _devices(client: VSphereClient, vm: str) -> list[Any]:
    p = retrieve_one(
        client,
        client.obj("VirtualMachine", vm),
        ["config.hardware.device"],
        f"read the devices of proxy VM {vm}",
    )
    return list(p.get("config.hardware.device") or ())


def _disk(d: Any) -> ProxyDisk:
    backing = d.backing
    return ProxyDisk(
        key=int(d.key),
        controller_key=int(d.controllerKey or 0),
        unit_number=int(d.unitNumber if d.unitNumber is not None else -1),
        file_name=str(getattr(backing, "fileName", "") or ""),
        mode=str(getattr(backing, "diskMode", "") or ""),
    )


def proxy_disks(client: VSphereClient, vm: str) -> list[ProxyDisk]:
    """Every disk of the VM, with its SCSI slot and file."""
    return [_disk(d) for d in _devices(client, vm) if isinstance(d, vim.vm.device.VirtualDisk)]


def free_slot(client: VSphereClient, vm: str) -> tuple[int, int]:
    """(controller key, unit number) of the first free unit on the VM's SCSI controllers."""
    devices = _devices(client, vm)
    controllers = sorted(
        (d for d in devices if isinstance(d, vim.vm.device.VirtualSCSIController)),
        key=lambda c: int(c.busNumber),
    )
    if not controllers:
        raise VSphereInvalidRequestError(
            f"hot-add a disk to proxy VM {vm}", "the VM has no SCSI controller"
        )
    used = {(d.controllerKey, d.unitNumber) for d in devices if d.unitNumber is not None}
    for c in controllers:
        for unit in SCSI_UNITS:
            if (c.key, unit) not in used:
                return int(c.key), unit
    raise VSphereInvalidRequestError(
        f"hot-add a disk to proxy VM {vm}", "every unit of its SCSI controllers is in use"
    )


def attach_disk(
    client: VSphereClient,
    proxy_vm: str,
    file_name: str,
    slot: tuple[int, int] | None = None,
    timeout: float = TIMEOUT,
) -> int:
    """Attach the existing disk `file_name` ("[ds] folder/x.vmdk") to the proxy VM at `slot`
    (default: the first free one), independent-nonpersistent; the new device's key."""
    what = f"attach {file_name} to proxy VM {proxy_vm}"
    controller, unit = slot or free_slot(client, proxy_vm)
    before = {d.key for d in proxy_disks(client, proxy_vm)}
    disk = vim.vm.device.VirtualDisk(
        key=-1,
        controllerKey=controller,
        unitNumber=unit,
        # Ignored for an existing disk by vSphere; 0 also keeps the simulator from counting the
        # file's size against the datastore's free space a second time.
        capacityInKB=0,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName=file_name, diskMode=HOTADD_MODE
        ),
    )
    _reconfigure(
        client,
        proxy_vm,
        vim.vm.device.VirtualDeviceSpec(operation="add", device=disk),
        what,
        timeout,
    )
    new = [
        d
        for d in proxy_disks(client, proxy_vm)
        if d.key not in before and (d.controller_key, d.unit_number) == (controller, unit)
    ]
    if len(new) != 1:
        raise VSphereInvalidRequestError(what, f"expected one new disk, found {len(new)}")
    return new[0].key


def detach_disk(client: VSphereClient, proxy_vm: str, key: int, timeout: float = TIMEOUT) -> None:
    """Remove disk `key` from the proxy VM and keep its file."""
    what = f"detach disk {key} from proxy VM {proxy_vm}"
    device = next(
        (
            d
            for d in _devices(client, proxy_vm)
            if isinstance(d, vim.vm.device.VirtualDisk) and d.key == key
        ),
        None,
    )
    if device is None:
        raise VSphereInvalidRequestError(what, f"the VM has no disk with device key {key}")
    # No fileOperation: "destroy" would delete the source VM's disk file.
    _reconfigure(
        client,
        proxy_vm,
        vim.vm.device.VirtualDeviceSpec(operation="remove", device=device),
        what,
        timeout,
    )


def _reconfigure(client: VSphereClient, vm: str, change: Any, what: str, timeout: float) -> None:
    obj = client.obj("VirtualMachine", vm)
    spec = vim.vm.ConfigSpec(deviceChange=[change])
    wait(client, client.call(what, lambda: obj.ReconfigVM_Task(spec=spec)), what, timeout)
