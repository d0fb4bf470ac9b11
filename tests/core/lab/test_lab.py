"""The whole lab: `replicadesk lab up/status/churn/down` as a user runs them, and `Lab` in-process
with a standalone ESXi host as the DR site. Real simulators, real mover services, a real
namespace (as root)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import LabError
from core.lab import netns
from core.lab.changelog import ChangeLog
from core.lab.content import data_areas, flat_name
from core.lab.lab import Lab, LabState, datastore_file
from core.lab.topology import NETWORK_MAP, LabOptions
from core.vmdk.image import open_disk
from core.vsphere.connection import VSphereClient
from core.vsphere.inventory import read_inventory

SMALL = ["--vms", "5", "--disk-mib", "8-24"]


def rd(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "core", *args], capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"replicadesk {' '.join(args)} failed: {proc.stderr}")
    return proc


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_lab_up_churn_down_leaves_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "lab"
    state = json.loads(rd("lab", "up", "--dir", str(folder), *SMALL, "--json").stdout)
    try:
        assert state["vms"] == 5 and state["disks"] >= 5
        assert state["password"].startswith("(any")
        status = json.loads(rd("lab", "status", "--dir", str(folder), "--json").stdout)
        assert status["production"]["url"] == state["production"]["url"]
        again = rd("lab", "up", "--dir", str(folder), *SMALL, check=False)
        assert again.returncode != 0 and "already runs" in again.stderr

        lab = LabState.load(folder)
        prod = lab.production
        with VSphereClient.connect(prod.address, prod.port, "u", "p", protocol="http") as c:
            inv = read_inventory(c)
        names = {v.name for v in inv.vms}
        assert "web 02 (canary)" in names and "db #2 & replica" in names
        # Every disk has content on its datastore, and the change log knows where it is.
        log = ChangeLog(Path(lab.changelog))
        for vm in inv.vms:
            for disk in vm.disks:
                descriptor = datastore_file(inv, disk.datastore, disk.file_name)
                with open_disk(descriptor) as image:
                    assert image.size == disk.capacity
                logged = log.read(vm.moref, disk.key).changed_areas("*")
                assert sorted(logged) == sorted(data_areas(flat_name(descriptor)))

        before = {
            vm.moref: sum(len(log.read(vm.moref, d.key).writes) for d in vm.disks) for vm in inv.vms
        }
        out = json.loads(
            rd(
                "lab", "churn", "--dir", str(folder), "--rate", "2M", "--duration", "2", "--json"
            ).stdout
        )
        assert out["written_bytes"] > 0 and out["vms"]
        after = {
            vm.moref: sum(len(log.read(vm.moref, d.key).writes) for d in vm.disks) for vm in inv.vms
        }
        assert sum(after.values()) - sum(before.values()) == out["writes"]

        if lab.dr.namespace:
            assert lab.dr.namespace in netns.namespaces()
            assert lab.wan_mbit == 100.0
        supervisor = lab.supervisor_pid
        assert _alive(supervisor)
    finally:
        rd("lab", "down", "--dir", str(folder))
    assert not _alive(supervisor)
    assert not folder.exists()
    if lab.dr.namespace:
        assert lab.dr.namespace not in netns.namespaces()
    bad = rd("lab", "status", "--dir", str(folder), check=False)
    assert bad.returncode == 50 and "no lab is running" in bad.stderr


def test_lab_with_a_standalone_esx_dr_host_and_no_wan(tmp_path: Path) -> None:
    lab = Lab(LabOptions(vms=3, dr="esx", disk_mib=(8, 16)), folder=tmp_path / "lab", wan=False)
    with lab as state:
        assert state.dr.model == "esx" and state.dr.namespace == "" and state.wan_mbit is None
        dr = state.dr
        with VSphereClient.connect(dr.address, dr.port, "u", "p", protocol="http") as c:
            inv = read_inventory(c)
        assert not inv.about.is_vcenter
        dr_networks = {n.name for n in inv.networks}
        assert set(NETWORK_MAP.values()) <= dr_networks
        assert not set(NETWORK_MAP) & dr_networks  # the DR site names its networks its own way
    assert not (tmp_path / "lab").exists()


def test_bad_lab_options_are_refused(tmp_path: Path) -> None:
    for args, message in (
        (["--vms", "0"], "must be 1 or more"),
        (["--disk-mib", "big"], "is not LOW-HIGH"),
        (["--disk-mib", "64-8"], "is not a range of sizes"),
        (["--wan-mbit", "0"], "is not positive"),
    ):
        proc = rd("lab", "up", "--dir", str(tmp_path / "x"), *args, check=False)
        assert proc.returncode != 0 and message in proc.stderr, (args, proc.stderr)
    assert not (tmp_path / "x" / "state.json").exists()
    with pytest.raises(LabError, match="no lab is running"):
        LabState.load(tmp_path / "nowhere")
