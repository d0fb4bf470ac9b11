"""The vSphere tree as dataclasses: one ContainerView read of a whole server, or one VM.

`read_inventory` is what ``replicadesk inventory``, the job wizard's pickers and the run's
container expansion read: datacenters, VM folders with their paths, clusters, hosts, resource
pools, datastores, networks (standard and distributed port groups) and VMs with their disks,
NICs, snapshots and guest addresses, all in a single RetrieveContents over a ContainerView
(explicit property paths per type, LAB.md). `read_vm` reads one VM the same way, for the
pre-flight checks of a run. Parents are followed through the ``parent`` properties read in the
same pass, so folder paths and clusters cost no extra round trip.

The inventory's answer is parsed by the fast reader (`core.vsphere.fastprops`: 5,000 VMs in
about 1 s instead of 7.8 s through pyVmomi's objects); ``reader="pyvmomi"`` reads it through
pyVmomi as `read_vm` does, the reference the tests compare the fast reader with. Both readers
hand the same plain rows (`ObjectContent`: morefs as strings, a VM's parts as `vmparts` makes
them) to one assembly, so they differ only in how the XML becomes values.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from core.vsphere import fastprops, vmparts
from core.vsphere._pyvmomi import ManagedObject, vim
from core.vsphere.connection import VSphereClient
from core.vsphere.fastprops import Element, ObjectContent, fields, text
from core.vsphere.models import (
    Cluster,
    Datacenter,
    Datastore,
    Folder,
    Host,
    Inventory,
    Network,
    NetworkKind,
    ResourcePool,
    Vm,
)
from core.vsphere.props import Props, collect, moref, retrieve, retrieve_one
from core.vsphere.vmparts import Devices, VmSnapshots

Reader = Literal["fast", "pyvmomi"]

VM_PATHS = (
    "name",
    "parent",
    "config.uuid",
    "config.instanceUuid",
    "config.guestId",
    "config.template",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "config.hardware.device",
    "config.files.vmPathName",
    "config.changeTrackingEnabled",
    "config.tools.pendingCustomization",
    "runtime.host",
    "runtime.powerState",
    "resourcePool",
    "guest.ipAddress",
    "guest.net",
    "guest.toolsRunningStatus",
    "snapshot",
)
NETWORK_PATHS = ("name", "parent", "host")
PORTGROUP_PATHS = (*NETWORK_PATHS, "key", "config.distributedVirtualSwitch")
PATHS: dict[type, tuple[str, ...]] = {
    vim.Datacenter: ("name", "parent", "vmFolder", "hostFolder"),
    vim.Folder: ("name", "parent"),
    vim.ComputeResource: ("name", "parent", "host", "resourcePool"),
    vim.ClusterComputeResource: ("name", "parent", "host", "resourcePool"),
    vim.HostSystem: (
        "name",
        "parent",
        "runtime.connectionState",
        "runtime.inMaintenanceMode",
        "vm",
        "datastore",
        "network",
    ),
    vim.ResourcePool: ("name", "parent", "owner"),
    vim.Datastore: (
        "name",
        "parent",
        "info.url",
        "summary.capacity",
        "summary.freeSpace",
        "summary.accessible",
        "summary.type",
        "host",
    ),
    vim.Network: NETWORK_PATHS,
    vim.dvs.DistributedVirtualPortgroup: PORTGROUP_PATHS,
    vim.DistributedVirtualSwitch: ("name", "uuid"),
    vim.VirtualMachine: VM_PATHS,
}


# --- both readers' rows -----------------------------------------------------------------------

# Most specific first: a cluster is a ComputeResource, a port group a Network (and a VMware
# distributed switch a DistributedVirtualSwitch, a datastore cluster a Folder).
_ORDER: tuple[Any, ...] = (
    vim.Datacenter,
    vim.Folder,
    vim.ClusterComputeResource,
    vim.ComputeResource,
    vim.HostSystem,
    vim.ResourcePool,
    vim.Datastore,
    vim.dvs.DistributedVirtualPortgroup,
    vim.Network,
    vim.DistributedVirtualSwitch,
    vim.VirtualMachine,
)


@functools.cache
def _kind(cls: Any) -> str:
    """The inventory's kind of an object of pyVmomi class `cls`: the WSDL name of the first of
    `_ORDER` it is an instance of ("" for none, or no class)."""
    if cls is None:
        return ""
    return next((str(k._wsdlName) for k in _ORDER if issubclass(cls, k)), "")


def _mount_hosts_xml(el: Element) -> tuple[str, ...]:
    """An ``ArrayOfDatastoreHostMount``: the hosts' morefs."""
    return tuple(text(fields(m), "key") for m in el)


