"""A VM's disks, NICs, guest NICs and snapshots as core's dataclasses, from either reader.

`read_inventory` reads these from the PropertyCollector's XML answer (`core.vsphere.fastprops`),
`read_vm`, `core.vsphere.snapshots` and `core.vsphere.power` from pyVmomi's objects. Both
decodings sit side by side here, field by field, so they cannot drift apart unnoticed; the
inventory tests compare the two readers on the lab's simulator. Type tests follow pyVmomi's
class tree in both (a ``VirtualVmxnet3`` is a ``VirtualEthernetCard``), through its WSDL type
table for the XML side.

A NIC's network name needs the whole inventory, so a device list first becomes `Devices`
(disks, and NICs as their backings name them: `NicDevice`), and `resolve_nics` names them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from core.vsphere._pyvmomi import ParseISO8601, vim
from core.vsphere.fastprops import (
    XSI_TYPE,
    Element,
    fields,
    is_a,
    local,
    text,
    wsdl_class,
    xsi_type,
)
from core.vsphere.models import Disk, GuestNic, Nic, Snapshot
from core.vsphere.props import moref

_DISK = vim.vm.device.VirtualDisk
_ETHERNET = vim.vm.device.VirtualEthernetCard
_NETWORK_BACKING = vim.vm.device.VirtualEthernetCard.NetworkBackingInfo
_DVPORT_BACKING = vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo
_OPAQUE_BACKING = vim.vm.device.VirtualEthernetCard.OpaqueNetworkBackingInfo

BackingKind = Literal["network", "dvport", "opaque", ""]


@dataclass(frozen=True)
class NicDevice:
    """A virtual NIC before its network is named: `target` is the network moref ("network"),
    the distributed port group key ("dvport") or the opaque network ID ("opaque")."""

    key: int
    mac: str
    backing: BackingKind
    target: str
    device_name: str  # a standard backing's deviceName, the name when the network is unknown
    connected: bool
    start_connected: bool
    adapter: str
    label: str


@dataclass(frozen=True)
class Devices:
    """What the inventory keeps of ``config.hardware.device``, each sorted by device key."""

    disks: tuple[Disk, ...] = ()
    nics: tuple[NicDevice, ...] = ()


@dataclass(frozen=True)
class VmSnapshots:
    """``snapshot`` of a VM: the root snapshots with their children, and the current one."""

    roots: tuple[Snapshot, ...] = ()
    current: str = ""  # moref, "" when none


def _bool(value: str) -> bool:
    return value == "1" or value.lower() == "true"  # what pyVmomi accepts as true


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(0, UTC)


def nic_adapter(d: Any) -> str:
    return _adapter(type(d))


def _adapter(cls: type) -> str:
    name = cls.__name__.rsplit(".", 1)[-1]  # "vim.vm.device.VirtualVmxnet3" -> "VirtualVmxnet3"
    return name.removeprefix("Virtual").lower()


def resolve_nics(
    nics: Iterable[NicDevice], names: Mapping[str, str], portgroups: Mapping[str, str]
) -> tuple[Nic, ...]:
    """`names`: network moref -> name; `portgroups`: DV port group key -> moref."""
    out = []
    for d in nics:
        net, name = "", ""
        if d.backing == "network":
            net = d.target
            name = names.get(net, d.device_name)
        elif d.backing == "dvport":
            net = portgroups.get(d.target, d.target)
            name = names.get(net, "")
        elif d.backing == "opaque":
            net = d.target
            name = names.get(net, "")
        out.append(
            Nic(
                key=d.key,
                mac=d.mac,
                network=net,
                network_name=name,
                connected=d.connected,
                start_connected=d.start_connected,
                adapter=d.adapter,
                label=d.label,
            )
        )
    return tuple(sorted(out, key=lambda n: n.key))


# --- from pyVmomi's objects -------------------------------------------------------------------


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
        sorted((parse_disk(d) for d in devices or () if isinstance(d, _DISK)), key=lambda d: d.key)
    )


def nic_devices(devices: Iterable[Any] | None) -> tuple[NicDevice, ...]:
    out = []
    for d in devices or ():
        if not isinstance(d, _ETHERNET):
            continue
        b = d.backing
        kind: BackingKind = ""
        target, device_name = "", ""
        if isinstance(b, _NETWORK_BACKING):
            kind = "network"
            target = moref(b.network)
            device_name = str(b.deviceName or "")
        elif isinstance(b, _DVPORT_BACKING):
            kind = "dvport"
            target = str(b.port.portgroupKey or "") if b.port else ""
        elif isinstance(b, _OPAQUE_BACKING):
            kind = "opaque"
            target = str(b.opaqueNetworkId or "")
        c = d.connectable
        out.append(
            NicDevice(
                key=int(d.key),
                mac=str(d.macAddress or ""),
                backing=kind,
                target=target,
                device_name=device_name,
                connected=bool(c.connected) if c else False,
                start_connected=bool(c.startConnected) if c else False,
                adapter=nic_adapter(d),
                label=str(getattr(d.deviceInfo, "label", "") or "") if d.deviceInfo else "",
            )
        )
    return tuple(sorted(out, key=lambda n: n.key))


def parse_nics(
    devices: Iterable[Any] | None,
    names: Mapping[str, str],
    portgroups: Mapping[str, str],
) -> tuple[Nic, ...]:
    """NICs of a device list; `names`: network moref -> name; `portgroups`: DV port group key
    -> moref."""
    return resolve_nics(nic_devices(devices), names, portgroups)


def devices(devices: Iterable[Any] | None) -> Devices:
    listed = list(devices or ())
    return Devices(parse_disks(listed), nic_devices(listed))


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


def snapshots(info: Any) -> VmSnapshots:
    if info is None:
        return VmSnapshots()
    return VmSnapshots(parse_snapshots(info.rootSnapshotList), moref(info.currentSnapshot))


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


# --- from the XML answer (ArrayOfVirtualDevice, ArrayOfGuestNicInfo, VirtualMachineSnapshotInfo)


def _label(f: Mapping[str, Element]) -> str:
    info = f.get("deviceInfo")
    return text(fields(info), "label") if info is not None else ""


def _int(f: Mapping[str, Element], name: str, default: int) -> int:
    value = text(f, name)
    return int(value) if value else default


def _disk_xml(d: Element) -> Disk:
    f = fields(d)
    backing = f.get("backing")
    b = fields(backing) if backing is not None else {}
    return Disk(
        key=int(text(f, "key")),
        controller_key=_int(f, "controllerKey", 0),
        unit_number=_int(f, "unitNumber", -1),
        capacity=_int(f, "capacityInBytes", 0) or _int(f, "capacityInKB", 0) * 1024,
        file_name=text(b, "fileName"),
        thin=_bool(text(b, "thinProvisioned")),
        datastore=text(b, "datastore"),
        change_id=text(b, "changeId"),
        disk_mode=text(b, "diskMode"),
        label=_label(f),
    )


def _nic_xml(d: Element, kind_name: str) -> NicDevice:
    f = fields(d)
    backing = f.get("backing")
    b = fields(backing) if backing is not None else {}
    btype = xsi_type(backing) if backing is not None else ""
    kind: BackingKind = ""
    target, device_name = "", ""
    if is_a(btype, _NETWORK_BACKING):
        kind = "network"
        target = text(b, "network")
        device_name = text(b, "deviceName")
    elif is_a(btype, _DVPORT_BACKING):
        kind = "dvport"
        port = b.get("port")
        target = text(fields(port), "portgroupKey") if port is not None else ""
    elif is_a(btype, _OPAQUE_BACKING):
        kind = "opaque"
        target = text(b, "opaqueNetworkId")
    connectable = f.get("connectable")
    c = fields(connectable) if connectable is not None else {}
    cls = wsdl_class(kind_name)
    return NicDevice(
        key=int(text(f, "key")),
        mac=text(f, "macAddress"),
        backing=kind,
        target=target,
        device_name=device_name,
        connected=_bool(text(c, "connected")),
        start_connected=_bool(text(c, "startConnected")),
        adapter=_adapter(cls) if cls is not None else "",
        label=_label(f),
    )


@functools.cache
def _device_role(xsi: str) -> str:
    """ "disk", "nic" or "" for a device's raw xsi:type (cached: a vCenter uses a few dozen)."""
    kind = local(xsi)
    return "disk" if is_a(kind, _DISK) else "nic" if is_a(kind, _ETHERNET) else ""


