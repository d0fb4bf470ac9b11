"""What runs and failovers do through core.vsphere: snapshots (only ours removed), CBT paging,
replica creation with placement and network checks, re-IP by guest customization, power."""

from __future__ import annotations

import pytest

from core.errors import (
    VSphereChangeTrackingError,
    VSphereCustomizationError,
    VSphereInvalidRequestError,
    VSphereNetworkNotFoundError,
    VSphereNotFoundError,
)
from core.vsphere import cbt, power, snapshots, tasks, vms
from core.vsphere.customization import Customization, NicIp, customize_vm
from core.vsphere.inventory import read_vm
from core.vsphere.models import Cluster, Datastore, Host, Network
from tests.core.vsphere.conftest import MIB, Site


def test_snapshots_only_ours_go(site: Site) -> None:
    c = site.client
    vm = site.inventory().vms_named("snap-vm")[0].moref
    other_vm = site.inventory().vms_named("db1")[0].moref
    admin = snapshots.create_snapshot(c, vm, "before patch", "the admin's own")
    ours = snapshots.create_snapshot(c, vm, "ReplicaDesk run 7", "ReplicaDesk: job J, run 7")
    twin = snapshots.create_snapshot(c, vm, "ReplicaDesk run 7", "same name, not ours")
    foreign = snapshots.create_snapshot(c, other_vm, "db1 point", "")
    tree = snapshots.list_snapshots(c, vm)
    assert [s.name for s in tree] == ["before patch"]
    chain = list(tree[0].walk())
    assert [s.moref for s in chain] == [admin, ours, twin]
    assert chain[1].description == "ReplicaDesk: job J, run 7" and chain[1].create_time.tzinfo
    assert snapshots.current_snapshot(c, vm) == twin
    assert read_vm(c, vm).current_snapshot == twin

    # Another VM's snapshot is refused by moref, and nothing is removed.
    with pytest.raises(VSphereNotFoundError, match=foreign):
        snapshots.remove_snapshot(c, vm, foreign)
    snapshots.remove_snapshot(c, vm, ours)
    left = [s for root in snapshots.list_snapshots(c, vm) for s in root.walk()]
    assert [(s.moref, s.name) for s in left] == [
        (admin, "before patch"),
        (twin, "ReplicaDesk run 7"),
    ]
    snapshots.revert_to_snapshot(c, vm, admin)
    assert snapshots.current_snapshot(c, vm) == admin
    for s in (twin, admin):
        snapshots.remove_snapshot(c, vm, s)
    snapshots.remove_snapshot(c, other_vm, foreign)
    assert snapshots.list_snapshots(c, vm) == ()


def test_changed_areas_page_and_cover_the_disk(site: Site) -> None:
    c, log = site.client, site.changelog
    vm = site.inventory().vms_named("cbt-vm")[0]
    key, cap = 2000, 32 * MIB
    first = [(i * MIB, 4096) for i in range(0, 30, 3)] + [(31 * MIB, MIB)]
    log.record(vm.moref, key, cap, first)
    snap1 = snapshots.create_snapshot(c, vm.moref, "run 1", "")
    full = cbt.changed_areas(c, vm.moref, snap1, key, "*")
    assert full.capacity == cap and full.calls > 1  # the simulator pages after 3 areas
    assert list(full.areas) == log.read(vm.moref, key).changed_areas("*")
    assert full.changed_bytes == 10 * 4096 + MIB
    id1 = full.change_id
    assert id1 == snapshots.snapshot_disks(c, snap1)[0].change_id
    assert id1 == log.read(vm.moref, key).change_id()

    second = [(5 * MIB, 8192), (5 * MIB + 4096, 8192), (20 * MIB, 512)]
    log.record(vm.moref, key, cap, second)
    snap2 = snapshots.create_snapshot(c, vm.moref, "run 2", "")
    log.record(vm.moref, key, cap, [(7 * MIB, 4096)])  # after the snapshot: not in run 2
    inc = cbt.changed_areas(c, vm.moref, snap2, key, id1)
    assert inc.areas == ((5 * MIB, 12288), (20 * MIB, 512)) and inc.change_id != id1
    # The second disk had no write: one answer covers it all.
    other = cbt.changed_areas(c, vm.moref, snap2, 2001, "*")
    assert (other.areas, other.calls) == ((), 1)

    stale = id1.split("/")[0].replace("5", "6", 1) + "/1"
    with pytest.raises(VSphereChangeTrackingError, match="no longer valid"):
        cbt.changed_areas(c, vm.moref, snap2, key, stale)
    for s in (snap2, snap1):
        snapshots.remove_snapshot(c, vm.moref, s)

    plain = site.inventory().vms_named("plain")[0].moref
    snap = snapshots.create_snapshot(c, plain, "no cbt", "")
    with pytest.raises(VSphereChangeTrackingError, match="off"):
        cbt.changed_areas(c, plain, snap, 2000, "*")
    snapshots.remove_snapshot(c, plain, snap)
    assert not cbt.change_tracking_enabled(c, plain)
    cbt.set_change_tracking(c, plain, True)
    assert cbt.change_tracking_enabled(c, plain) and read_vm(c, plain).disks[0].change_id
    cbt.set_change_tracking(c, plain, False)