_XML_CONVERTERS: fastprops.Converters = {
    "ArrayOfVirtualDevice": vmparts.devices_xml,
    "ArrayOfGuestNicInfo": vmparts.guest_nics_xml,
    "VirtualMachineSnapshotInfo": vmparts.snapshots_xml,
    "ArrayOfDatastoreHostMount": _mount_hosts_xml,
}


def _plain(value: Any) -> Any:
    """A value pyVmomi deserialized, as the fast reader hands it (`fastprops.value` and the
    converters above)."""
    if isinstance(value, ManagedObject):
        return str(value._moId)
    if isinstance(value, vim.vm.SnapshotInfo):
        return vmparts.snapshots(value)
    if isinstance(value, list):
        item = getattr(type(value), "Item", object)
        if issubclass(item, vim.vm.device.VirtualDevice):
            return vmparts.devices(value)
        if issubclass(item, vim.vm.GuestInfo.NicInfo):
            return vmparts.parse_guest_nics(value)
        if issubclass(item, vim.Datastore.HostMount):
            return tuple(moref(m.key) for m in value)
        return tuple(_plain(v) for v in value)
    if isinstance(value, bool | int | float | datetime):
        return value
    if isinstance(value, str):
        return str(value)  # an enumeration's value is a str subclass
    raise TypeError(f"no plain form for {type(value).__name__} in this read")


def _plain_props(props: Props) -> Props:
    return {path: _plain(v) for path, v in props.items()}


def _pyvmomi_rows(rows: Iterable[tuple[Any, Props]]) -> list[ObjectContent]:
    return [ObjectContent(_kind(o.__class__), moref(o), _plain_props(p)) for o, p in rows]


def _fast_rows(rows: Iterable[ObjectContent]) -> list[ObjectContent]:
    """The fast reader's rows with their kind as the inventory counts them."""
    return [ObjectContent(_kind(fastprops.wsdl_class(r.kind)), r.moref, r.props) for r in rows]


def _ref(p: Props, path: str) -> str:
    return str(p.get(path) or "")


def _refs(p: Props, path: str) -> tuple[str, ...]:
    return tuple(p.get(path) or ())


# --- the tree ---------------------------------------------------------------------------------


class _Tree:
    """Parent links and names read in one pass, to compute datacenters, paths and clusters."""

    def __init__(self, rows: Sequence[ObjectContent]) -> None:
        self.props: dict[str, Props] = {r.moref: r.props for r in rows}
        self.kinds: dict[str, str] = {r.moref: r.kind for r in rows}

    def parent(self, ref: str) -> str:
        return _ref(self.props.get(ref, {}), "parent")

    def datacenter(self, ref: str) -> str:
        seen = 0
        while ref and seen < 64:
            if self.kinds.get(ref) == "Datacenter":
                return ref
            ref = self.parent(ref)
            seen += 1
        return ""

    def name(self, ref: str) -> str:
        return str(self.props.get(ref, {}).get("name", ""))

    def path_below(self, ref: str, root: str) -> tuple[str, ...]:
        """Names from just below `root` down to `ref` (() when ref is root or not below it)."""
        names: list[str] = []
        while ref and ref != root:
            names.append(self.name(ref))
            ref = self.parent(ref)
            if len(names) > 64:
                return ()
        return tuple(reversed(names)) if ref == root else ()


