"""Test failover: a copy of the replica brought up on an isolated network, replication untouched.

As SRM's test recovery does, the replica VM itself is not used: a test VM (``<replica>_test``) is
made beside it on the same host, with the replica's CPUs, memory and NICs, each NIC on a network
made for this test (an uplink-less vSwitch and port group, core.vsphere.networks: no route to
production), or on one a failover plan's test made for all its VMs (on that network's host, so they
reach each other; core.plans removes it after the last cleanup); its disks are hosted-sparse
children of the chosen restore point (core.failover.running), so the replica's chains are only
read. The replica stays Ready and its job keeps replicating. Test cleanup powers the test VM off,
deletes it with its disks and removes the network: nothing the test did remains. The test record
(core.failover.records) says what to clean. A test should be cleaned up before retention merges its
point away (the job keeps that many runs' worth of points).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from core.errors import FailoverError, ReplicaDeskError
from core.failover import records, recovery, running
from core.failover.operations import choose_point
from core.failover.records import TestRecord
from core.failover.session import Operation, OperationResult, Started, locks, require_state
from core.failover.site import DrSite
from core.jobs import servers
from core.model.replicas import ReplicaState
from core.model.runs import RunTrigger
from core.store.store import Store
from core.vsphere import networks, power, vms
from core.vsphere.datastore import DatastorePath
from core.vsphere.models import Vm

TEST_SUFFIX = "_test"


def isolated_names(replica_id: int) -> tuple[str, str]:
    """(vSwitch, port group) of the isolated network a test failover of one replica makes."""
    return f"rd-test-{replica_id}", f"ReplicaDesk test {replica_id} (isolated)"


def add_test_network(
    store: Store, server: str, host: str, switch: str, portgroup: str
) -> networks.IsolatedNetwork:
    """An isolated network on `host` of DR server `server` for several test VMs (a failover
    plan's test: its VMs reach each other and nothing else). Test VMs started on it run on
    that host, since an uplink-less vSwitch joins only the VMs of its own host."""
    with servers.connect_stored(store, server, keepalive=False) as client:
        return networks.add_isolated_network(client, host, switch, portgroup)


def remove_test_network(store: Store, server: str, net: networks.IsolatedNetwork) -> None:
    with servers.connect_stored(store, server, keepalive=False) as client:
        networks.remove_isolated_network(client, net)


def _placement(site: DrSite, vm: Vm, host: str) -> str:
    """The resource pool for the test VM on `host`: the replica's when the host is in the same
    cluster (or is the replica's), else the host's root pool; the replica's datastore must be
    mounted there."""
    target = site.inventory.host(host)
    datastore = site.datastore(DatastorePath.parse(vm.vmx_path).datastore)
    if target.datastores and datastore.moref not in target.datastores:
        raise FailoverError(
            site.replica.replica_name,
            f"host {target.name} of the shared test network does not mount datastore "
            f"{datastore.name}, where the replica's restore points are",
        )
    same_cluster = bool(target.cluster) and target.cluster == site.inventory.host(vm.host).cluster
    if host == vm.host or same_cluster:
        return vm.resource_pool
    return target.resource_pool


def start_test_failover(
    store: Store,
    replica_id: int,
    point: int | None = None,
    *,
    network: networks.IsolatedNetwork | None = None,
    on_started: Started | None = None,
) -> OperationResult:
    """Bring a copy of the replica at `point` (default the latest) up on an isolated network:
    one made for this test, or `network` (a shared one, which the cleanup leaves in place; the
    test VM then runs on that network's host). The result names the test VM and its network."""
    replica = recovery.recover(store, replica_id)
    require_state(
        replica, {ReplicaState.READY, ReplicaState.FAILOVER, ReplicaState.REIP_FAILED}, "test"
    )
    title = "Test failover"
    with Operation(store, replica, RunTrigger.TEST_FAILOVER, title, on_started) as op:
        with (
            store.locks.hold(locks(replica), f"test failover of {replica.replica_name}"),
            DrSite.connect(store, replica) as site,
        ):
            chosen = choose_point(store, replica, point)
            vm = site.replica_vm()
            where = records.folder(site.local(site.vm_folder(vm)))
            if records.load(where, records.TEST, TestRecord) is not None:
                raise FailoverError(
                    replica.replica_name, "a test failover is running: clean it up first"
                )
            name = replica.replica_name + TEST_SUFFIX
            if site.inventory.vms_named(name):
                raise FailoverError(replica.replica_name, f"a VM named {name!r} exists already")
            host = network.host if network is not None else vm.host
            pool = _placement(site, vm, host)
            switch, portgroup = (
                (network.switch, network.portgroup)
                if network is not None
                else isolated_names(replica.id)
            )
            # Written first: a crash from here on leaves it for the next operation to clean up.
            record = TestRecord(
                replica.id,
                chosen.number,
                "",
                name,
                host,
                switch,
                portgroup,
                network.network if network is not None else "",
                (),
                records.STARTED,
                op.session_id,
                network is not None,
            )
            records.save(where, records.TEST, record)
            if network is None:
                net = networks.add_isolated_network(site.client, host, switch, portgroup)
                op.info(f"isolated network {portgroup!r} made on vSwitch {switch!r} (no uplink)")
            else:
                net = network
                op.info(f"on the plan's isolated network {portgroup!r} (vSwitch {switch!r})")
            test_vm = ""
            try:
                datastore = site.datastore(DatastorePath.parse(vm.vmx_path).datastore)
                made = vms.create_vm(
                    site.client,
                    vms.NewVm(
                        name=name,
                        host=host,
                        resource_pool=pool,
                        folder=vm.folder,
                        datastore=datastore.moref,
                        cpus=vm.cpus,
                        memory_mb=vm.memory_mb,
                        guest_id=vm.guest_id or "otherGuest64",
                        disks=tuple(vms.NewDisk(d.capacity, d.thin) for d in vm.disks),
                        nics=tuple(
                            vms.NewNic(net.network, n.adapter or "vmxnet3") for n in vm.nics
                        ),
                    ),
                )
                test_vm = made.moref
                pairs = running.pair_disks(made, chosen, name)
                disks = running.attach(site, pairs, chosen.number, None)
                record = replace(
                    record, test_vm=made.moref, network=net.network, disks=disks, phase=records.DONE
                )
                records.save(where, records.TEST, record)
            except BaseException:
                if test_vm:
                    vms.destroy_vm(site.client, test_vm)
                if network is None:
                    networks.remove_isolated_network(site.client, net)
                records.remove(where, records.TEST)
                records.remove_folder_if_empty(where)
                op.info("the test VM and network were removed again")
                raise
            power.power_on(site.client, made.moref)
            op.info(
                f"test VM {name!r} runs restore point {chosen.number} on the isolated network; "
                "replication goes on; clean up the test when done"
            )
        return op.result(vm=made.moref, network=net)


def has_test(store: Store, replica_id: int) -> bool:
    """A test failover of the replica is there (its record says so) to clean up."""
    replica = store.replicas.get(replica_id)
    if replica.replica_moref is None:
        return False
    with DrSite.connect(store, replica) as site:
        where = records.folder(site.local(site.vm_folder(site.replica_vm())))
        return records.load(where, records.TEST, TestRecord) is not None


def cleanup_test_failover(
    store: Store, replica_id: int, *, on_started: Started | None = None
) -> OperationResult:
    """Remove everything the test failover made; a shared network (a plan test's) stays, and is
    named in the result for its owner to remove."""
    replica = recovery.recover(store, replica_id)
    with Operation(store, replica, RunTrigger.TEST_CLEANUP, "Test cleanup", on_started) as op:
        with (
            store.locks.hold(locks(replica), f"test cleanup of {replica.replica_name}"),
            DrSite.connect(store, replica) as site,
        ):
            vm = site.replica_vm()
            where = records.folder(site.local(site.vm_folder(vm)))
            record = records.load(where, records.TEST, TestRecord)
            if record is None:
                raise FailoverError(replica.replica_name, "no test failover is running")
            shared = clean_test(site, where, record, op)
        return op.result(network=shared)


def clean_test(
    site: DrSite, where: Path, record: TestRecord, op: Operation
) -> networks.IsolatedNetwork | None:
    """Delete the test VM and its own network, remove the record; the shared network (None when
    the test had its own) is returned, not removed."""
    test_vm = record.test_vm
    if not test_vm:  # a test that crashed before its VM was recorded: found by its name
        found = site.inventory.vms_named(record.test_vm_name)
        test_vm = found[0].moref if len(found) == 1 else ""
    if test_vm and site.inventory.has(test_vm):
        power.power_off(site.client, test_vm)
        vms.destroy_vm(site.client, test_vm)
        op.info(f"test VM {record.test_vm_name!r} and its disks were deleted")
    else:
        op.warn(f"test VM {record.test_vm_name!r} was already gone")
    net = networks.IsolatedNetwork(record.host, record.switch, record.portgroup, record.network)
    if record.shared:
        op.info(f"the shared isolated network {record.portgroup!r} stays for the other tests")
    else:
        try:
            networks.remove_isolated_network(site.client, net)
            op.info(f"isolated network {record.portgroup!r} removed")
        except ReplicaDeskError as e:
            op.warn(f"the isolated network {record.portgroup!r} could not be removed: {e}")
    records.remove(where, records.TEST)
    records.remove_folder_if_empty(where)
    return net if record.shared else None
