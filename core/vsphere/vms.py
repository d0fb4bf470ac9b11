"""Making and changing VMs on the target: the replica's life cycle in vSphere.

A first run creates the replica (`create_vm`) on the host placement chose (`least_loaded_host`:
in a cluster, the connected host with the fewest registered VMs), with the source's CPUs,
memory, disks (capacity, thin or thick) and NICs on the mapped networks. Every network is
checked to exist on that host before vSphere is asked anything, because a NIC on an unknown
network is refused by a real vCenter but crashes the lab's simulator and corrupts the VM's device
list (LAB.md). The other operations (register, unregister, destroy, rename, move a NIC, add or
grow a disk) are what failover, failback and the run's layout changes need. Disks are created
empty: their contents are the data movers' business (on the simulator CreateVM makes 0-byte
files, LAB.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import (
    VSphereInvalidRequestError,
    VSphereNetworkNotFoundError,
    VSpherePlacementError,
)
from core.vsphere._pyvmomi import vim
from core.vsphere.connection import VSphereClient
from core.vsphere.inventory import datacenter_of, networks_of_datacenter, read_vm
from core.vsphere.models import Disk, Network, Vm
from core.vsphere.props import moref, morefs, retrieve, retrieve_one
from core.vsphere.tasks import wait

TIMEOUT = 600.0
ADAPTERS: dict[str, Any] = {
    "vmxnet3": vim.vm.device.VirtualVmxnet3,
    "vmxnet2": vim.vm.device.VirtualVmxnet2,
    "e1000": vim.vm.device.VirtualE1000,
    "e1000e": vim.vm.device.VirtualE1000e,
}
SCSI_UNITS = [u for u in range(16) if u != 7]  # unit 7 is the controller itself


@dataclass(frozen=True)
class NewDisk:
    capacity: int  # bytes (rounded up to whole KiB)
    thin: bool = True
    datastore: str = ""  # moref; "" for the VM's datastore


@dataclass(frozen=True)
class NewNic:
    network: str | None  # moref or name of a network on the host; None: a disconnected NIC
    adapter: str = "vmxnet3"
    connected: bool = True


@dataclass(frozen=True)
class NewVm:
    name: str
    host: str  # moref
    resource_pool: str  # moref
    folder: str  # moref of the VM folder
    datastore: str  # moref: where the .vmx and (by default) the disks go
    cpus: int = 1
    memory_mb: int = 1024
    guest_id: str = "otherGuest64"
    disks: tuple[NewDisk, ...] = ()
    nics: tuple[NewNic, ...] = ()


@dataclass(frozen=True)
class HostLoad:
    moref: str
    name: str
    vm_count: int
    connected: bool


# --- placement and networks -------------------------------------------------------------------


def host_loads(client: VSphereClient, cluster: str) -> tuple[HostLoad, ...]:
    """Every host of a cluster with the number of VMs registered on it."""
    cl = retrieve_one(
        client, client.obj("ClusterComputeResource", cluster), ["host"], f"read cluster {cluster}"
    )
    hosts = list(cl.get("host") or ())
    paths = ["name", "vm", "runtime.connectionState", "runtime.inMaintenanceMode"]
    rows = retrieve(client, hosts, paths, f"read the hosts of cluster {cluster}")
    return tuple(
        HostLoad(
            moref=ref,
            name=str(p.get("name", "")),
            vm_count=len(p.get("vm") or ()),
            connected=p.get("runtime.connectionState") == "connected"
            and not p.get("runtime.inMaintenanceMode", False),
        )
        for ref, p in rows.items()
    )


def least_loaded_host(client: VSphereClient, cluster: str, for_what: str = "the VM") -> str:
    """The connected host of `cluster` (not in maintenance) with the fewest registered VMs;
    ties go to the first host by name, so placement is repeatable."""
    loads = host_loads(client, cluster)
    ready = sorted((h for h in loads if h.connected), key=lambda h: (h.vm_count, h.name))
    if not ready:
        states = ", ".join(f"{h.name}: not connected" for h in loads) or "it has no hosts"
        raise VSpherePlacementError(for_what, f"no connected host in cluster {cluster} ({states})")
    return ready[0].moref


def networks_on_host(client: VSphereClient, host: str) -> tuple[Network, ...]:
    """The networks a VM on `host` can use (standard and distributed port groups)."""
    obj = client.obj("HostSystem", host)
    hp = retrieve_one(client, obj, ["network"], f"read the networks of host {host}")
    attached = set(morefs(hp.get("network")))
    dc = datacenter_of(client, obj)
    if dc is None:
        return ()
    out = []
    for n in networks_of_datacenter(client, dc):
        # The simulator links standard port groups made after start to no host at all (neither
        # HostSystem.network nor Network.host); on vSphere such a network does not exist, so
        # taking it as present on every host of its datacenter is safe there and right here.
        orphan = n.kind == "standard" and not n.hosts
        if n.moref in attached or host in n.hosts or orphan:
            out.append(n)
    return tuple(out)


def resolve_network(available: Sequence[Network], wanted: str, host_name: str) -> Network:
    """The network `wanted` (a moref, else a name) among `available`; a clear error if absent."""
    for n in available:
        if n.moref == wanted:
            return n
    named = [n for n in available if n.name == wanted]
    if len(named) == 1:
        return named[0]
    names = ", ".join(sorted(repr(n.name) for n in available)) or "none"
    if len(named) > 1:
        raise VSphereNetworkNotFoundError(
            wanted, host_name, f"{names}; the name is ambiguous: use its moref"
        )
    raise VSphereNetworkNotFoundError(wanted, host_name, names)


def _host_name(client: VSphereClient, host: str) -> str:
    p = retrieve_one(client, client.obj("HostSystem", host), ["name"], f"read host {host}")
    return f"{p.get('name', '')} ({host})"


def _backing(client: VSphereClient, net: Network) -> Any:
    if net.kind == "distributed":
        port = vim.dvs.PortConnection(switchUuid=net.switch_uuid, portgroupKey=net.portgroup_key)
        return vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(port=port)
    return vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(
        deviceName=net.name, network=client.obj("Network", net.moref)
    )


def _connectable(connected: bool) -> Any:
    return vim.vm.device.VirtualDevice.ConnectInfo(
        connected=connected, startConnected=connected, allowGuestControl=True
    )


def _nic_plan(
    client: VSphereClient, host: str, nics: Sequence[NewNic]
) -> list[tuple[NewNic, Network]]:
    """Each NIC with its network on `host`, all validated before anything changes. A
    disconnected NIC still needs a backing: it gets the host's first network, not connected."""
    if not nics:
        return []
    available = networks_on_host(client, host)
    host_name = _host_name(client, host)
    plan = []
    for nic in nics:
        if nic.adapter not in ADAPTERS:
            raise VSphereInvalidRequestError(
                f"add a NIC on host {host_name}",
                f"unknown adapter {nic.adapter!r} (one of {', '.join(ADAPTERS)})",
            )
        if nic.network is not None:
            plan.append((nic, resolve_network(available, nic.network, host_name)))
            continue
        usable = sorted(
            (n for n in available if "DVUplinks" not in n.name),  # never the uplink group
            key=lambda n: (n.kind != "standard", n.name),
        )
        if not usable:
            raise VSphereNetworkNotFoundError("(any, for a disconnected NIC)", host_name, "none")
        plan.append((NewNic(usable[0].moref, nic.adapter, connected=False), usable[0]))
    return plan


