"""What the built-in two-site lab contains: the production vCenter and the DR site.

`replicadesk lab up`, the tests and the benchmarks build their simulators from here. Production
is a vCenter with a cluster of three hosts (with a resource pool), two standalone hosts, three
datastores, standard port groups and a distributed switch, and a few dozen VMs in folders with
one to three thin disks; their names carry the characters that break scripts (spaces, brackets,
`#`, `&`, `+`, `%`, non-ASCII letters). The DR site is a second vCenter with a cluster of two
hosts, or a standalone ESXi host, and its networks are named differently (so jobs need a network
map). Deterministic for a seed: the same options give the same lab.

Guest processing can be tried on chosen production VMs: `LabOptions.no_tools` names guests that
never run VMware Tools, `LabOptions.quiesce_fails` guests whose quiesced snapshots fail while
they run (ApplicationQuiesceFault, as ESXi reports a guest that cannot be quiesced; a snapshot
without quiescing succeeds). Both are simulator options (`core.lab.simulator`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from core.errors import UsageError
from core.lab.simulator import (
    ESX_DATACENTER,
    ESX_HOST,
    ClusterSpec,
    DatacenterSpec,
    DatastoreSpec,
    DiskSpec,
    SimulatorSpec,
    SwitchSpec,
    VmSpec,
)

MIB = 1 << 20

PROD_DATACENTER = "Production DC"
PROD_CLUSTER = "Prod Cluster"
PROD_CLUSTER_HOSTS = ("esx-p01.prod.lab", "esx-p02.prod.lab", "esx-p03.prod.lab")
PROD_STANDALONE = ("esx-p04.prod.lab", "esx-p05.prod.lab")
PROD_DATASTORES = ("prod-ds-01", "prod-ds-02 (ssd)", "prod nfs #3")
# No brackets in datastore names: "[ds] path" is how vSphere names files, and vcsim (like many
# scripts) reads the datastore up to the first "]".
PROD_NETWORKS = ("Prod App", "Prod Backup")
PROD_DVS = SwitchSpec("Prod-DVS", ("pg-web", "pg-db [tier 2]"))

DR_DATACENTER = "DR DC"
DR_CLUSTER = "DR Cluster"
DR_HOSTS = ("esx-d01.dr.lab", "esx-d02.dr.lab")
DR_DATASTORES = ("dr-ds-01", "dr-ds-02")
DR_NETWORKS = ("DR App", "DR Backup", "DR Web", "DR DB")

PROXY_VM = "replicadesk-proxy"
"""The backup proxy's own VM (LabOptions.proxy_vm): a small Linux VM with one disk, so it has the
SCSI controller Virtual appliance (hot-add) mode attaches source disks to."""

NETWORK_MAP = {
    "Prod App": "DR App",
    "Prod Backup": "DR Backup",
    "pg-web": "DR Web",
    "pg-db [tier 2]": "DR DB",
}
"""How production networks map onto the DR site's (what a lab job's network mapping uses)."""

# Names admins really use, and the characters that break scripts.
_VM_NAMES = (
    # The first six carry every character class that breaks scripts, so even a small lab has them.
    "dc01",
    "web 02 (canary)",
    "db #2 & replica",
    "app+cache",
    "50% batch",
    "Zürich fileserver [fs]",
    "web-01",
    "db [primary]",
    "dc02",
    "app-02",
    "web-03 [dmz]",
    "mail-01",
    "Ünïcødé reports",
    "monitoring",
    "jump-host",
    "ci runner #7",
    "erp & finance",
    "hr+payroll",
    "print 01",
    "wiki",
    "backup-proxy-vm",
    "log collector [syslog]",
    "dns-01",
    "vpn gw",
)


@dataclass(frozen=True)
class LabOptions:
    """How big the lab is and what its DR site looks like."""

    vms: int = 24
    dr: Literal["vcenter", "esx"] = "vcenter"
    disk_mib: tuple[int, int] = (64, 256)  # capacity range of each disk (thin)
    seed: int = 7
    wan_mbit: float = 100.0
    cbt: bool = True
    fill: float = 0.15  # share of each thin disk the guests have written
    proxy_vm: bool = False  # add PROXY_VM, the production proxy's VM, for hot-add
    no_tools: tuple[str, ...] = ()  # production VMs whose guests never run VMware Tools
    quiesce_fails: tuple[str, ...] = ()  # production VMs whose quiesced snapshots fail

    def check(self) -> None:
        if not 1 <= self.vms <= 200:
            raise UsageError(f"the lab has 1 to 200 VMs, not {self.vms}")
        low, high = self.disk_mib
        if not 1 <= low <= high:
            raise UsageError(f"disk size range {low}-{high} MiB is not a range of sizes")
        if not 0 < self.fill <= 1:
            raise UsageError(f"disk fill {self.fill} is not a share above 0 and up to 1")
        if self.wan_mbit <= 0:
            raise UsageError(f"WAN rate {self.wan_mbit} Mbit/s is not positive")


def vm_names(count: int) -> list[str]:
    """The lab's VM names: the list above, then numbered ones."""
    names = list(_VM_NAMES[:count])
    names += [f"vm-{i:03d}" for i in range(len(names), count)]
    return names


