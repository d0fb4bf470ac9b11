"""What core.vsphere hands the rest of core: plain frozen dataclasses, no pyVmomi type in sight.

Every object is named by its managed object ID (``moref``: ``"vm-64"``, ``"host-21"``,
``"snapshot-80"``), never by its name alone: names may contain spaces, brackets, ``#``, ``&``,
``+``, ``%`` and non-ASCII letters, and two VMs may share one. Names are kept as vSphere returns
them (decoded text, no URL escaping). Sizes are bytes; memory is MiB as vSphere counts it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeVar

ApiType = Literal["VirtualCenter", "HostAgent"]
PowerState = Literal["poweredOn", "poweredOff", "suspended"]
NetworkKind = Literal["standard", "distributed", "opaque"]
_T = TypeVar("_T")


@dataclass(frozen=True)
class ServerAbout:
    """What the server says it is (``content.about``)."""

    api_type: str  # "VirtualCenter" (vCenter) or "HostAgent" (a standalone ESXi host)
    name: str
    version: str
    build: str
    full_name: str
    instance_uuid: str

    @property
    def is_vcenter(self) -> bool:
        return self.api_type == "VirtualCenter"


@dataclass(frozen=True)
class Datacenter:
    moref: str
    name: str
    vm_folder: str  # moref of the datacenter's root VM folder
    host_folder: str


@dataclass(frozen=True)
class Folder:
    """A VM folder; `path` is relative to its datacenter's root VM folder ("" for that root)."""

    moref: str
    name: str
    datacenter: str  # moref
    parent: str  # moref ("" for a datacenter's root VM folder)
    path: tuple[str, ...]

    @property
    def path_text(self) -> str:
        return "/".join(self.path)


@dataclass(frozen=True)
class Cluster:
    moref: str
    name: str
    datacenter: str
    hosts: tuple[str, ...]
    resource_pool: str  # the cluster's root pool


@dataclass(frozen=True)
class Host:
    moref: str
    name: str
    datacenter: str
    cluster: str  # moref, "" for a standalone host
    connection_state: str  # "connected", "disconnected", "notResponding"
    in_maintenance: bool
    vm_count: int  # VMs registered on the host
    resource_pool: str  # root pool of the host's compute resource (its cluster's for a member)
    datastores: tuple[str, ...]
    networks: tuple[str, ...]

    @property
    def connected(self) -> bool:
        return self.connection_state == "connected" and not self.in_maintenance


@dataclass(frozen=True)
class ResourcePool:
    moref: str
    name: str
    datacenter: str
    owner: str  # moref of the cluster or standalone compute resource
    parent: str  # moref of the parent pool, "" for a root pool
    path: tuple[str, ...]  # names below the root pool, () for the root


@dataclass(frozen=True)
class Datastore:
    moref: str
    name: str
    datacenter: str
    url: str  # info.url: a local folder in the lab, /vmfs/volumes/... on ESXi
    capacity: int
    free: int
    accessible: bool
    type: str  # "VMFS", "NFS", "OTHER" (the lab's local folders)...
    hosts: tuple[str, ...]  # hosts that mount it


@dataclass(frozen=True)
class Network:
    moref: str
    name: str
    datacenter: str
    kind: NetworkKind
    hosts: tuple[str, ...]
    switch: str = ""  # name of the distributed switch ("" for a standard port group)
    switch_uuid: str = ""
    portgroup_key: str = ""  # key of a distributed port group (what NIC backings name)


@dataclass(frozen=True)
class Snapshot:
    moref: str
    name: str
    description: str
    create_time: datetime
    state: str  # the power state the snapshot captured
    quiesced: bool
    children: tuple[Snapshot, ...] = ()

    def walk(self) -> Iterator[Snapshot]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True)
class Disk:
    key: int  # device key (2000 + n)
    controller_key: int
    unit_number: int
    capacity: int  # bytes
    file_name: str  # "[ds] folder/x.vmdk"
    thin: bool
    datastore: str  # moref
    change_id: str  # backing.changeId ("" when change tracking is off or unknown)
    disk_mode: str  # "persistent", "independent_persistent"...
    label: str = ""


@dataclass(frozen=True)
class Nic:
    key: int  # device key (4000 + n)
    mac: str
    network: str  # moref ("" when the backing names none)
    network_name: str
    connected: bool
    start_connected: bool
    adapter: str  # "vmxnet3", "e1000", "e1000e"...
    label: str = ""


@dataclass(frozen=True)
class GuestNic:
    """A NIC as the guest (VMware Tools) reports it."""

    mac: str
    network: str  # network name
    ip_addresses: tuple[str, ...]
    connected: bool
    device_key: int  # -1 when not tied to a virtual device


