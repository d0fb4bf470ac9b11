"""Guest customization for re-IP at failover: Linux and Windows, static or DHCP per NIC.

Failover turns the replica's re-IP result (core.model.reip) into a `Customization` and calls
`customize_vm` while the replica is still off; vSphere applies it at the next power-on, after
which failover reads the guest's addresses back (core.vsphere.power.wait_for_guest_ips). The
spec has one entry per NIC, in the VM's device order, and vSphere refuses a count that differs:
that is checked here first with a clear message. Windows gets a Sysprep identity (workgroup, no
domain join, no password set); Linux a LinuxPrep identity. (On the simulator the IP, DNS and
host name become visible in ``guest``; mask and gateway are stored but not shown, LAB.md.)
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Literal

from core.errors import VSphereCustomizationError
from core.vsphere._pyvmomi import vim
from core.vsphere.connection import VSphereClient
from core.vsphere.inventory import read_vm
from core.vsphere.tasks import wait


@dataclass(frozen=True)
class NicIp:
    """One NIC's addressing; `ip` None means DHCP."""

    ip: str | None = None
    mask: str = ""
    gateways: tuple[str, ...] = ()
    dns_servers: tuple[str, ...] = ()
    wins: tuple[str, ...] = ()  # Windows only: primary, secondary
    ipv6: tuple[tuple[str, int], ...] = ()  # (address, prefix length)
    ipv6_gateways: tuple[str, ...] = ()


@dataclass(frozen=True)
class Customization:
    os: Literal["linux", "windows"]
    host_name: str
    nics: tuple[NicIp, ...]
    domain: str = ""  # Linux domain / DNS suffix
    dns_servers: tuple[str, ...] = ()  # global (Linux; Windows takes them per NIC as well)
    dns_suffixes: tuple[str, ...] = ()
    time_zone: str = "Etc/UTC"  # Linux: tz name
    windows_time_zone: int = 85  # Windows: Microsoft index (85: GMT)
    full_name: str = "ReplicaDesk"  # Windows user data
    organization: str = "ReplicaDesk"
    workgroup: str = "WORKGROUP"


def _check(c: Customization, what: str) -> None:
    for i, nic in enumerate(c.nics):
        try:
            if nic.ip is not None:
                ipaddress.IPv4Address(nic.ip)
                ipaddress.IPv4Network(f"0.0.0.0/{nic.mask}")
            for addr in (*nic.gateways, *nic.dns_servers, *nic.wins):
                ipaddress.ip_address(addr)
            for addr6, prefix in nic.ipv6:
                ipaddress.IPv6Network(f"{addr6}/{prefix}", strict=False)
        except ValueError as e:
            raise VSphereCustomizationError(what, f"NIC {i + 1}: {e}") from e
    if not c.host_name or len(c.host_name) > 63:
        raise VSphereCustomizationError(what, f"host name {c.host_name!r} is empty or too long")


def _adapter(nic: NicIp, windows: bool) -> Any:
    ip = (
        vim.vm.customization.FixedIp(ipAddress=nic.ip)
        if nic.ip is not None
        else vim.vm.customization.DhcpIpGenerator()
    )
    settings = vim.vm.customization.IPSettings(
        ip=ip,
        subnetMask=nic.mask or None,
        gateway=list(nic.gateways),
        dnsServerList=list(nic.dns_servers),
    )
    if windows and nic.wins:
        settings.primaryWINS = nic.wins[0]
        if len(nic.wins) > 1:
            settings.secondaryWINS = nic.wins[1]
    if nic.ipv6:
        settings.ipV6Spec = vim.vm.customization.IPSettings.IpV6AddressSpec(
            ip=[vim.vm.customization.FixedIpV6(ipAddress=a, subnetMask=p) for a, p in nic.ipv6],
            gateway=list(nic.ipv6_gateways),
        )
    return vim.vm.customization.AdapterMapping(adapter=settings)


def build_spec(c: Customization) -> Any:
    """The vSphere CustomizationSpec for `c` (pyVmomi object; core.vsphere's own use)."""
    windows = c.os == "windows"
    name = vim.vm.customization.FixedName(name=c.host_name)
    identity: Any
    if windows:
        identity = vim.vm.customization.Sysprep(
            guiUnattended=vim.vm.customization.GuiUnattended(
                autoLogon=False, autoLogonCount=0, timeZone=c.windows_time_zone
            ),
            userData=vim.vm.customization.UserData(
                fullName=c.full_name, orgName=c.organization, computerName=name, productId=""
            ),
            identification=vim.vm.customization.Identification(joinWorkgroup=c.workgroup),
        )
    else:
        identity = vim.vm.customization.LinuxPrep(
            hostName=name, domain=c.domain or "localdomain", timeZone=c.time_zone, hwClockUTC=True
        )
    dns = list(c.dns_servers) or sorted({s for n in c.nics for s in n.dns_servers})
    return vim.vm.customization.Specification(
        identity=identity,
        globalIPSettings=vim.vm.customization.GlobalIPSettings(
            dnsServerList=dns, dnsSuffixList=list(c.dns_suffixes) or None
        ),
        nicSettingMap=[_adapter(n, windows) for n in c.nics],
    )


def customize_vm(
    client: VSphereClient, vm: str, customization: Customization, timeout: float = 600.0
) -> None:
    """Store the customization on the (powered-off) VM; it applies at the next power-on."""
    what = f"VM {vm}"
    _check(customization, what)
    current = read_vm(client, vm)
    if len(current.nics) != len(customization.nics):
        raise VSphereCustomizationError(
            what,
            f"the re-IP settings name {len(customization.nics)} NICs but the VM has "
            f"{len(current.nics)}",
        )
    if current.power_state != "poweredOff":
        raise VSphereCustomizationError(
            what, f"the VM is {current.power_state}; customize it while it is powered off"
        )
    spec = build_spec(customization)
    obj = client.obj("VirtualMachine", vm)
    wait(client, client.call(what, lambda: obj.CustomizeVM_Task(spec=spec)), what, timeout)
