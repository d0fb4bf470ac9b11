"""`replicadesk inventory`: the vSphere tree of the managed servers, as jobs refer to it.

Datacenters > clusters and standalone hosts > hosts > VMs with their disks and NICs, then the
datacenter's VM folders, resource pools, datastores and networks. Every object is shown with its
managed object ID (what a job stores) beside its name, and names are printed as vSphere gives
them: spaces, brackets, `#`, `&`, `+`, `%` and non-ASCII letters intact. One read per server
(`core.vsphere.inventory.read_inventory`); `--json` prints the same dataclasses as data.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from core.cli.context import db_arg, open_store, size
from core.cli.main import emit_json

if TYPE_CHECKING:
    from core.store.store import Store
    from core.vsphere.models import Datacenter, Host, Inventory, Vm

GROUPS = (
    "datacenters",
    "folders",
    "clusters",
    "hosts",
    "resource_pools",
    "datastores",
    "networks",
    "vms",
)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "inventory",
        help="the vSphere tree of the managed servers (with managed object IDs)",
        description="Read the inventory of one managed server (--server) or of all of them: "
        "datacenters, clusters, hosts, VMs with disks and NICs, folders, resource pools, "
        "datastores and networks, each with its managed object ID.",
    )
    p.add_argument("--server", help="only this managed server (its address)")
    p.add_argument("--json", action="store_true", help="print a list of inventories as JSON")
    db_arg(p)
    p.set_defaults(handler=cmd_inventory)


def read_server_inventory(store: Store, address: str) -> Inventory:
    """Log in to a stored server, read its whole inventory, log out."""
    from core.jobs.servers import connect_stored
    from core.vsphere.inventory import read_inventory

    with connect_stored(store, address, keepalive=False) as client:
        return read_inventory(client)


def inventory_doc(address: str, inv: Inventory) -> dict[str, Any]:
    doc: dict[str, Any] = {"server": address, "about": asdict(inv.about)}
    for group in GROUPS:
        doc[group] = [asdict(o) for o in getattr(inv, group)]
    return doc


def cmd_inventory(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.server is not None:
            addresses = [store.servers.get(args.server).address]
        else:
            addresses = [s.address for s in store.servers.list()]
        inventories = [(a, read_server_inventory(store, a)) for a in addresses]
    if args.json:
        emit_json([inventory_doc(a, inv) for a, inv in inventories])
        return 0
    if not inventories:
        print("no managed servers (`replicadesk server add` adds one)")
    for address, inv in inventories:
        print_inventory(address, inv)
    return 0


def q(name: str) -> str:
    """A name as shown: in double quotes, every character kept."""
    return f'"{name}"'


def print_inventory(address: str, inv: Inventory) -> None:
    kind = "vCenter" if inv.about.is_vcenter else "ESXi host"
    print(f"{kind} {address}  ({inv.about.full_name})")
    for dc in inv.datacenters:
        _print_datacenter(inv, dc)


def _print_datacenter(inv: Inventory, dc: Datacenter) -> None:
    print(f"  datacenter {q(dc.name)}  [{dc.moref}]")
    for cluster in (c for c in inv.clusters if c.datacenter == dc.moref):
        print(f"    cluster {q(cluster.name)}  [{cluster.moref}]  {len(cluster.hosts)} hosts")
        for host in (h for h in inv.hosts if h.cluster == cluster.moref):
            _print_host(inv, host, "      ")
    for host in (h for h in inv.hosts if h.datacenter == dc.moref and not h.cluster):
        _print_host(inv, host, "    ", standalone=True)
    folders = [f for f in inv.folders if f.datacenter == dc.moref and f.path]
    if folders:
        print("    VM folders")
        for f in sorted(folders, key=lambda f: f.path):
            print(f"      {q(f.path_text)}  [{f.moref}]")
    pools = [p for p in inv.resource_pools if p.datacenter == dc.moref]
    if pools:
        print("    resource pools")
        for p in sorted(pools, key=lambda p: (p.owner, p.path)):
            owner = _owner_name(inv, p.owner)
            shown = "/".join(p.path) if p.path else f"{p.name} (root)"
            print(f"      {q(shown)}  [{p.moref}]  of {q(owner)}")
    stores = [d for d in inv.datastores if d.datacenter == dc.moref]
    if stores:
        print("    datastores")
        for d in sorted(stores, key=lambda d: d.name):
            state = "" if d.accessible else "  INACCESSIBLE"
            print(
                f"      {q(d.name)}  [{d.moref}]  {d.type}, {size(d.free)} free of "
                f"{size(d.capacity)}, {len(d.hosts)} hosts{state}"
            )
    nets = [n for n in inv.networks if n.datacenter == dc.moref]
    if nets:
        print("    networks")
        for n in sorted(nets, key=lambda n: n.name):
            kind = f"distributed ({q(n.switch)})" if n.kind == "distributed" else n.kind
            print(f"      {q(n.name)}  [{n.moref}]  {kind}")


def _owner_name(inv: Inventory, moref: str) -> str:
    for group in (inv.clusters, inv.hosts):
        for obj in group:
            if obj.moref == moref:
                return obj.name
    # A standalone host's compute resource has the host's name; its pool names it.
    for host in inv.hosts:
        if host.resource_pool and any(
            p.moref == host.resource_pool and p.owner == moref for p in inv.resource_pools
        ):
            return host.name
    return moref


def _print_host(inv: Inventory, host: Host, indent: str, standalone: bool = False) -> None:
    where = "standalone, " if standalone else ""
    state = host.connection_state + (", maintenance" if host.in_maintenance else "")
    print(f"{indent}host {q(host.name)}  [{host.moref}]  {where}{state}, {host.vm_count} VMs")
    for vm in sorted((v for v in inv.vms if v.host == host.moref), key=lambda v: v.name):
        _print_vm(inv, vm, indent + "  ")


def _print_vm(inv: Inventory, vm: Vm, indent: str) -> None:
    folder = "/".join(vm.folder_path) or "(root)"
    extra = ", template" if vm.template else ""
    cbt = "CBT on" if vm.change_tracking else "CBT off"
    print(
        f"{indent}vm {q(vm.name)}  [{vm.moref}]  {vm.power_state}, {vm.cpus} CPU, "
        f"{vm.memory_mb} MiB, {cbt}, folder {q(folder)}{extra}"
    )
    for d in vm.disks:
        kind = "thin" if d.thin else "thick"
        print(f"{indent}  disk {d.key}  {size(d.capacity)} {kind}  {d.file_name}")
    for n in vm.nics:
        state = "connected" if n.connected else "disconnected"
        net = q(n.network_name) if n.network_name else "(no network)"
        print(f"{indent}  nic {n.key}  {n.adapter}  {net}  [{n.network}]  {state}")
    if vm.snapshots:
        print(f"{indent}  snapshots: {', '.join(q(s.name) for s in vm.all_snapshots())}")
