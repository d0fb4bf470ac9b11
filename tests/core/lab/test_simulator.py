"""The lab simulator: the launcher build and its cache, the inventory a topology makes (vCenter
and ESXi models), what can be changed afterwards through pyvmomi, and a stop that leaves nothing.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyVim.connect import Disconnect
from pyVmomi import vim

from core.errors import SimulatorBuildError, SimulatorStartError
from core.lab.changelog import parse_change_id
from core.lab.simulator import (
    ESX_HOST,
    DatacenterSpec,
    DatastoreSpec,
    DiskSpec,
    Simulator,
    SimulatorSpec,
    VmSpec,
    build_launcher,
)
from tests.core.lab.conftest import (
    ODD_NAME,
    Site,
    connect,
    disks,
    inventory,
    prop,
    retrieve,
    wait_task,
)


def test_build_is_cached(launcher: Path) -> None:
    t0 = time.monotonic()
    assert build_launcher() == launcher
    assert time.monotonic() - t0 < 2.0
    assert os.access(launcher, os.X_OK)


def test_parallel_builds_share_one_binary(launcher: Path, tmp_path: Path) -> None:
    # Go's own build cache is warm after the session build, so this costs about a second.
    results: list[Path | BaseException] = []

    def build() -> None:
        try:
            results.append(build_launcher(tmp_path))
        except BaseException as e:
            results.append(e)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 3 and all(isinstance(r, Path) for r in results), results
    assert len(set(results)) == 1
    built = results[0]
    assert isinstance(built, Path) and built.name == launcher.name and built.is_file()
    leftovers = [p.name for p in built.parent.iterdir() if p.name not in ("vcsim", ".lock")]
    assert leftovers == []


def test_missing_go_names_the_debian_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SimulatorBuildError) as err:
        build_launcher(tmp_path / "cache")
    assert "golang-go golang-github-vmware-govmomi-dev" in str(err.value)


def test_vpx_topology(prod: Site) -> None:
    si = prod.si
    assert si.content.about.apiType == "VirtualCenter"
    assert set(inventory(si, vim.Datacenter)) == {"Prod DC", "Branch"}
    assert set(inventory(si, vim.ClusterComputeResource)) == {"Cluster A"}
    hosts = inventory(si, vim.HostSystem)
    assert set(hosts) == {"esx-c1", "esx-c2", "esx-c3", "esx-sa", "esx-b1"}
    cluster = inventory(si, vim.ClusterComputeResource)["Cluster A"]
    assert {h.name for h in prop(si, cluster, "host")} == {"esx-c1", "esx-c2", "esx-c3"}
    assert set(inventory(si, vim.Datastore)) == {"ds-fast", "ds slow #2", "ds-branch"}
    slow = inventory(si, vim.Datastore)["ds slow #2"]
    assert [m.key.name for m in prop(si, slow, "host")] == ["esx-c1"]
    nets = inventory(si, vim.Network)
    assert {"VM Network", "Prod Net", "pg-app", "pg [db] & co"} <= set(nets)
    assert isinstance(nets["pg-app"], vim.dvs.DistributedVirtualPortgroup)
    assert set(inventory(si, vim.DistributedVirtualSwitch)) == {"DVS0"}

    vms = inventory(si, vim.VirtualMachine)
    assert set(vms) == {ODD_NAME, "db1", "app2", "plain"}
    vm = vms[ODD_NAME]
    p = retrieve(
        si,
        [vm],
        [
            "runtime.powerState",
            "runtime.host",
            "resourcePool",
            "parent",
            "config.hardware.numCPU",
            "config.hardware.memoryMB",
            "config.changeTrackingEnabled",
            "network",
        ],
    )[vm]
    assert p["runtime.powerState"] == "poweredOn"
    assert p["runtime.host"].name == "esx-c1"
    assert p["resourcePool"].name == "Gold"
    assert p["parent"].name == "Web" and p["parent"].parent.name == "Apps"
    assert (p["config.hardware.numCPU"], p["config.hardware.memoryMB"]) == (2, 512)
    assert p["config.changeTrackingEnabled"] is True
    assert {n.name for n in p["network"]} == {"pg-app", "Prod Net"}
    d = disks(si, vm)
    assert sorted(d) == [2000, 2001]
    assert d[2000].capacityInBytes == 16 * 1024 * 1024 and d[2000].backing.thinProvisioned
    assert d[2001].backing.thinProvisioned is False
    assert d[2001].backing.fileName == f"[ds slow #2] {ODD_NAME}/{ODD_NAME}.vmdk"
    parse_change_id(d[2000].backing.changeId)  # CBT on from creation: a change ID is shown
    nics = [
        dev
        for dev in prop(si, vm, "config.hardware.device")
        if isinstance(dev, vim.vm.device.VirtualEthernetCard)
    ]
    assert [n.key for n in nics] == [4000, 4001]
    assert prop(si, vms["plain"], "runtime.powerState") == "poweredOff"

    # Datastores are local folders; the launcher reports them, and the VM files are there.
    fast = prod.sim.datastore("ds-fast", "Prod DC")
    assert (fast.path / ODD_NAME / f"{ODD_NAME}.vmx").is_file()
    assert (fast.path / ODD_NAME / f"{ODD_NAME}-flat.vmdk").is_file()
    url = prop(si, inventory(si, vim.Datastore)["ds-fast"], "info.url")
    assert Path(url) == fast.path


def test_lab_edits_through_pyvmomi(prod: Site) -> None:
    """What the lab changes after start: VM rename, an added disk, CBT on, networks renamed."""
    si = prod.si
    vm = inventory(si, vim.VirtualMachine)["app2"]
    wait_task(si, vm.Rename_Task("app2 (renamed) é"))
    assert prop(si, vm, "name") == "app2 (renamed) é"

    ds = inventory(si, vim.Datastore)["ds-fast"]
    disk = vim.vm.device.VirtualDisk(
        key=-1,
        controllerKey=1000,
        unitNumber=1,
        capacityInKB=2048,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName="[ds-fast]", diskMode="persistent", thinProvisioned=True, datastore=ds
        ),
    )
    spec = vim.vm.ConfigSpec(
        changeTrackingEnabled=True,
        deviceChange=[
            vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk)
        ],
    )
    wait_task(si, vm.ReconfigVM_Task(spec))
    assert len(disks(si, vm)) == 2
    assert prop(si, vm, "config.changeTrackingEnabled") is True

    nets = inventory(si, vim.Network)
    wait_task(si, nets["Prod Net"].Rename_Task("Prod Net (old)"))
    wait_task(si, nets["pg [db] & co"].Rename_Task("pg-db-2"))
    renamed = inventory(si, vim.Network)
    assert "Prod Net (old)" in renamed and "Prod Net" not in renamed
    assert renamed["pg-db-2"] == nets["pg [db] & co"]
    assert prop(si, renamed["pg-db-2"], "config.name") == "pg-db-2"
    assert prop(si, renamed["Prod Net (old)"], "summary.name") == "Prod Net (old)"
    dvs = inventory(si, vim.DistributedVirtualSwitch)["DVS0"]
    assert "pg-db-2" in prop(si, dvs, "summary.portgroupName")
    with pytest.raises(vim.fault.DuplicateName):
        wait_task(si, renamed["pg-db-2"].Rename_Task("pg-app"))
    # Back as they were: other tests read the session inventory by name.
    wait_task(si, renamed["Prod Net (old)"].Rename_Task("Prod Net"))
    wait_task(si, renamed["pg-db-2"].Rename_Task("pg [db] & co"))
    wait_task(si, vm.Rename_Task("app2"))


def test_esx_model(launcher: Path, tmp_path: Path) -> None:
    spec = SimulatorSpec.esx(datastores=2, vms=2, disk_kb=2048, networks=("DR Net",))
    with Simulator(spec, workdir=tmp_path / "esx", launcher=launcher) as sim:
        si = connect(sim)
        try:
            assert si.content.about.apiType == "HostAgent"
            assert set(inventory(si, vim.HostSystem)) == {ESX_HOST}
            assert set(inventory(si, vim.Datastore)) == {"datastore1", "datastore2"}
            assert {"VM Network", "DR Net"} <= set(inventory(si, vim.Network))
            vms = inventory(si, vim.VirtualMachine)
            assert set(vms) == {"VM0", "VM1"}
            assert sorted(disks(si, vms["VM0"])) == [2000]
            # A new VM on the standalone host, as a replication target would make one.
            host = inventory(si, vim.HostSystem)[ESX_HOST]
            dc = inventory(si, vim.Datacenter)["ha-datacenter"]
            pool = prop(si, prop(si, host, "parent"), "resourcePool")
            config = vim.vm.ConfigSpec(
                name="VM0_replica",
                guestId="otherLinux64Guest",
                files=vim.vm.FileInfo(vmPathName="[datastore2]"),
            )
            ref = wait_task(si, prop(si, dc, "vmFolder").CreateVM_Task(config, pool, host))
            assert prop(si, ref, "name") == "VM0_replica"
            assert (sim.datastore("datastore2").path / "VM0_replica" / "VM0_replica.vmx").is_file()
        finally:
            Disconnect(si)


def test_stop_leaves_nothing(launcher: Path) -> None:
    spec = SimulatorSpec.vpx(clusters=1, hosts_per_cluster=2, standalone_hosts=1, datastores=2)
    sim = Simulator(spec, launcher=launcher)
    with sim:
        pid = sim.pid
        assert pid is not None and sim.running
        dirs = [ds.path for ds in sim.datastores]
        assert len(dirs) == 2 and all(d.is_dir() for d in dirs)
        workdir = sim.workdir
        assert workdir is not None
        si = connect(sim)
        assert set(inventory(si, vim.VirtualMachine)) == {"C0_H0_VM0", "C0_H1_VM0", "H0_VM0"}
        Disconnect(si)
    assert not sim.running and sim.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone and reaped
    assert not any(d.exists() for d in dirs)
    assert not workdir.exists()
    sim.stop()  # twice is fine


def test_bad_topology_is_reported(launcher: Path, tmp_path: Path) -> None:
    spec = SimulatorSpec(
        "vpx",
        (
            DatacenterSpec(
                "DC",
                datastores=(DatastoreSpec("ds"),),
                hosts=("h1",),
                vms=(VmSpec("vm", host="h1", disks=(DiskSpec(1024),), networks=("no such net",)),),
            ),
        ),
    )
    sim = Simulator(spec, workdir=tmp_path / "w", launcher=launcher)
    with pytest.raises(SimulatorStartError, match="unknown network"):
        sim.start()
    assert not sim.running
    assert list(tmp_path.joinpath("w").glob("replicadesk-vcsim-ds-*")) == []


@pytest.fixture
def namespace() -> Iterator[tuple[str, str]]:
    """A network namespace reached over a veth pair: (name, the namespace's address)."""
    if os.geteuid() != 0:
        pytest.fail(
            "the namespace test makes a network namespace and must run as root (as CI does)"
        )
    n = os.getpid() % 250
    name, outer, inner = f"rd-lab-{os.getpid()}", f"rdl{n}a", f"rdl{n}b"
    host_ip, ns_ip = f"10.254.{n}.1", f"10.254.{n}.2"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    ip("netns", "add", name)
    try:
        ip("link", "add", outer, "type", "veth", "peer", "name", inner, "netns", name)
        ip("addr", "add", f"{host_ip}/30", "dev", outer)
        ip("link", "set", outer, "up")
        ip("-n", name, "addr", "add", f"{ns_ip}/30", "dev", inner)
        ip("-n", name, "link", "set", inner, "up")
        ip("-n", name, "link", "set", "lo", "up")
        yield name, ns_ip
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def test_runs_inside_a_network_namespace(launcher: Path, namespace: tuple[str, str]) -> None:
    name, address = namespace
    spec = dataclasses.replace(SimulatorSpec.esx(vms=1), listen=f"{address}:0")
    with Simulator(spec, prefix=("ip", "netns", "exec", name), launcher=launcher) as sim:
        assert sim.host == address
        si = connect(sim)
        assert set(inventory(si, vim.VirtualMachine)) == {"VM0"}
        Disconnect(si)
        pid = sim.pid
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
