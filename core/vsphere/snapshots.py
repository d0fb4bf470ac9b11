"""VM snapshots: the run's read point on the source, the restore points on the replica.

A run takes a snapshot with a name and description that say what it is, records the moref this
module returns, and later removes exactly that moref: removal and revert check that the snapshot
belongs to the VM and never pick a snapshot by its name (an admin's snapshot may share it).
Snapshots are always taken without memory; quiescing is the job's choice, and a guest that
could not be quiesced is a `VSphereQuiesceError` naming the VM (the caller may take the snapshot
again without quiescing; any other failure is not about quiescing). The snapshot tree is
read with RetrieveContents (reading ``vm.snapshot`` of a VM without snapshots through pyVmomi's
accessor crashes the lab's simulator, LAB.md).
"""

from __future__ import annotations

from core.errors import VSphereNotFoundError
from core.vsphere.connection import VSphereClient
from core.vsphere.models import Disk, Snapshot
from core.vsphere.props import moref, retrieve_one
from core.vsphere.tasks import Progress, wait
from core.vsphere.vmparts import parse_disks, parse_snapshots

SNAPSHOT_TIMEOUT = 1800.0  # a quiesced snapshot of a busy VM can take many minutes


def list_snapshots(client: VSphereClient, vm: str) -> tuple[Snapshot, ...]:
    """The VM's snapshot tree (root snapshots, each with its children)."""
    p = retrieve_one(
        client, client.obj("VirtualMachine", vm), ["snapshot"], f"list the snapshots of VM {vm}"
    )
    info = p.get("snapshot")
    return parse_snapshots(info.rootSnapshotList if info else None)


def find_snapshot(client: VSphereClient, vm: str, snapshot: str) -> Snapshot:
    """The snapshot `snapshot` of `vm`; VSphereNotFoundError when the VM has no such snapshot."""
    for root in list_snapshots(client, vm):
        for s in root.walk():
            if s.moref == snapshot:
                return s
    raise VSphereNotFoundError(f"find snapshot {snapshot} of VM {vm}", f"snapshot {snapshot}")


def create_snapshot(
    client: VSphereClient,
    vm: str,
    name: str,
    description: str,
    quiesce: bool = False,
    timeout: float = SNAPSHOT_TIMEOUT,
    progress: Progress | None = None,
    vm_name: str = "",
) -> str:
    """Take a snapshot (no memory) and return its moref. A quiesced snapshot the guest could not
    be quiesced for raises VSphereQuiesceError; `vm_name` names the VM in errors beside `vm`."""
    obj = client.obj("VirtualMachine", vm)
    what = f"snapshot VM {f'{vm} ({vm_name})' if vm_name else vm} as {name!r}"
    task = client.call(
        what,
        lambda: obj.CreateSnapshot_Task(
            name=name, description=description, memory=False, quiesce=quiesce
        ),
    )
    result = wait(client, task, what, timeout, progress)
    return moref(result)


def snapshot_disks(client: VSphereClient, snapshot: str) -> tuple[Disk, ...]:
    """The disks as the snapshot saw them; ``change_id`` is the disk's change ID at that point
    (the ID the next run passes to QueryChangedDiskAreas)."""
    p = retrieve_one(
        client,
        client.obj("VirtualMachineSnapshot", snapshot),
        ["config.hardware.device"],
        f"read the disks of snapshot {snapshot}",
    )
    return parse_disks(p.get("config.hardware.device"))


def remove_snapshot(
    client: VSphereClient,
    vm: str,
    snapshot: str,
    remove_children: bool = False,
    consolidate: bool = True,
    timeout: float = SNAPSHOT_TIMEOUT,
    progress: Progress | None = None,
) -> None:
    """Remove the snapshot `snapshot` of `vm` (its children stay unless asked)."""
    find_snapshot(client, vm, snapshot)  # refuse a moref that is not this VM's
    obj = client.obj("VirtualMachineSnapshot", snapshot)
    what = f"remove snapshot {snapshot} of VM {vm}"
    task = client.call(
        what,
        lambda: obj.RemoveSnapshot_Task(removeChildren=remove_children, consolidate=consolidate),
    )
    wait(client, task, what, timeout, progress)


def revert_to_snapshot(
    client: VSphereClient,
    vm: str,
    snapshot: str,
    suppress_power_on: bool = True,
    timeout: float = SNAPSHOT_TIMEOUT,
    progress: Progress | None = None,
) -> None:
    """Revert `vm` to its snapshot `snapshot` (the VM stays off unless the snapshot had memory
    and `suppress_power_on` is False)."""
    find_snapshot(client, vm, snapshot)
    obj = client.obj("VirtualMachineSnapshot", snapshot)
    what = f"revert VM {vm} to snapshot {snapshot}"
    task = client.call(what, lambda: obj.RevertToSnapshot_Task(suppressPowerOn=suppress_power_on))
    wait(client, task, what, timeout, progress)


def current_snapshot(client: VSphereClient, vm: str) -> str:
    """The moref of the VM's current snapshot ("" when it has none)."""
    p = retrieve_one(
        client, client.obj("VirtualMachine", vm), ["snapshot"], f"read VM {vm}'s current snapshot"
    )
    info = p.get("snapshot")
    return moref(info.currentSnapshot) if info and info.currentSnapshot else ""