# --- creating and removing VMs ----------------------------------------------------------------


def _datastore_name(client: VSphereClient, datastore: str) -> str:
    p = retrieve_one(
        client, client.obj("Datastore", datastore), ["name"], f"read datastore {datastore}"
    )
    if "name" not in p:
        raise VSphereInvalidRequestError(f"read datastore {datastore}", "it has no name")
    return str(p["name"])


def _disk_backing(client: VSphereClient, datastore: str, thin: bool) -> Any:
    name = _datastore_name(client, datastore)
    return vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
        fileName=f"[{name}]",
        diskMode="persistent",
        thinProvisioned=thin,
        eagerlyScrub=False,
        datastore=client.obj("Datastore", datastore),
    )


def _kib(capacity: int) -> int:
    if capacity <= 0:
        raise VSphereInvalidRequestError("size a disk", f"capacity {capacity} is not positive")
    return -(-capacity // 1024)


def create_vm(client: VSphereClient, spec: NewVm, timeout: float = TIMEOUT) -> Vm:
    """Create an empty VM as `spec` says and return it as read back from vSphere."""
    what = f"create VM {spec.name!r} on host {spec.host}"
    plan = _nic_plan(client, spec.host, spec.nics)  # refuses unknown networks before any change
    ds_name = _datastore_name(client, spec.datastore)
    if len(spec.disks) > len(SCSI_UNITS):
        raise VSphereInvalidRequestError(what, f"{len(spec.disks)} disks on one SCSI controller")
    changes = []
    controller_key = -100
    if spec.disks:
        changes.append(
            vim.vm.device.VirtualDeviceSpec(
                operation="add",
                device=vim.vm.device.ParaVirtualSCSIController(
                    key=controller_key, busNumber=0, sharedBus="noSharing"
                ),
            )
        )
    for i, d in enumerate(spec.disks):
        kib = _kib(d.capacity)
        disk = vim.vm.device.VirtualDisk(
            key=-200 - i,
            controllerKey=controller_key,
            unitNumber=SCSI_UNITS[i],
            capacityInKB=kib,
            capacityInBytes=kib * 1024,
            backing=_disk_backing(client, d.datastore or spec.datastore, d.thin),
        )
        changes.append(
            vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk)
        )
    for i, (nic, net) in enumerate(plan):
        card = ADAPTERS[nic.adapter](
            key=-300 - i,
            backing=_backing(client, net),
            connectable=_connectable(nic.connected),
            addressType="generated",
        )
        changes.append(vim.vm.device.VirtualDeviceSpec(operation="add", device=card))
    config = vim.vm.ConfigSpec(
        name=spec.name,
        guestId=spec.guest_id,
        numCPUs=spec.cpus,
        memoryMB=spec.memory_mb,
        files=vim.vm.FileInfo(vmPathName=f"[{ds_name}]"),
        deviceChange=changes,
    )
    folder = client.obj("Folder", spec.folder)
    pool = client.obj("ResourcePool", spec.resource_pool)
    host = client.obj("HostSystem", spec.host)
    task = client.call(what, lambda: folder.CreateVM_Task(config=config, pool=pool, host=host))
    return read_vm(client, moref(wait(client, task, what, timeout)))


