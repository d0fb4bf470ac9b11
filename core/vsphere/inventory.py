"""The vSphere tree as dataclasses: one ContainerView read of a whole server, or one VM.

`read_inventory` is what ``replicadesk inventory``, the job wizard's pickers and the run's
container expansion read: datacenters, VM folders with their paths, clusters, hosts, resource
pools, datastores, networks (standard and distributed port groups) and VMs with their disks,
NICs, snapshots and guest addresses, all in a single RetrieveContents over a ContainerView
(explicit property paths per type, LAB.md). `read_vm` reads one VM the same way, for the
pre-flight checks of a run. Parents are followed through the ``parent`` properties read in the
same pass, so folder paths and clusters cost no extra round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from core.vsphere._pyvmomi import vim
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
    NetworkKind,
    Nic,
    ResourcePool,
    Snapshot,
    Vm,
)
from core.vsphere.props import Props, collect, moref, morefs, retrieve, retrieve_one

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


# --- devices and snapshots (shared with core.vsphere's operations) --------------------------


def disk_capacity(d: Any) -> int:
    # vcsim leaves capacityInBytes unset on disks made by CreateVM (LAB.md): fall back to KB.
    return int(getattr(d, "capacityInBytes", 0) or 0) or int(d.capacityInKB or 0) * 1024


def parse_disk(d: Any) -> Disk:
    b = d.backing
    return Disk(
        key=int(d.key),
        controller_key=int(d.controllerKey or 0),
        unit_number=int(d.unitNumber if d.unitNumber is not None else -1),
        capacity=disk_capacity(d),
        file_name=str(getattr(b, "fileName", "") or ""),
        thin=bool(getattr(b, "thinProvisioned", False)),
        datastore=moref(getattr(b, "datastore", None)),
        change_id=str(getattr(b, "changeId", "") or ""),
        disk_mode=str(getattr(b, "diskMode", "") or ""),
        label=str(getattr(d.deviceInfo, "label", "") or "") if d.deviceInfo else "",
    )


def parse_disks(devices: Iterable[Any] | None) -> tuple[Disk, ...]:
    return tuple(
        sorted(
            (parse_disk(d) for d in devices or () if isinstance(d, vim.vm.device.VirtualDisk)),
            key=lambda d: d.key,
        )
    )


def nic_adapter(d: Any) -> str:
    name = type(d).__name__.rsplit(".", 1)[-1]  # "VirtualVmxnet3"
    return name.removeprefix("Virtual").lower()


def parse_nics(
    devices: Iterable[Any] | None,
    names: Mapping[str, str],
    portgroups: Mapping[str, str],
) -> tuple[Nic, ...]:
    """NICs of a device list; `names`: network moref -> name; `portgroups`: DV port group key
    -> moref."""
    out = []
    for d in devices or ():
        if not isinstance(d, vim.vm.device.VirtualEthernetCard):
            continue
        b = d.backing
        net, name = "", ""
        if isinstance(b, vim.vm.device.VirtualEthernetCard.NetworkBackingInfo):
            net = moref(b.network)
            name = names.get(net, str(b.deviceName or ""))
        elif isinstance(b, vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo):
            key = str(b.port.portgroupKey or "") if b.port else ""
            net = portgroups.get(key, key)
            name = names.get(net, "")
        elif isinstance(b, vim.vm.device.VirtualEthernetCard.OpaqueNetworkBackingInfo):
            net = str(b.opaqueNetworkId or "")
            name = names.get(net, "")
        c = d.connectable
        out.append(
            Nic(
                key=int(d.key),
                mac=str(d.macAddress or ""),
                network=net,
                network_name=name,
                connected=bool(c.connected) if c else False,
                start_connected=bool(c.startConnected) if c else False,
                adapter=nic_adapter(d),
                label=str(getattr(d.deviceInfo, "label", "") or "") if d.deviceInfo else "",
            )
        )
    return tuple(sorted(out, key=lambda n: n.key))


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(0, UTC)


def parse_snapshots(nodes: Iterable[Any] | None) -> tuple[Snapshot, ...]:
    return tuple(
        Snapshot(
            moref=moref(n.snapshot),
            name=str(n.name or ""),
            description=str(n.description or ""),
            create_time=_time(n.createTime),
            state=str(n.state or ""),
            quiesced=bool(n.quiesced),
            children=parse_snapshots(n.childSnapshotList),
        )
        for n in nodes or ()
    )


def parse_guest_nics(nics: Iterable[Any] | None) -> tuple[GuestNic, ...]:
    return tuple(
        GuestNic(
            mac=str(n.macAddress or ""),
            network=str(n.network or ""),
            ip_addresses=tuple(str(ip) for ip in n.ipAddress or ()),
            connected=bool(n.connected),
            device_key=int(n.deviceConfigId if n.deviceConfigId is not None else -1),
        )
        for n in nics or ()
    )


# --- the tree ---------------------------------------------------------------------------------


class _Tree:
    """Parent links and names read in one pass, to compute datacenters, paths and clusters."""

    def __init__(self, rows: Sequence[tuple[Any, Props]]) -> None:
        self.props: dict[str, Props] = {moref(o): p for o, p in rows}
        self.objs: dict[str, Any] = {moref(o): o for o, _ in rows}

    def parent(self, ref: str) -> str:
        return moref(self.props.get(ref, {}).get("parent"))

    def datacenter(self, ref: str) -> str:
        seen = 0
        while ref and seen < 64:
            if isinstance(self.objs.get(ref), vim.Datacenter):
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


def read_inventory(client: VSphereClient) -> Inventory:
    """The whole inventory of the server, in one RetrieveContents."""
    rows = collect(client, PATHS, what=f"read the inventory of {client.where}")
    tree = _Tree(rows)
    by_kind: dict[type, list[tuple[str, Props]]] = {}
    for obj, p in rows:
        kind = next(k for k in _ORDER if isinstance(obj, k))
        by_kind.setdefault(kind, []).append((moref(obj), p))

    dcs = tuple(
        Datacenter(
            ref, str(p.get("name", "")), moref(p.get("vmFolder")), moref(p.get("hostFolder"))
        )
        for ref, p in by_kind.get(vim.Datacenter, [])
    )
    vm_roots = {dc.vm_folder: dc.moref for dc in dcs}
    folders = []
    for ref, p in by_kind.get(vim.Folder, []):
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
            morefs(p.get("host")),
            moref(p.get("resourcePool")),
        )
        for ref, p in by_kind.get(vim.ClusterComputeResource, [])
    )
    cluster_refs = {c.moref for c in clusters}
    compute_pool = {
        ref: moref(p.get("resourcePool"))
        for kind in (vim.ComputeResource, vim.ClusterComputeResource)
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
            vm_count=len(p.get("vm") or ()),
            resource_pool=compute_pool.get(tree.parent(ref), ""),
            datastores=morefs(p.get("datastore")),
            networks=morefs(p.get("network")),
        )
        for ref, p in by_kind.get(vim.HostSystem, [])
    )
    pools = []
    for ref, p in by_kind.get(vim.ResourcePool, []):
        owner = moref(p.get("owner"))
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
            hosts=_union(
                (moref(m.key) for m in p.get("host") or ()),
                (h.moref for h in hosts if ref in h.datastores),
            ),
        )
        for ref, p in by_kind.get(vim.Datastore, [])
    )
    switches = {ref: p for ref, p in by_kind.get(vim.DistributedVirtualSwitch, [])}
    networks = tuple(
        _network(ref, p, kind, tree.datacenter(ref), switches, hosts)
        for kind in (vim.Network, vim.dvs.DistributedVirtualPortgroup)
        for ref, p in by_kind.get(kind, [])
    )
    names = {n.moref: n.name for n in networks}
    portgroups = {n.portgroup_key: n.moref for n in networks if n.portgroup_key}
    host_cluster = {h.moref: h.cluster for h in hosts}
    vms = tuple(
        _vm(ref, p, tree, vm_roots, host_cluster, names, portgroups)
        for ref, p in by_kind.get(vim.VirtualMachine, [])
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


# Most specific first: a cluster is a ComputeResource, a port group a Network.
_ORDER: tuple[type, ...] = (
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


def _union(*groups: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({x for g in groups for x in g if x}))


def _network(
    ref: str,
    p: Props,
    kind: type,
    datacenter: str,
    switches: Mapping[str, Props],
    known_hosts: Iterable[Host] = (),
) -> Network:
    """A network; its hosts are those it names and those that name it (the simulator keeps
    ``Network.host`` empty for standard port groups, and ``Datastore.host`` lists one host)."""
    name = str(p.get("name", ""))
    hosts = _union(morefs(p.get("host")), (h.moref for h in known_hosts if ref in h.networks))
    if kind is vim.dvs.DistributedVirtualPortgroup:
        switch = moref(p.get("config.distributedVirtualSwitch"))
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
    folder = moref(p.get("parent"))
    if tree is not None:
        datacenter = tree.datacenter(ref)
        root = next((f for f, d in vm_roots.items() if d == datacenter), "")
        folder_path = tree.path_below(folder, root)
    host = moref(p.get("runtime.host"))
    snap_info = p.get("snapshot")
    devices = p.get("config.hardware.device")
    return Vm(
        moref=ref,
        name=str(p.get("name", "")),
        uuid=str(p.get("config.uuid", "") or ""),
        instance_uuid=str(p.get("config.instanceUuid", "") or ""),
        datacenter=datacenter,
        host=host,
        cluster=host_cluster.get(host, ""),
        resource_pool=moref(p.get("resourcePool")),
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
        guest_nics=parse_guest_nics(p.get("guest.net")),
        snapshots=parse_snapshots(snap_info.rootSnapshotList if snap_info else None),
        current_snapshot=moref(snap_info.currentSnapshot) if snap_info else "",
        disks=parse_disks(devices),
        nics=parse_nics(devices, names, portgroups),
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
        p,
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
    rows = collect(
        client,
        {
            vim.Network: NETWORK_PATHS,
            vim.dvs.DistributedVirtualPortgroup: PORTGROUP_PATHS,
            vim.DistributedVirtualSwitch: ("name", "uuid"),
        },
        container=p.get("networkFolder"),
        what=f"read the networks of datacenter {dc}",
    )
    switches = {moref(o): props for o, props in rows if isinstance(o, vim.DistributedVirtualSwitch)}
    out = []
    for o, props in rows:
        if isinstance(o, vim.dvs.DistributedVirtualPortgroup):
            out.append(_network(moref(o), props, vim.dvs.DistributedVirtualPortgroup, dc, switches))
        elif isinstance(o, vim.Network):
            out.append(_network(moref(o), props, vim.Network, dc, switches))
    return tuple(out)
