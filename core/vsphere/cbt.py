"""Changed block tracking: which areas of a disk changed between two points.

A run asks, per disk, for the areas changed since the change ID it stored at the last restore
point, up to the run's own snapshot: `changed_areas` calls QueryChangedDiskAreas in a loop over
``startOffset`` until the whole disk is covered (the server answers a window at a time; the lab's
simulator pages after a few areas on purpose), checks each answer stays inside its window and
moves forward, and returns the merged list with the disk's new change ID, read from the
snapshot's own device list (``backing.changeId`` of the disk in ``snapshot.config``). ``"*"``
asks for every allocated area (a first run with CBT). A stale or reset change ID, or tracking
switched off, is a `VSphereChangeTrackingError`: the run then falls back to digests.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import VSphereChangeTrackingError, VSphereError, VSphereNotFoundError
from core.vsphere._pyvmomi import vim
from core.vsphere.connection import VSphereClient
from core.vsphere.props import retrieve_one
from core.vsphere.snapshots import snapshot_disks
from core.vsphere.tasks import wait

MAX_CALLS = 1 << 20  # a guard against a server that never moves forward


@dataclass(frozen=True)
class ChangedAreas:
    disk_key: int
    capacity: int
    areas: tuple[tuple[int, int], ...]  # (offset, length), sorted, disjoint
    change_id: str  # the disk's change ID at the snapshot: the next run's starting point
    calls: int  # QueryChangedDiskAreas round trips

    @property
    def changed_bytes(self) -> int:
        return sum(length for _, length in self.areas)


def set_change_tracking(
    client: VSphereClient, vm: str, enabled: bool = True, timeout: float = 600.0
) -> None:
    """Switch changed block tracking on (or off) with ReconfigVM. vSphere applies it at the
    next snapshot, power cycle or stun of a running VM."""
    obj = client.obj("VirtualMachine", vm)
    what = f"{'enable' if enabled else 'disable'} changed block tracking on VM {vm}"
    spec = vim.vm.ConfigSpec(changeTrackingEnabled=enabled)
    wait(client, client.call(what, lambda: obj.ReconfigVM_Task(spec)), what, timeout)


def change_tracking_enabled(client: VSphereClient, vm: str) -> bool:
    p = retrieve_one(
        client,
        client.obj("VirtualMachine", vm),
        ["config.changeTrackingEnabled"],
        f"read VM {vm}",
    )
    return bool(p.get("config.changeTrackingEnabled", False))


def changed_areas(
    client: VSphereClient, vm: str, snapshot: str, disk_key: int, since: str = "*"
) -> ChangedAreas:
    """Every area of disk `disk_key` changed after change ID `since`, as of `snapshot`."""
    disk = next((d for d in snapshot_disks(client, snapshot) if d.key == disk_key), None)
    if disk is None:
        raise VSphereNotFoundError(
            f"read changed areas of VM {vm}", f"disk {disk_key} in snapshot {snapshot}"
        )
    where = f"disk {disk_key} of VM {vm} at snapshot {snapshot}"
    what = f"query changed areas of {where}"
    obj = client.obj("VirtualMachine", vm)
    snap = client.obj("VirtualMachineSnapshot", snapshot)
    capacity = disk.capacity
    offset, calls = 0, 0
    areas: list[tuple[int, int]] = []
    while offset < capacity:
        start = offset
        try:
            info = client.call(
                what,
                lambda start=start: obj.QueryChangedDiskAreas(  # type: ignore[misc]
                    snapshot=snap, deviceKey=disk_key, startOffset=start, changeId=since
                ),
            )
        except VSphereError as e:
            raise _cbt_error(e, where, since) from e
        calls += 1
        length = int(info.length or 0)
        if int(info.startOffset) != offset or length <= 0 or calls > MAX_CALLS:
            raise VSphereChangeTrackingError(
                where,
                f"the server answered a window at {info.startOffset} of {length} bytes when "
                f"asked for offset {offset}",
            )
        end = offset + length
        for a in info.changedArea or ():
            a_start, a_len = int(a.start), int(a.length)
            if a_len <= 0:
                continue
            if a_start < offset or a_start + a_len > end:
                raise VSphereChangeTrackingError(
                    where,
                    f"area ({a_start}, {a_len}) lies outside the answered window [{offset}, {end})",
                )
            if areas and a_start <= areas[-1][0] + areas[-1][1]:
                prev_start, prev_len = areas[-1]
                if a_start < prev_start:
                    raise VSphereChangeTrackingError(where, "areas came out of order")
                areas[-1] = (prev_start, max(prev_start + prev_len, a_start + a_len) - prev_start)
            else:
                areas.append((a_start, a_len))
        offset = end
    return ChangedAreas(disk_key, capacity, tuple(areas), disk.change_id, calls)


def _cbt_error(e: VSphereError, where: str, since: str) -> VSphereError:
    if e.fault == "InvalidArgument" and e.invalid_property == "changeId":
        return VSphereChangeTrackingError(
            where,
            f"change ID {since!r} is no longer valid (tracking was reset, the disk was resized "
            "or CBT was turned off since)",
        )
    if e.fault == "FileFault":  # what vSphere says when the disk has no -ctk file
        return VSphereChangeTrackingError(where, "changed block tracking is off for this VM")
    return e