@dataclass(frozen=True)
class Vm:
    moref: str
    name: str
    uuid: str  # BIOS UUID (config.uuid)
    instance_uuid: str
    datacenter: str
    host: str
    cluster: str  # "" on a standalone host
    resource_pool: str
    folder: str  # moref of its VM folder
    folder_path: tuple[str, ...]
    power_state: str
    guest_id: str
    cpus: int
    memory_mb: int
    vmx_path: str  # "[ds] folder/name.vmx"
    change_tracking: bool
    template: bool
    ip_address: str  # guest.ipAddress ("" when the guest reports none)
    guest_nics: tuple[GuestNic, ...]
    snapshots: tuple[Snapshot, ...]  # root snapshots, each with its children
    current_snapshot: str  # moref, "" when the VM has none
    disks: tuple[Disk, ...]
    nics: tuple[Nic, ...]
    tools_running: bool = False
    pending_customization: bool = False

    @property
    def guest_ips(self) -> tuple[str, ...]:
        ips = [ip for nic in self.guest_nics for ip in nic.ip_addresses]
        if self.ip_address and self.ip_address not in ips:
            ips.insert(0, self.ip_address)
        return tuple(ips)

    def addresses_per_nic(self) -> list[tuple[str, ...]]:
        """The guest's addresses per virtual NIC, in device order (matched by key, else MAC)."""
        out: list[tuple[str, ...]] = []
        for i, nic in enumerate(self.nics):
            guest = next((g for g in self.guest_nics if g.device_key == nic.key), None)
            if guest is None and nic.mac:
                guest = next((g for g in self.guest_nics if g.mac.lower() == nic.mac.lower()), None)
            ips = guest.ip_addresses if guest is not None else ()
            if not ips and i == 0 and self.ip_address and not self.guest_nics:
                ips = (self.ip_address,)
            out.append(tuple(ips))
        return out

    def all_snapshots(self) -> Iterator[Snapshot]:
        for root in self.snapshots:
            yield from root.walk()

    def disk(self, key: int) -> Disk:
        for d in self.disks:
            if d.key == key:
                return d
        raise KeyError(key)


@dataclass(frozen=True)
class Inventory:
    """One consistent read of a server's inventory (`read_inventory`)."""

    about: ServerAbout
    datacenters: tuple[Datacenter, ...] = ()
    folders: tuple[Folder, ...] = ()
    clusters: tuple[Cluster, ...] = ()
    hosts: tuple[Host, ...] = ()
    resource_pools: tuple[ResourcePool, ...] = ()
    datastores: tuple[Datastore, ...] = ()
    networks: tuple[Network, ...] = ()
    vms: tuple[Vm, ...] = ()
    _index: dict[str, object] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for group in (
            self.datacenters,
            self.folders,
            self.clusters,
            self.hosts,
            self.resource_pools,
            self.datastores,
            self.networks,
            self.vms,
        ):
            for obj in group:
                self._index[obj.moref] = obj

    def _get(self, moref: str, kind: type[_T]) -> _T:
        obj = self._index.get(moref)
        if not isinstance(obj, kind):
            raise KeyError(moref)
        return obj

    def has(self, moref: str) -> bool:
        """True when any object of this inventory has that moref."""
        return moref in self._index

    def vm(self, moref: str) -> Vm:
        return self._get(moref, Vm)

    def host(self, moref: str) -> Host:
        return self._get(moref, Host)

    def cluster(self, moref: str) -> Cluster:
        return self._get(moref, Cluster)

    def datastore(self, moref: str) -> Datastore:
        return self._get(moref, Datastore)

    def network(self, moref: str) -> Network:
        return self._get(moref, Network)

    def folder(self, moref: str) -> Folder:
        return self._get(moref, Folder)

    def datacenter(self, moref: str) -> Datacenter:
        return self._get(moref, Datacenter)

    def resource_pool(self, moref: str) -> ResourcePool:
        return self._get(moref, ResourcePool)

    def vms_named(self, name: str) -> list[Vm]:
        return [v for v in self.vms if v.name == name]

    def named(self, kind: type[_T], name: str, datacenter: str = "") -> _T:
        """The one object of `kind` called `name` (in `datacenter`, a moref, when given)."""
        found = [
            o
            for o in self._index.values()
            if isinstance(o, kind)
            and getattr(o, "name", None) == name
            and (not datacenter or getattr(o, "datacenter", datacenter) == datacenter)
        ]
        if len(found) != 1:
            raise KeyError(f"{len(found)} {kind.__name__} objects named {name!r}")
        return found[0]
