"""Re-IP at failover: the job's rules turned into a guest customization, then checked after boot.

The source VM's addresses, per NIC in device order, are those its vCenter last reported (VMware
Tools: ``guest.net``, matched to the NIC by device key, then MAC). Each address goes through the
job's rules (core.model.reip: first match wins); the result is a `Customization` for the
replica (Linux or Windows by its guest OS, the source's host name) stored with `customize_vm`
while the replica is off, which vSphere applies at power-on; after power-on the guest must
report every new address within the timeout (`wait_for_guest_ips`). Whatever goes wrong here (an
address no rule matches, a rule that gives an unusable address, unknown source addresses, the
guest not reporting the addresses in time) marks the VM Re-IP failed with the reason in the
session log; the failover itself goes on. When one address of a VM misses, nothing is applied to
that VM: a half re-IP'd guest is worse than one with its old addresses, which an administrator
can fix by hand.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import ReIpError, VSphereError
from core.model.reip import ReIpRule, reip
from core.vsphere.connection import VSphereClient
from core.vsphere.customization import Customization, NicIp, customize_vm
from core.vsphere.models import Vm
from core.vsphere.power import wait_for_guest_ips


@dataclass(frozen=True)
class ReIpPlan:
    customization: Customization | None  # None: nothing to apply
    expected: tuple[str, ...]  # the addresses the guest must report after power-on
    changes: tuple[str, ...]  # "NIC 1: 172.17.5.20 -> 192.168.5.20 (rule 0)", for the log
    problems: tuple[str, ...]  # non-empty: Re-IP failed

    @property
    def failed(self) -> bool:
        return bool(self.problems)


def nic_addresses(vm: Vm) -> list[tuple[str, ...]]:
    """The guest's addresses per NIC of `vm`, in device order."""
    return vm.addresses_per_nic()


def _host_name(vm_name: str, windows: bool) -> str:
    name = re.sub(r"[^A-Za-z0-9-]+", "-", vm_name).strip("-") or "replica"
    return name[: 15 if windows else 63].strip("-") or "replica"


def plan(
    rules: Sequence[ReIpRule],
    replica_vm: Vm,
    source: Vm | None,
    host_name: str = "",
    known: Sequence[tuple[str, ...]] | None = None,
) -> ReIpPlan | None:
    """The customization for the replica; None when the job has no re-IP rules.

    `source` is the source VM as its vCenter shows it now; when that is unreachable, `known`
    are its addresses per NIC as the last replication run saw them."""
    if not rules:
        return None
    if source is None and known is None:
        return ReIpPlan(
            None,
            (),
            (),
            (
                "the source VM's addresses are unknown (its vCenter cannot be reached): "
                "no re-IP was applied",
            ),
        )
    windows = replica_vm.guest_id.lower().startswith("win")
    per_nic = nic_addresses(source) if source is not None else list(known or ())
    if len(per_nic) != len(replica_vm.nics):
        return ReIpPlan(
            None,
            (),
            (),
            (f"the source VM has {len(per_nic)} NICs, the replica {len(replica_vm.nics)}",),
        )
    nics: list[NicIp] = []
    expected: list[str] = []
    changes: list[str] = []
    problems: list[str] = []
    for i, addresses in enumerate(per_nic):
        label = f"NIC {i + 1}"
        v4: list[NicIp] = []
        v6: list[tuple[str, int]] = []
        v6_gateways: list[str] = []
        for address in addresses:
            try:
                version = ipaddress.ip_address(address).version
                if version == 6 and ipaddress.ip_address(address).is_link_local:
                    continue  # fe80:: is made by the guest itself, never re-IP'd
                result = reip(rules, address)
            except (ReIpError, ValueError) as e:
                problems.append(f"{label}: {e}")
                continue
            if result is None:
                problems.append(f"{label}: no re-IP rule matches {address}")
                continue
            changes.append(
                f"{label}: {address} -> {result.address}/{result.prefix_length} "
                f"(rule {result.rule_index + 1})"
            )
            expected.append(result.address)
            gateways = (result.gateway,) if result.gateway else ()
            if version == 4:
                v4.append(
                    NicIp(
                        result.address,
                        result.netmask or "",
                        gateways,
                        result.dns,
                        result.wins if windows else (),
                    )
                )
            else:
                v6.append((result.address, result.prefix_length))
                v6_gateways.extend(gateways)
        if len(v4) > 1:
            problems.append(
                f"{label}: {len(v4)} IPv4 addresses; guest customization sets one per NIC"
            )
        if not v4 and not v6 and not addresses:
            changes.append(f"{label}: no address was reported by the source: left to DHCP")
        base = v4[0] if v4 else NicIp()
        nics.append(
            NicIp(
                base.ip,
                base.mask,
                base.gateways,
                base.dns_servers,
                base.wins,
                tuple(v6),
                tuple(v6_gateways),
            )
        )
    if problems:
        return ReIpPlan(None, (), tuple(changes), tuple(problems))
    customization = Customization(
        os="windows" if windows else "linux",
        host_name=host_name
        or _host_name(source.name if source is not None else replica_vm.name, windows),
        nics=tuple(nics),
    )
    return ReIpPlan(customization, tuple(expected), tuple(changes), ())


def apply(client: VSphereClient, vm: str, p: ReIpPlan) -> str:
    """Store the customization on the powered-off VM; "" or the reason it failed."""
    if p.customization is None:
        return ""
    try:
        customize_vm(client, vm, p.customization)
    except VSphereError as e:
        return f"the guest customization was refused: {e}"
    return ""


def verify(client: VSphereClient, vm: str, p: ReIpPlan, timeout: float) -> str:
    """After power-on: "" once the guest reports every new address, else the reason."""
    if p.customization is None or not p.expected:
        return ""
    try:
        wait_for_guest_ips(client, vm, p.expected, timeout)
    except VSphereError as e:
        return str(e)
    return ""
