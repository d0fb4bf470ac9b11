"""Fixtures for core.vsphere: one simulated vCenter for the session (production and DR
datacenters), reached only through core.vsphere's client, plus a way to start an ESXi model.

Tests that change the inventory use VMs and hosts no other test reads, so they share the session
simulator; the launcher build is the lab's cached one (tests.core.lab.conftest).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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
)
from core.vsphere.connection import VSphereClient
from core.vsphere.inventory import read_inventory
from core.vsphere.models import Inventory
from tests.core.lab.conftest import launcher  # noqa: F401  (the session's cached build)

ODD = "web 01 [prod] #1 & +% Ünïcødé"
MIB = 1 << 20

SPEC = SimulatorSpec(
    model="vpx",
    cbt_max_areas=3,
    datacenters=(
        DatacenterSpec(
            "Prod DC",
            datastores=(DatastoreSpec("ds-fast"), DatastoreSpec("ds slow #2", hosts=("esx-c1",))),
            networks=("Prod Net",),
            switches=(SwitchSpec("DVS0", ("pg-app", "pg [db] & co")),),
            clusters=(ClusterSpec("Cluster A", ("esx-c1", "esx-c2"), resource_pools=("Gold",)),),
            hosts=("esx-sa",),
            vms=(
                VmSpec(
                    ODD,
                    host="esx-c1",
                    cluster="Cluster A",
                    resource_pool="Gold",
                    folder="Apps/Web & Co",
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
                VmSpec("plain", host="esx-sa", disks=(DiskSpec(2048),), cbt=False),
                VmSpec("snap-vm", host="esx-sa", disks=(DiskSpec(1024),), cbt=True),
                VmSpec(
                    "cbt-vm", host="esx-sa", disks=(DiskSpec(32 * 1024), DiskSpec(1024)), cbt=True
                ),
                VmSpec(
                    "guest-vm",
                    host="esx-sa",
                    disks=(DiskSpec(1024),),
                    networks=("VM Network", "Prod Net"),
                ),
            ),
        ),
        DatacenterSpec(
            "DR DC",
            datastores=(DatastoreSpec("dr-ds"),),
            networks=("DR Net",),
            switches=(SwitchSpec("DVS-DR", ("pg-dr",)),),
            clusters=(ClusterSpec("DR Cluster", ("dr-1", "dr-2", "dr-3")),),
            vms=(
                VmSpec("dr-load-1", host="dr-1", disks=(DiskSpec(1024),)),
                VmSpec("dr-load-2", host="dr-1", disks=(DiskSpec(1024),)),
                VmSpec("dr-load-3", host="dr-3", disks=(DiskSpec(1024),), networks=("DR Net",)),
            ),
        ),
    ),
)


@dataclass
class Site:
    sim: Simulator
    client: VSphereClient
    changelog: ChangeLog

    def inventory(self) -> Inventory:
        return read_inventory(self.client)


def connect(sim: Simulator) -> VSphereClient:
    return VSphereClient.connect(sim.host, sim.port, "admin", "s3cret", protocol="http")


@pytest.fixture(scope="session")
def site(launcher: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:  # noqa: F811
    changelog = tmp_path_factory.mktemp("vsphere-changelog")
    with (
        Simulator(SPEC, changelog_dir=changelog, launcher=launcher) as sim,
        connect(sim) as client,
    ):
        yield Site(sim, client, ChangeLog(changelog))