def devices_xml(el: Element) -> Devices:
    """An ``ArrayOfVirtualDevice``: only disks and NICs are read, the rest skipped unopened
    (a VM has a dozen devices, most of them controllers, keyboard, video card...)."""
    disks, nics = [], []
    for d in el:
        role = _device_role(d.get(XSI_TYPE) or "")
        if role == "disk":
            disks.append(_disk_xml(d))
        elif role == "nic":
            nics.append(_nic_xml(d, xsi_type(d)))
    return Devices(
        tuple(sorted(disks, key=lambda d: d.key)), tuple(sorted(nics, key=lambda n: n.key))
    )


def guest_nics_xml(el: Element) -> tuple[GuestNic, ...]:
    """An ``ArrayOfGuestNicInfo``."""
    out = []
    for n in el:
        f = fields(n)
        out.append(
            GuestNic(
                mac=text(f, "macAddress"),
                network=text(f, "network"),
                ip_addresses=tuple(c.text or "" for c in n if c.tag.endswith("}ipAddress")),
                connected=_bool(text(f, "connected")),
                device_key=_int(f, "deviceConfigId", -1),
            )
        )
    return tuple(out)


def _snapshot_xml(n: Element) -> Snapshot:
    f = fields(n)
    created = text(f, "createTime")
    return Snapshot(
        moref=text(f, "snapshot"),
        name=text(f, "name"),
        description=text(f, "description"),
        create_time=_time(ParseISO8601(created) if created else None),
        state=text(f, "state"),
        quiesced=_bool(text(f, "quiesced")),
        children=tuple(_snapshot_xml(c) for c in n if c.tag.endswith("}childSnapshotList")),
    )


def snapshots_xml(el: Element) -> VmSnapshots:
    """A ``VirtualMachineSnapshotInfo``."""
    return VmSnapshots(
        tuple(_snapshot_xml(c) for c in el if c.tag.endswith("}rootSnapshotList")),
        text(fields(el), "currentSnapshot"),
    )
