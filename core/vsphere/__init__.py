"""core.vsphere: ReplicaDesk's adapter to vCenter and ESXi, the only package that imports pyVmomi.

The rest of core gets plain frozen dataclasses (`core.vsphere.models`) and the project's own
errors (`core.errors`, vSphere section); managed objects are named by their moref strings.
Modules, one concern each: `connection` (the session and the fault-mapping `call`), `faults`,
`props` (PropertyCollector reads), `inventory`, `tasks`, `snapshots`, `power`, `cbt`, `vms`,
`customization`, `datastore` (paths and file operations) and `transfer` (datastore HTTP).
"""

from core.vsphere.connection import VSphereClient
from core.vsphere.models import (
    Cluster,
    Datacenter,
    Datastore,
    Disk,
    Folder,
    GuestNic,
    Host,
    Inventory,
    Network,
    Nic,
    ResourcePool,
    ServerAbout,
    Snapshot,
    Vm,
)

__all__ = [
    "Cluster",
    "Datacenter",
    "Datastore",
    "Disk",
    "Folder",
    "GuestNic",
    "Host",
    "Inventory",
    "Network",
    "Nic",
    "ResourcePool",
    "ServerAbout",
    "Snapshot",
    "VSphereClient",
    "Vm",
]