def read_inventory(client: VSphereClient, reader: Reader = "fast") -> Inventory:
    """The whole inventory of the server, in one RetrieveContents."""
    what = f"read the inventory of {client.where}"
    if reader == "fast":
        rows = _fast_rows(fastprops.collect(client, PATHS, _XML_CONVERTERS, what=what))
    else:
        rows = _pyvmomi_rows(collect(client, PATHS, what=what))
    return _inventory(client, rows)


def _inventory(client: VSphereClient, rows: Sequence[ObjectContent]) -> Inventory:
    tree = _Tree(rows)
    by_kind: dict[str, list[tuple[str, Props]]] = {}
    for row in rows:
        by_kind.setdefault(row.kind, []).append((row.moref, row.props))

    dcs = tuple(
        Datacenter(ref, str(p.get("name", "")), _ref(p, "vmFolder"), _ref(p, "hostFolder"))
        for ref, p in by_kind.get("Datacenter", [])
    )
    vm_roots = {dc.vm_folder: dc.moref for dc in dcs}
    folders = []
    for ref, p in by_kind.get("Folder", []):
        dc = tree.datacenter(ref)
        root = next((f for f, d in vm_roots.items() if d == dc), "")
        if ref == root or (root and tree.path_below(ref, root)):
            folders.append(
                Folder(
                    ref,
                    str(p.get("name", "")),
                    dc,
                    "" if ref == root else tree.parent(ref),
                    tree.path_below(ref, root),
                )
            )

    clusters = tuple(
        Cluster(
            ref,
            str(p.get("name", "")),
            tree.datacenter(ref),
            _refs(p, "host"),
            _ref(p, "resourcePool"),
        )
        for ref, p in by_kind.get("ClusterComputeResource", [])
    )
    cluster_refs = {c.moref for c in clusters}
    compute_pool = {
        ref: _ref(p, "resourcePool")
        for kind in ("ComputeResource", "ClusterComputeResource")
        for ref, p in by_kind.get(kind, [])
    }
    hosts = tuple(
        Host(
            moref=ref,
            name=str(p.get("name", "")),
            datacenter=tree.datacenter(ref),
            cluster=tree.parent(ref) if tree.parent(ref) in cluster_refs else "",
            connection_state=str(p.get("runtime.connectionState", "")),
            in_maintenance=bool(p.get("runtime.inMaintenanceMode", False)),
            vm_count=len(_refs(p, "vm")),
            resource_pool=compute_pool.get(tree.parent(ref), ""),
            datastores=_refs(p, "datastore"),
            networks=_refs(p, "network"),
        )
        for ref, p in by_kind.get("HostSystem", [])
    )
    pools = []
    for ref, p in by_kind.get("ResourcePool", []):
        owner = _ref(p, "owner")
        root = compute_pool.get(owner, "")
        parent = tree.parent(ref)
        pools.append(
            ResourcePool(
                ref,
                str(p.get("name", "")),
                tree.datacenter(ref),
                owner,
                "" if ref == root else parent,
                tree.path_below(ref, root),
            )
        )
    datastores = tuple(
        Datastore(
            moref=ref,
            name=str(p.get("name", "")),
            datacenter=tree.datacenter(ref),
            url=str(p.get("info.url", "")),
            capacity=int(p.get("summary.capacity") or 0),
            free=int(p.get("summary.freeSpace") or 0),
            accessible=bool(p.get("summary.accessible", False)),
            type=str(p.get("summary.type", "")),
            hosts=_union(_refs(p, "host"), (h.moref for h in hosts if ref in h.datastores)),
        )
        for ref, p in by_kind.get("Datastore", [])
    )
    switches = {ref: p for ref, p in by_kind.get("DistributedVirtualSwitch", [])}
    networks = tuple(
        _network(ref, p, kind, tree.datacenter(ref), switches, hosts)
        for kind in ("Network", "DistributedVirtualPortgroup")
        for ref, p in by_kind.get(kind, [])
    )
    names = {n.moref: n.name for n in networks}
    portgroups = {n.portgroup_key: n.moref for n in networks if n.portgroup_key}
    host_cluster = {h.moref: h.cluster for h in hosts}
    vms = tuple(
        _vm(ref, p, tree, vm_roots, host_cluster, names, portgroups)
        for ref, p in by_kind.get("VirtualMachine", [])
    )
    return Inventory(
        about=client.about,
        datacenters=dcs,
        folders=tuple(folders),
        clusters=clusters,
        hosts=hosts,
        resource_pools=tuple(pools),
        datastores=datastores,
        networks=networks,
        vms=vms,
    )