def register_vm(
    client: VSphereClient,
    folder: str,
    vmx_path: str,
    name: str,
    resource_pool: str,
    host: str,
    timeout: float = TIMEOUT,
) -> str:
    """Register the VM whose configuration is at `vmx_path` ("[ds] dir/x.vmx"); its moref."""
    what = f"register {vmx_path!r} as VM {name!r}"
    f = client.obj("Folder", folder)
    task = client.call(
        what,
        lambda: f.RegisterVM_Task(
            path=vmx_path,
            name=name,
            asTemplate=False,
            pool=client.obj("ResourcePool", resource_pool),
            host=client.obj("HostSystem", host),
        ),
    )
    return moref(wait(client, task, what, timeout))


def unregister_vm(client: VSphereClient, vm: str) -> None:
    """Remove the VM from the inventory; its files stay on the datastore."""
    obj = client.obj("VirtualMachine", vm)
    client.call(f"unregister VM {vm}", obj.UnregisterVM)


def destroy_vm(client: VSphereClient, vm: str, timeout: float = TIMEOUT) -> None:
    """Delete the VM and its files (it must be powered off)."""
    obj = client.obj("VirtualMachine", vm)
    what = f"delete VM {vm} and its files"
    wait(client, client.call(what, obj.Destroy_Task), what, timeout)


def rename_vm(client: VSphereClient, vm: str, name: str, timeout: float = TIMEOUT) -> None:
    obj = client.obj("VirtualMachine", vm)
    what = f"rename VM {vm} to {name!r}"
    wait(client, client.call(what, lambda: obj.Rename_Task(newName=name)), what, timeout)


# --- changing devices -------------------------------------------------------------------------


def _devices(client: VSphereClient, vm: str) -> tuple[list[Any], str]:
    p = retrieve_one(
        client,
        client.obj("VirtualMachine", vm),
        ["config.hardware.device", "runtime.host"],
        f"read the devices of VM {vm}",
    )
    return list(p.get("config.hardware.device") or ()), moref(p.get("runtime.host"))


