"""Isolated networks on a host: what a test failover brings its replicas up on.

A test failover must not reach production (SRM's "test network"): `add_isolated_network` makes a
standard vSwitch with no physical uplink on the host and a port group on it, so VMs connected to
it see only each other; `remove_isolated_network` removes both again (test cleanup). Names are
the caller's (one per test, so two tests never share a network). On the lab's simulator the port
group is one Network entity per datacenter, linked to no host (core.vsphere.vms treats such a
network as present on every host of its datacenter).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from core.errors import VSphereError, VSphereInvalidRequestError, VSphereNotFoundError
from core.vsphere._pyvmomi import vim
from core.vsphere.connection import VSphereClient
from core.vsphere.props import retrieve_one
from core.vsphere.vms import networks_on_host

MAX_NAME = 31  # vSphere's limit for a standard vSwitch name


@dataclass(frozen=True)
class IsolatedNetwork:
    host: str  # moref of the host carrying it
    switch: str  # the uplink-less standard vSwitch
    portgroup: str  # the port group (network) name VMs connect to
    network: str  # the network's moref


def _network_system(client: VSphereClient, host: str) -> object:
    p = retrieve_one(
        client, client.obj("HostSystem", host), ["configManager.networkSystem"], f"read {host}"
    )
    ns = p.get("configManager.networkSystem")
    if ns is None:
        raise VSphereInvalidRequestError(
            f"configure the networks of host {host}", "the host has no network system"
        )
    return ns


def add_isolated_network(
    client: VSphereClient, host: str, switch: str, portgroup: str
) -> IsolatedNetwork:
    """Make vSwitch `switch` (no uplinks) and port group `portgroup` on it on `host`."""
    if not switch or len(switch) > MAX_NAME:
        raise VSphereInvalidRequestError(
            f"add vSwitch {switch!r}", f"a vSwitch name has 1 to {MAX_NAME} characters"
        )
    ns = _network_system(client, host)
    what = f"add isolated network {portgroup!r} on host {host}"
    client.call(
        what,
        lambda: ns.AddVirtualSwitch(  # type: ignore[attr-defined]
            vswitchName=switch, spec=vim.host.VirtualSwitch.Specification(numPorts=128)
        ),
    )
    try:
        spec = vim.host.PortGroup.Specification(
            name=portgroup, vlanId=0, vswitchName=switch, policy=vim.host.NetworkPolicy()
        )
        client.call(what, lambda: ns.AddPortGroup(portgrp=spec))  # type: ignore[attr-defined]
    except VSphereError:
        client.call(
            f"remove vSwitch {switch!r}",
            lambda: ns.RemoveVirtualSwitch(vswitchName=switch),  # type: ignore[attr-defined]
        )
        raise
    found = [n for n in networks_on_host(client, host) if n.name == portgroup]
    if len(found) != 1:
        raise VSphereNotFoundError(what, f"network {portgroup!r} after adding it")
    return IsolatedNetwork(host, switch, portgroup, found[0].moref)


def remove_isolated_network(client: VSphereClient, net: IsolatedNetwork) -> None:
    """Remove the port group and its vSwitch; a part already gone is not an error."""
    ns = _network_system(client, net.host)
    with contextlib.suppress(VSphereNotFoundError):
        client.call(
            f"remove port group {net.portgroup!r} from host {net.host}",
            lambda: ns.RemovePortGroup(pgName=net.portgroup),  # type: ignore[attr-defined]
        )
    with contextlib.suppress(VSphereNotFoundError):
        client.call(
            f"remove vSwitch {net.switch!r} from host {net.host}",
            lambda: ns.RemoveVirtualSwitch(vswitchName=net.switch),  # type: ignore[attr-defined]
        )


def network_exists(client: VSphereClient, host: str, name: str) -> bool:
    """A network of this name is usable by VMs on `host`."""
    return any(n.name == name for n in networks_on_host(client, host))