def production_spec(options: LabOptions) -> SimulatorSpec:
    rng = np.random.default_rng(options.seed)
    hosts = list(PROD_CLUSTER_HOSTS) + list(PROD_STANDALONE)
    networks = list(PROD_NETWORKS) + list(PROD_DVS.portgroups)
    folders = ("Infrastructure", "Apps/Web", "Apps/Data", "")
    vms = []
    low, high = options.disk_mib
    for i, name in enumerate(vm_names(options.vms)):
        host = hosts[i % len(hosts)]
        in_cluster = host in PROD_CLUSTER_HOSTS
        n_disks = int(rng.integers(1, 4))
        disks = tuple(
            DiskSpec(int(rng.integers(low, high + 1)) * 1024, thin=True) for _ in range(n_disks)
        )
        n_nics = 1 if i % 3 else 2
        nics = tuple(networks[(i + k) % len(networks)] for k in range(n_nics))
        vms.append(
            VmSpec(
                name,
                host=host,
                cluster=PROD_CLUSTER if in_cluster else "",
                resource_pool="Tier 1" if in_cluster and i % 2 else "",
                folder=folders[i % len(folders)],
                datastore=PROD_DATASTORES[i % len(PROD_DATASTORES)],
                cpus=1 + i % 4,
                memory_mb=512 * (1 + i % 4),
                guest_id="windows9Server64Guest" if i % 4 == 0 else "otherLinux64Guest",
                disks=disks,
                networks=nics,
                power_on=True,
                cbt=options.cbt,
                no_tools=name in options.no_tools,
                quiesce_fails=name in options.quiesce_fails,
            )
        )
    if options.proxy_vm:
        vms.append(
            VmSpec(
                PROXY_VM,
                host=PROD_CLUSTER_HOSTS[0],
                cluster=PROD_CLUSTER,
                folder="Infrastructure",
                datastore=PROD_DATASTORES[0],
                cpus=2,
                memory_mb=2048,
                guest_id="otherLinux64Guest",
                disks=(DiskSpec(1024, thin=True),),
                networks=(PROD_NETWORKS[1],),
                power_on=True,
            )
        )
    dc = DatacenterSpec(
        PROD_DATACENTER,
        datastores=tuple(DatastoreSpec(n) for n in PROD_DATASTORES),
        networks=PROD_NETWORKS,
        switches=(PROD_DVS,),
        clusters=(ClusterSpec(PROD_CLUSTER, PROD_CLUSTER_HOSTS, resource_pools=("Tier 1",)),),
        hosts=PROD_STANDALONE,
        vms=tuple(vms),
    )
    return SimulatorSpec("vpx", (dc,))


def dr_spec(options: LabOptions) -> SimulatorSpec:
    if options.dr == "esx":
        dc = DatacenterSpec(
            ESX_DATACENTER,
            datastores=tuple(DatastoreSpec(n) for n in DR_DATASTORES),
            networks=DR_NETWORKS,
        )
        return SimulatorSpec("esx", (dc,))
    dc = DatacenterSpec(
        DR_DATACENTER,
        datastores=tuple(DatastoreSpec(n) for n in DR_DATASTORES),
        networks=DR_NETWORKS,
        clusters=(ClusterSpec(DR_CLUSTER, DR_HOSTS, resource_pools=("Replicas",)),),
    )
    return SimulatorSpec("vpx", (dc,))


def dr_hosts(options: LabOptions) -> tuple[str, ...]:
    return (ESX_HOST,) if options.dr == "esx" else DR_HOSTS