def _reconfigure(
    client: VSphereClient, vm: str, changes: list[Any], what: str, timeout: float
) -> None:
    obj = client.obj("VirtualMachine", vm)
    spec = vim.vm.ConfigSpec(deviceChange=changes)
    wait(client, client.call(what, lambda: obj.ReconfigVM_Task(spec=spec)), what, timeout)


def set_nic_network(
    client: VSphereClient,
    vm: str,
    nic_key: int,
    network: str | None,
    timeout: float = TIMEOUT,
) -> None:
    """Move NIC `nic_key` to `network` (moref or name, checked on the VM's host first) and
    connect it; None disconnects it and leaves its network as it is."""
    what = f"change NIC {nic_key} of VM {vm}"
    devices, host = _devices(client, vm)
    nic = next(
        (
            d
            for d in devices
            if isinstance(d, vim.vm.device.VirtualEthernetCard) and d.key == nic_key
        ),
        None,
    )
    if nic is None:
        raise VSphereInvalidRequestError(what, f"the VM has no NIC with device key {nic_key}")
    if network is not None:
        net = resolve_network(networks_on_host(client, host), network, _host_name(client, host))
        nic.backing = _backing(client, net)
    nic.connectable = _connectable(network is not None)
    _reconfigure(
        client, vm, [vim.vm.device.VirtualDeviceSpec(operation="edit", device=nic)], what, timeout
    )


def add_disk(
    client: VSphereClient,
    vm: str,
    capacity: int,
    thin: bool = True,
    datastore: str = "",
    timeout: float = TIMEOUT,
) -> Disk:
    """Add an empty disk on the VM's first SCSI controller with a free unit; the new disk."""
    what = f"add a disk to VM {vm}"
    devices, _ = _devices(client, vm)
    controllers = [d for d in devices if isinstance(d, vim.vm.device.VirtualSCSIController)]
    used = {(d.controllerKey, d.unitNumber) for d in devices if d.unitNumber is not None}
    slot = next(
        ((c.key, u) for c in controllers for u in SCSI_UNITS if (c.key, u) not in used), None
    )
    if slot is None:
        raise VSphereInvalidRequestError(what, "no SCSI controller of the VM has a free unit")
    if not datastore:
        datastore = _vm_datastore(client, vm)
    kib = _kib(capacity)
    disk = vim.vm.device.VirtualDisk(
        key=-1,
        controllerKey=slot[0],
        unitNumber=slot[1],
        capacityInKB=kib,
        capacityInBytes=kib * 1024,
        backing=_disk_backing(client, datastore, thin),
    )
    before = {d.key for d in devices}
    _reconfigure(
        client,
        vm,
        [vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk)],
        what,
        timeout,
    )
    new = [d for d in read_vm(client, vm).disks if d.key not in before]
    if len(new) != 1:
        raise VSphereInvalidRequestError(what, f"expected one new disk, found {len(new)}")
    return new[0]


def _vm_datastore(client: VSphereClient, vm: str) -> str:
    p = retrieve_one(client, client.obj("VirtualMachine", vm), ["datastore"], f"read VM {vm}")
    stores = morefs(p.get("datastore"))
    if not stores:
        raise VSphereInvalidRequestError(f"read VM {vm}", "it is on no datastore")
    return stores[0]


def resize_disk(
    client: VSphereClient, vm: str, disk_key: int, capacity: int, timeout: float = TIMEOUT
) -> None:
    """Grow disk `disk_key` to `capacity` bytes (vSphere cannot shrink a disk)."""
    what = f"grow disk {disk_key} of VM {vm}"
    devices, _ = _devices(client, vm)
    disk = next(
        (d for d in devices if isinstance(d, vim.vm.device.VirtualDisk) and d.key == disk_key),
        None,
    )
    if disk is None:
        raise VSphereInvalidRequestError(what, f"the VM has no disk with device key {disk_key}")
    kib = _kib(capacity)
    current = int(getattr(disk, "capacityInBytes", 0) or 0) or int(disk.capacityInKB) * 1024
    if kib * 1024 < current:
        raise VSphereInvalidRequestError(
            what, f"the disk has {current} bytes; vSphere cannot shrink it to {capacity}"
        )
    disk.capacityInKB = kib
    disk.capacityInBytes = kib * 1024
    _reconfigure(
        client, vm, [vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk)], what, timeout
    )
