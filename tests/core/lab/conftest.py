"""Fixtures for the lab tests: the launcher built once (cached), one simulated vCenter for the
session, and small pyvmomi helpers that read through the PropertyCollector (reading an unset
property through pyvmomi's accessors makes vcsim panic, LAB.md).

Every simulator started here is stopped by the fixture or test that started it; the only file
left outside pytest's tmp dirs is the launcher's build cache.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from core.lab.changelog import ChangeLog
from core.lab.simulator import (
    ClusterSpec,
    DatacenterSpec,
    DatastoreSpec,
    DiskSpec,
    Simulator,
    SimulatorSpec,
    SwitchSpec,
    VmSpec,
    build_launcher,
)

ODD_NAME = "web 01 [prod] #1 & +% Ünïcødé"
MIB = 1 << 20

PROD = SimulatorSpec(
    model="vpx",
    cbt_max_areas=3,
    datacenters=(
        DatacenterSpec(
            "Prod DC",
            datastores=(DatastoreSpec("ds-fast"), DatastoreSpec("ds slow #2", hosts=("esx-c1",))),
            networks=("Prod Net",),
            switches=(SwitchSpec("DVS0", ("pg-app", "pg [db] & co")),),
            clusters=(
                ClusterSpec("Cluster A", ("esx-c1", "esx-c2", "esx-c3"), resource_pools=("Gold",)),
            ),
            hosts=("esx-sa",),
            vms=(
                VmSpec(
                    ODD_NAME,
                    host="esx-c1",
                    cluster="Cluster A",
                    resource_pool="Gold",
                    folder="Apps/Web",
                    datastore="ds-fast",
                    cpus=2,
                    memory_mb=512,
                    disks=(
                        DiskSpec(16 * 1024),
                        DiskSpec(4 * 1024, thin=False, datastore="ds slow #2"),
                    ),
                    networks=("pg-app", "Prod Net"),
                    power_on=True,
                    cbt=True,
                ),
                VmSpec(
                    "db1",
                    host="esx-c2",
                    disks=(DiskSpec(8 * 1024),),
                    networks=("pg [db] & co",),
                    cbt=True,
                ),
                VmSpec("app2", host="esx-c3", disks=(DiskSpec(1024),), networks=("VM Network",)),
                VmSpec("plain", host="esx-sa", disks=(DiskSpec(2048),), cbt=False),
            ),
        ),
        DatacenterSpec("Branch", datastores=(DatastoreSpec("ds-branch"),), hosts=("esx-b1",)),
    ),
)


@pytest.fixture(scope="session")
def launcher() -> Path:
    return build_launcher()


@dataclass
class Site:
    sim: Simulator
    si: Any
    changelog: ChangeLog


def connect(sim: Simulator) -> Any:
    return SmartConnect(host=sim.host, port=sim.port, user="u", pwd="p", protocol="http")


@pytest.fixture(scope="session")
def prod(launcher: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    changelog = tmp_path_factory.mktemp("changelog")
    with Simulator(PROD, changelog_dir=changelog, launcher=launcher) as sim:
        si = connect(sim)
        try:
            yield Site(sim, si, ChangeLog(changelog))
        finally:
            Disconnect(si)


def retrieve(si: Any, objs: list[Any], paths: list[str]) -> dict[Any, dict[str, Any]]:
    """Properties of objects through one RetrieveContents (unset properties are absent)."""
    pc = si.content.propertyCollector
    specs = vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=o) for o in objs],
        propSet=[
            vmodl.query.PropertyCollector.PropertySpec(type=type(o), pathSet=paths) for o in objs
        ],
    )
    out: dict[Any, dict[str, Any]] = {}
    for content in pc.RetrieveContents([specs]):
        out[content.obj] = {p.name: p.val for p in content.propSet or []}
    return out


def prop(si: Any, obj: Any, path: str) -> Any:
    return retrieve(si, [obj], [path]).get(obj, {}).get(path)


def inventory(si: Any, kind: type) -> dict[str, Any]:
    """name -> object for every managed entity of `kind`."""
    content = si.content
    view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
    try:
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[
                vmodl.query.PropertyCollector.ObjectSpec(
                    obj=view,
                    skip=True,
                    selectSet=[
                        vmodl.query.PropertyCollector.TraversalSpec(
                            name="v", type=vim.view.ContainerView, path="view", skip=False
                        )
                    ],
                )
            ],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=kind, pathSet=["name"])],
        )
        return {c.propSet[0].val: c.obj for c in content.propertyCollector.RetrieveContents([spec])}
    finally:
        view.Destroy()


def wait_task(si: Any, task: Any, timeout: float = 30.0) -> Any:
    """The task's result; raises its fault. Read through the PropertyCollector (LAB.md)."""
    deadline = time.monotonic() + timeout
    while True:
        info = retrieve(si, [task], ["info.state", "info.result", "info.error"])[task]
        if info["info.state"] == "success":
            return info.get("info.result")
        if info["info.state"] == "error":
            raise info["info.error"]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{task} still {info['info.state']} after {timeout} s")
        time.sleep(0.05)


def disks(si: Any, obj: Any) -> dict[int, Any]:
    """device key -> VirtualDisk of a VM or snapshot."""
    devices = prop(si, obj, "config.hardware.device")
    return {d.key: d for d in devices if isinstance(d, vim.vm.device.VirtualDisk)}
