"""Inventory through core.vsphere: a vCenter with a cluster, standalone hosts, standard and
distributed port groups and odd VM names; an ESXi host; one VM read on its own."""

from __future__ import annotations

from pathlib import Path

from core.lab.simulator import ESX_HOST, Simulator, SimulatorSpec
from core.vsphere.inventory import read_inventory, read_vm
from core.vsphere.models import Cluster, Datastore, Host, Network, Vm
from tests.core.vsphere.conftest import MIB, ODD, Site, connect


def test_vcenter_inventory(site: Site) -> None:
    inv = site.inventory()
    assert inv.about.is_vcenter and inv.about.api_type == "VirtualCenter"
    assert {d.name for d in inv.datacenters} == {"Prod DC", "DR DC"}
    prod = next(d for d in inv.datacenters if d.name == "Prod DC")
    paths = {f.path_text for f in inv.folders if f.datacenter == prod.moref}
    assert {"", "Apps", "Apps/Web & Co"} <= paths

    cluster = inv.named(Cluster, "Cluster A")
    assert {inv.host(h).name for h in cluster.hosts} == {"esx-c1", "esx-c2"}
    c1, sa = inv.named(Host, "esx-c1"), inv.named(Host, "esx-sa")
    assert c1.cluster == cluster.moref and c1.resource_pool == cluster.resource_pool
    assert sa.cluster == "" and sa.connected and sa.datacenter == prod.moref
    assert sa.vm_count == 4 and c1.vm_count == 1
    gold = next(p for p in inv.resource_pools if p.name == "Gold")
    assert gold.owner == cluster.moref and gold.path == ("Gold",)

    slow = inv.named(Datastore, "ds slow #2")
    assert [inv.host(h).name for h in slow.hosts] == ["esx-c1"]
    fast = inv.named(Datastore, "ds-fast", prod.moref)
    assert {inv.host(h).name for h in fast.hosts} == {"esx-c1", "esx-c2", "esx-sa"}
    assert Path(fast.url) == site.sim.datastore("ds-fast", "Prod DC").path
    assert fast.capacity >= fast.free > 0 and fast.accessible

    pg = inv.named(Network, "pg [db] & co")
    assert pg.kind == "distributed" and pg.switch == "DVS0" and pg.switch_uuid
    assert c1.moref in pg.hosts
    std = inv.named(Network, "Prod Net")
    assert std.kind == "standard" and std.switch == ""

    vm = inv.vms_named(ODD)[0]  # the odd name comes back exactly
    assert inv.vm(vm.moref) is vm
    assert vm.folder_path == ("Apps", "Web & Co") and inv.folder(vm.folder).name == "Web & Co"
    assert (vm.host, vm.cluster, vm.resource_pool) == (c1.moref, cluster.moref, gold.moref)
    assert (vm.cpus, vm.memory_mb, vm.power_state) == (2, 512, "poweredOn")
    assert vm.change_tracking and vm.uuid and vm.instance_uuid and vm.uuid != vm.instance_uuid
    assert vm.vmx_path == f"[ds-fast] {ODD}/{ODD}.vmx"
    assert [d.key for d in vm.disks] == [2000, 2001]
    d0, d1 = vm.disks
    assert (d0.capacity, d0.thin, d0.datastore) == (16 * MIB, True, fast.moref)
    assert (d1.capacity, d1.thin, d1.datastore) == (4 * MIB, False, slow.moref)
    assert d1.file_name == f"[ds slow #2] {ODD}/{ODD}.vmdk"
    assert (d0.controller_key, d0.unit_number, d1.unit_number) == (1000, 0, 1)
    assert d0.change_id.endswith("/0")
    assert [(n.key, n.network_name, n.network) for n in vm.nics] == [
        (4000, "pg-app", inv.named(Network, "pg-app").moref),
        (4001, "Prod Net", std.moref),
    ]
    assert all(n.connected and n.mac.startswith("00:0c:29") for n in vm.nics)
    assert vm.snapshots == () and vm.current_snapshot == ""
    plain = inv.vms_named("plain")[0]
    assert not plain.change_tracking and plain.disks[0].change_id == "" and plain.nics == ()


def test_read_vm_matches_the_inventory(site: Site) -> None:
    inv = site.inventory()
    for vm in inv.vms:
        if vm.datacenter == inv.datacenters[0].moref:
            assert read_vm(site.client, vm.moref) == vm


def test_esx_host(launcher: Path) -> None:
    spec = SimulatorSpec.esx(datastores=2, vms=2, networks=("DR Net",))
    with Simulator(spec, launcher=launcher) as sim, connect(sim) as client:
        inv = read_inventory(client)
        assert inv.about.api_type == "HostAgent" and not inv.about.is_vcenter
        assert [h.name for h in inv.hosts] == [ESX_HOST]
        assert inv.clusters == () and inv.hosts[0].cluster == ""
        assert {d.name for d in inv.datastores} == {"datastore1", "datastore2"}
        assert {n.name for n in inv.networks} == {"VM Network", "DR Net"}
        assert {v.name for v in inv.vms} == {"VM0", "VM1"}
        vm = inv.named(Vm, "VM0")
        assert vm.host == inv.hosts[0].moref and vm.folder_path == ()
        assert read_vm(client, vm.moref) == vm