def _union(*groups: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({x for g in groups for x in g if x}))


def _network(
    ref: str,
    p: Props,
    kind: str,
    datacenter: str,
    switches: Mapping[str, Props],
    known_hosts: Iterable[Host] = (),
) -> Network:
    """A network; its hosts are those it names and those that name it (the simulator keeps
    ``Network.host`` empty for standard port groups, and ``Datastore.host`` lists one host)."""
    name = str(p.get("name", ""))
    hosts = _union(_refs(p, "host"), (h.moref for h in known_hosts if ref in h.networks))
    if kind == "DistributedVirtualPortgroup":
        switch = _ref(p, "config.distributedVirtualSwitch")
        sw = switches.get(switch, {})
        return Network(
            ref,
            name,
            datacenter,
            "distributed",
            hosts,
            switch=str(sw.get("name", "")),
            switch_uuid=str(sw.get("uuid", "")),
            portgroup_key=str(p.get("key", "") or ref),
        )
    net_kind: NetworkKind = "opaque" if ref.startswith("opaque") else "standard"
    return Network(ref, name, datacenter, net_kind, hosts)


def _vm(
    ref: str,
    p: Props,
    tree: _Tree | None,
    vm_roots: Mapping[str, str],
    host_cluster: Mapping[str, str],
    names: Mapping[str, str],
    portgroups: Mapping[str, str],
    folder_path: tuple[str, ...] | None = None,
    datacenter: str = "",
) -> Vm:
    """A VM from its plain properties (either reader's)."""
    folder = _ref(p, "parent")
    if tree is not None:
        datacenter = tree.datacenter(ref)
        root = next((f for f, d in vm_roots.items() if d == datacenter), "")
        folder_path = tree.path_below(folder, root)
    host = _ref(p, "runtime.host")
    snaps: VmSnapshots = p.get("snapshot") or VmSnapshots()
    devices: Devices = p.get("config.hardware.device") or Devices()
    return Vm(
        moref=ref,
        name=str(p.get("name", "")),
        uuid=str(p.get("config.uuid", "") or ""),
        instance_uuid=str(p.get("config.instanceUuid", "") or ""),
        datacenter=datacenter,
        host=host,
        cluster=host_cluster.get(host, ""),
        resource_pool=_ref(p, "resourcePool"),
        folder=folder,
        folder_path=folder_path or (),
        power_state=str(p.get("runtime.powerState", "")),
        guest_id=str(p.get("config.guestId", "") or ""),
        cpus=int(p.get("config.hardware.numCPU") or 0),
        memory_mb=int(p.get("config.hardware.memoryMB") or 0),
        vmx_path=str(p.get("config.files.vmPathName", "") or ""),
        change_tracking=bool(p.get("config.changeTrackingEnabled", False)),
        template=bool(p.get("config.template", False)),
        ip_address=str(p.get("guest.ipAddress", "") or ""),
        guest_nics=tuple(p.get("guest.net") or ()),
        snapshots=snaps.roots,
        current_snapshot=snaps.current,
        disks=devices.disks,
        nics=vmparts.resolve_nics(devices.nics, names, portgroups),
        tools_running=str(p.get("guest.toolsRunningStatus", "")) == "guestToolsRunning",
        pending_customization=bool(p.get("config.tools.pendingCustomization")),
    )


