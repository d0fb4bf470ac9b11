"""Changed block tracking in the lab: QueryChangedDiskAreas served by the launcher from the change
log the Python writer keeps, driven through pyvmomi as the replication engine will drive it
(snapshot, read the snapshot's change IDs, loop over startOffset), with vSphere's faults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyVim.connect import Disconnect
from pyVmomi import vim, vmodl

from core.lab.changelog import ChangeLog, format_change_id, parse
from core.lab.simulator import Simulator, SimulatorSpec
from tests.core.lab.conftest import (
    MIB,
    ODD_NAME,
    PROD,
    Site,
    connect,
    disks,
    inventory,
    prop,
    wait_task,
)
from tests.core.lab.test_changelog import GOLDEN

MAX_AREAS = PROD.cbt_max_areas


def changed(
    si: Any, vm: Any, snap: Any, key: int, change_id: str
) -> tuple[list[tuple[int, int]], int]:
    """Every changed area of a disk, paging as a client must; and the number of calls."""
    capacity = disks(si, snap if snap is not None else vm)[key].capacityInBytes
    areas: list[tuple[int, int]] = []
    offset, calls = 0, 0
    while offset < capacity:
        info = vm.QueryChangedDiskAreas(
            snapshot=snap, deviceKey=key, startOffset=offset, changeId=change_id
        )
        calls += 1
        assert info.startOffset == offset and info.length > 0
        assert len(info.changedArea or []) <= MAX_AREAS
        for a in info.changedArea or []:
            assert offset <= a.start and a.start + a.length <= offset + info.length
            areas.append((a.start, a.length))
        offset = info.startOffset + info.length
    assert offset == capacity
    return areas, calls


def snapshot(si: Any, vm: Any, name: str) -> Any:
    return wait_task(
        si, vm.CreateSnapshot_Task(name=name, description="test", memory=False, quiesce=False)
    )


def test_full_and_incremental_areas(prod: Site) -> None:
    si, cl = prod.si, prod.changelog
    vm = inventory(si, vim.VirtualMachine)[ODD_NAME]
    moref, key, cap = vm._moId, 2000, 16 * MIB
    first = [(0, 65536), (65536, 4096), (3 * MIB, 512), (3 * MIB + 256, 1024), (5 * MIB, MIB)]
    first += [(9 * MIB + i * 131072, 4096) for i in range(6)]
    cl.record(moref, key, cap, first)
    snap1 = snapshot(si, vm, "point 1")
    id1 = disks(si, snap1)[key].backing.changeId
    log = cl.read(moref, key)
    assert id1 == log.change_id() and log.snapshots[snap1._moId] == log.last

    areas, calls = changed(si, vm, snap1, key, "*")
    assert areas == log.changed_areas("*")
    assert areas[:3] == [(0, 65536 + 4096), (3 * MIB, 1280), (5 * MIB, MIB)]
    assert calls == -(-len(areas) // MAX_AREAS) > 1  # paged: MAX_AREAS areas per answer
    # The second disk had no write: "*" is empty and the whole disk is covered in one answer.
    assert changed(si, vm, snap1, 2001, "*") == ([], 1)

    second = [(MIB, 8192), (15 * MIB, MIB)]
    cl.record(moref, key, cap, second)
    snap2 = snapshot(si, vm, "point 2")
    id2 = disks(si, snap2)[key].backing.changeId
    after = [(2 * MIB, 4096)]
    cl.record(moref, key, cap, after)

    # Since point 1 up to point 2: the second batch only, not what came after the snapshot.
    assert changed(si, vm, snap2, key, id1)[0] == [(MIB, 8192), (15 * MIB, MIB)]
    # Point 1 still reads as it was; its change ID is its own, not the VM's current one.
    assert changed(si, vm, snap1, key, "*")[0] == areas
    assert disks(si, snap1)[key].backing.changeId == id1
    assert disks(si, vm)[key].backing.changeId == id2
    # Without a snapshot: up to now.
    assert changed(si, vm, None, key, id2)[0] == [(2 * MIB, 4096)]
    assert changed(si, vm, snap2, key, id2)[0] == []

    for snap in (snap2, snap1):
        wait_task(si, snap.RemoveSnapshot_Task(removeChildren=False))


def fault_of(call: Any) -> Any:
    with pytest.raises(vmodl.MethodFault) as err:
        call()
    return err.value


def test_faults(prod: Site) -> None:
    si, cl = prod.si, prod.changelog
    vms = inventory(si, vim.VirtualMachine)
    vm = vms["db1"]
    cl.record(vm._moId, 2000, 8 * MIB, [(0, 4096)])
    snap = snapshot(si, vm, "faults")
    good = disks(si, snap)[2000].backing.changeId

    def q(**kw: Any) -> Any:
        args = dict(snapshot=snap, deviceKey=2000, startOffset=0, changeId=good) | kw
        return lambda: vm.QueryChangedDiskAreas(**args)

    for bad in ("junk", good.rsplit("/", 1)[0], format_change_id("52" + "ab" * 15, 1)):
        f = fault_of(q(changeId=bad))
        assert isinstance(f, vmodl.fault.InvalidArgument) and f.invalidProperty == "changeId"
    # A change ID newer than the snapshot's point.
    cl.record(vm._moId, 2000, 8 * MIB, [(4096, 4096)])
    newer = cl.read(vm._moId, 2000).change_id()
    f = fault_of(q(changeId=newer))
    assert isinstance(f, vmodl.fault.InvalidArgument) and f.invalidProperty == "changeId"
    for offset in (-1, 8 * MIB):
        f = fault_of(q(startOffset=offset))
        assert isinstance(f, vmodl.fault.InvalidArgument) and f.invalidProperty == "startOffset"
    assert isinstance(fault_of(q(deviceKey=2999)), vim.fault.FileNotFound)
    assert isinstance(fault_of(q(deviceKey=1000)), vim.fault.FileNotFound)  # the controller
    other = snapshot(si, vms[ODD_NAME], "not db1's")
    f = fault_of(q(snapshot=other))
    assert isinstance(f, vmodl.fault.InvalidArgument) and f.invalidProperty == "snapshot"
    # Change tracking off: a FileFault, as from a VM without a -ctk file.
    plain = vms["plain"]
    f = fault_of(lambda: plain.QueryChangedDiskAreas(deviceKey=2000, startOffset=0, changeId="*"))
    assert isinstance(f, vim.fault.FileFault) and f.file.endswith("-ctk.vmdk")
    for s in (snap, other):
        wait_task(si, s.RemoveSnapshot_Task(removeChildren=False))


def test_reset_resize_and_cbt_off_invalidate_change_ids(prod: Site) -> None:
    si, cl = prod.si, prod.changelog
    vm = inventory(si, vim.VirtualMachine)["db1"]
    moref = vm._moId
    cl.record(moref, 2000, 8 * MIB, [(MIB, 4096)])
    old = cl.read(moref, 2000).change_id()
    assert changed(si, vm, None, 2000, old)[0] == []

    # "Reset CBT" (the lab's writer starts a new epoch): old IDs are refused, "*" still answers.
    new = cl.reset(moref, 2000, 8 * MIB)
    f = fault_of(lambda: vm.QueryChangedDiskAreas(deviceKey=2000, startOffset=0, changeId=old))
    assert isinstance(f, vmodl.fault.InvalidArgument)
    assert (MIB, 4096) in changed(si, vm, None, 2000, "*")[0]
    assert changed(si, vm, None, 2000, new)[0] == []

    # A grown disk starts a new epoch at the next query, as VMware resets tracking on resize.
    disk = disks(si, vm)[2000]
    disk.capacityInKB = 12 * 1024
    disk.capacityInBytes = 12 * MIB
    spec = vim.vm.ConfigSpec(
        deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk)]
    )
    wait_task(si, vm.ReconfigVM_Task(spec))
    assert disks(si, vm)[2000].capacityInBytes == 12 * MIB
    f = fault_of(lambda: vm.QueryChangedDiskAreas(deviceKey=2000, startOffset=0, changeId=new))
    assert isinstance(f, vmodl.fault.InvalidArgument)
    assert cl.read(moref, 2000).epoch.capacity == 12 * MIB  # type: ignore[union-attr]
    areas, _ = changed(si, vm, None, 2000, "*")
    assert (MIB, 4096) in areas

    # Change tracking off then on: a new epoch, and the live disk shows its new change ID.
    current = cl.read(moref, 2000).change_id()
    wait_task(si, vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeTrackingEnabled=False)))
    assert not disks(si, vm)[2000].backing.changeId
    wait_task(si, vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeTrackingEnabled=True)))
    live = disks(si, vm)[2000].backing.changeId
    assert live and live != current and live == cl.read(moref, 2000).change_id()
    f = fault_of(lambda: vm.QueryChangedDiskAreas(deviceKey=2000, startOffset=0, changeId=current))
    assert isinstance(f, vmodl.fault.InvalidArgument)
    assert changed(si, vm, None, 2000, live)[0] == []
    assert prop(si, vm, "config.changeTrackingEnabled") is True


def test_launcher_reads_the_golden_log(launcher: Path, tmp_path: Path) -> None:
    """The Go reader agrees with the Python reader on the golden bytes."""
    spec = SimulatorSpec.vpx(clusters=0, standalone_hosts=1, disk_kb=32 * 1024)
    with Simulator(spec, changelog_dir=tmp_path / "cl", launcher=launcher) as sim:
        si = connect(sim)
        try:
            vm = inventory(si, vim.VirtualMachine)["H0_VM0"]
            path = ChangeLog(tmp_path / "cl").path(vm._moId, 2000)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(GOLDEN)
            log = parse(GOLDEN)
            assert changed(si, vm, None, 2000, "*")[0] == log.changed_areas("*")
            assert changed(si, vm, None, 2000, log.change_id(2))[0] == [(0, 1), (65536, 512)]
            f = fault_of(
                lambda: vm.QueryChangedDiskAreas(
                    deviceKey=2000,
                    startOffset=0,
                    changeId=format_change_id("520b6d4c112a9e317f08c4d295e63a10", 1),
                )
            )
            assert isinstance(f, vmodl.fault.InvalidArgument)  # an ID of the first epoch
            assert path.read_bytes() == GOLDEN  # a query with matching capacity appends nothing
        finally:
            Disconnect(si)