def test_replica_on_the_least_loaded_host(site: Site) -> None:
    c = site.client
    inv = site.inventory()
    cluster = inv.named(Cluster, "DR Cluster")
    dr = inv.datacenter(cluster.datacenter)
    host = vms.least_loaded_host(c, cluster.moref)
    assert inv.host(host).name == "dr-2"  # dr-1 has 2 VMs, dr-3 one, dr-2 none
    ds = inv.named(Datastore, "dr-ds")
    name = "db1 [replica] #2 & +% é"
    vm = vms.create_vm(
        c,
        vms.NewVm(
            name=name,
            host=host,
            resource_pool=cluster.resource_pool,
            folder=dr.vm_folder,
            datastore=ds.moref,
            cpus=2,
            memory_mb=768,
            guest_id="otherLinux64Guest",
            disks=(vms.NewDisk(8 * MIB), vms.NewDisk(2 * MIB, thin=False)),
            nics=(
                vms.NewNic("DR Net"),
                vms.NewNic(inv.named(Network, "pg-dr").moref, adapter="e1000e"),
                vms.NewNic(None),
            ),
        ),
    )
    assert (vm.name, vm.host, vm.cluster, vm.cpus, vm.memory_mb) == (
        name,
        host,
        cluster.moref,
        2,
        768,
    )
    assert [(d.capacity, d.thin, d.datastore) for d in vm.disks] == [
        (8 * MIB, True, ds.moref),
        (2 * MIB, False, ds.moref),
    ]
    assert [(n.network_name, n.connected, n.adapter) for n in vm.nics] == [
        ("DR Net", True, "vmxnet3"),
        ("pg-dr", True, "e1000e"),
        (vm.nics[2].network_name, False, "vmxnet3"),
    ]
    folder = site.sim.datastore("dr-ds", "DR DC").path / name
    assert (folder / f"{name}.vmx").is_file() and (folder / f"{name}.vmdk").is_file()
    # The replica now counts on dr-2: dr-2 and dr-3 tie at one VM, the first by name wins.
    assert inv.host(vms.least_loaded_host(c, cluster.moref)).name == "dr-2"
    loads = {h.name: h.vm_count for h in vms.host_loads(c, cluster.moref)}
    assert loads == {"dr-1": 2, "dr-2": 1, "dr-3": 1}

    # Layout changes a later run may need.
    added = vms.add_disk(c, vm.moref, 3 * MIB)
    assert added.capacity == 3 * MIB and added.key not in {d.key for d in vm.disks}
    vms.resize_disk(c, vm.moref, added.key, 4 * MIB)
    assert read_vm(c, vm.moref).disk(added.key).capacity == 4 * MIB
    with pytest.raises(VSphereInvalidRequestError, match="cannot shrink"):
        vms.resize_disk(c, vm.moref, added.key, MIB)
    vms.set_nic_network(c, vm.moref, vm.nics[0].key, "pg-dr")
    vms.set_nic_network(c, vm.moref, vm.nics[1].key, None)
    nics = read_vm(c, vm.moref).nics
    assert (nics[0].network_name, nics[0].connected) == ("pg-dr", True)
    assert (nics[1].network_name, nics[1].connected) == ("pg-dr", False)

    # Unregister and register again (the files stay), rename, then delete it all.
    vms.unregister_vm(c, vm.moref)
    assert not site.inventory().vms_named(name)
    again = vms.register_vm(c, dr.vm_folder, vm.vmx_path, name, cluster.resource_pool, host)
    vms.rename_vm(c, again, name + " (failback)")
    assert read_vm(c, again).name == name + " (failback)"
    vms.destroy_vm(c, again)
    assert not folder.exists()