def read_vm(client: VSphereClient, vm: str) -> Vm:
    """One VM, read fresh: its properties, then its host, folder chain and networks."""
    obj = client.obj("VirtualMachine", vm)
    p = retrieve_one(client, obj, (*VM_PATHS, "network"), what=f"read VM {vm}")
    host = p.get("runtime.host")
    host_cluster: dict[str, str] = {}
    if host is not None:
        hp = retrieve_one(client, host, ("parent",), what=f"read the host of VM {vm}")
        parent = hp.get("parent")
        if isinstance(parent, vim.ClusterComputeResource):
            host_cluster[moref(host)] = moref(parent)
    # Walk the folder chain up to the datacenter: a few small reads (folders are shallow).
    chain: list[str] = []
    datacenter = ""
    ref = p.get("parent")
    for _ in range(64):
        if ref is None:
            break
        if isinstance(ref, vim.Datacenter):
            datacenter = moref(ref)
            break
        fp = retrieve_one(client, ref, ("name", "parent"), what=f"read the folders of VM {vm}")
        chain.append(str(fp.get("name", "")))
        ref = fp.get("parent")
    folder_path = tuple(reversed(chain[:-1]))  # without the datacenter's root "vm" folder
    nets = list(p.get("network") or ())
    names: dict[str, str] = {}
    portgroups: dict[str, str] = {}
    plain = [n for n in nets if not isinstance(n, vim.dvs.DistributedVirtualPortgroup)]
    dvpgs = [n for n in nets if isinstance(n, vim.dvs.DistributedVirtualPortgroup)]
    for ref_, np in retrieve(
        client, plain, ("name",), what=f"read the networks of VM {vm}"
    ).items():
        names[ref_] = str(np.get("name", ""))
    for ref_, np in retrieve(
        client, dvpgs, ("name", "key"), what=f"read the port groups of VM {vm}"
    ).items():
        names[ref_] = str(np.get("name", ""))
        portgroups[str(np.get("key", "") or ref_)] = ref_
    return _vm(
        vm,
        _plain_props(p),
        None,
        {},
        host_cluster,
        names,
        portgroups,
        folder_path=folder_path,
        datacenter=datacenter,
    )


def datacenter_of(client: VSphereClient, obj: Any) -> Any:
    """The Datacenter an entity lives in, by following ``parent`` (a few small reads)."""
    ref = obj
    for _ in range(64):
        if ref is None or isinstance(ref, vim.Datacenter):
            return ref
        ref = retrieve_one(
            client, ref, ("parent",), what=f"find the datacenter of {moref(obj)}"
        ).get("parent")
    return None


def networks_of_datacenter(client: VSphereClient, datacenter: Any) -> tuple[Network, ...]:
    """Every network (standard and distributed port groups) of a datacenter."""
    dc = moref(datacenter)
    p = retrieve_one(client, datacenter, ("networkFolder",), what=f"read datacenter {dc}")
    rows = _pyvmomi_rows(
        collect(
            client,
            {
                vim.Network: NETWORK_PATHS,
                vim.dvs.DistributedVirtualPortgroup: PORTGROUP_PATHS,
                vim.DistributedVirtualSwitch: ("name", "uuid"),
            },
            container=p.get("networkFolder"),
            what=f"read the networks of datacenter {dc}",
        )
    )
    switches = {r.moref: r.props for r in rows if r.kind == "DistributedVirtualSwitch"}
    return tuple(
        _network(r.moref, r.props, r.kind, dc, switches)
        for r in rows
        if r.kind in ("DistributedVirtualPortgroup", "Network")
    )