def test_unknown_network_is_refused_before_any_change(site: Site) -> None:
    c = site.client
    inv = site.inventory()
    cluster = inv.named(Cluster, "DR Cluster")
    host = inv.named(Host, "dr-3")
    before = (len(tasks.recent_tasks(c)), len(inv.vms), host.vm_count)
    with pytest.raises(VSphereNetworkNotFoundError) as err:
        vms.create_vm(
            c,
            vms.NewVm(
                name="never made",
                host=host.moref,
                resource_pool=cluster.resource_pool,
                folder=inv.datacenter(cluster.datacenter).vm_folder,
                datastore=inv.named(Datastore, "dr-ds").moref,
                disks=(vms.NewDisk(MIB),),
                nics=(vms.NewNic("DR Net"), vms.NewNic("Prod Net")),  # Prod Net: the other DC
            ),
        )
    text = str(err.value)
    assert "'Prod Net'" in text and "dr-3" in text and "'DR Net'" in text and "pg-dr" in text
    after = site.inventory()
    assert (len(tasks.recent_tasks(c)), len(after.vms), after.named(Host, "dr-3").vm_count) == (
        before
    )
    assert not after.vms_named("never made")
    vm = inv.vms_named("dr-load-3")[0]
    with pytest.raises(VSphereNetworkNotFoundError, match="no such net"):
        vms.set_nic_network(c, vm.moref, 4000, "no such net")


def test_reip_by_customization_and_power(site: Site) -> None:
    c = site.client
    vm = site.inventory().vms_named("guest-vm")[0].moref
    spec = Customization(
        os="linux",
        host_name="guest-vm-dr",
        domain="dr.example",
        nics=(
            NicIp("10.20.1.15", "255.255.255.0", ("10.20.1.1",), ("10.20.0.53",)),
            NicIp("10.30.1.15", "255.255.0.0"),
        ),
    )
    with pytest.raises(VSphereCustomizationError, match="2 NICs but the VM has 0"):
        customize_vm(c, site.inventory().vms_named("snap-vm")[0].moref, spec)
    with pytest.raises(VSphereCustomizationError, match="NIC 1"):
        customize_vm(c, vm, Customization("linux", "x", (NicIp("10.0.0.300", "255.0.0.0"),)))
    customize_vm(c, vm, spec)
    assert read_vm(c, vm).pending_customization
    power.power_on(c, vm)
    state = power.wait_for_guest_ips(c, vm, {"10.20.1.15", "10.30.1.15"}, timeout=30)
    assert state.power_state == "poweredOn" and state.host_name == "guest-vm-dr"
    with pytest.raises(VSphereCustomizationError, match="powered off"):
        customize_vm(c, vm, spec)
    result = power.shutdown_guest(c, vm, timeout=10)
    assert power.power_state(c, vm) == "poweredOff" and result.seconds < 10
    # Windows: a Sysprep identity is accepted as well.
    win = Customization(
        os="windows",
        host_name="GUESTVM",
        nics=(NicIp("10.20.1.16", "255.255.255.0", wins=("10.20.0.2",)), NicIp()),
    )
    customize_vm(c, vm, win)
    power.power_on(c, vm)
    power.wait_for_guest_ips(c, vm, {"10.20.1.16"}, timeout=30)
    power.power_off(c, vm)
    assert power.power_state(c, vm) == "poweredOff"
