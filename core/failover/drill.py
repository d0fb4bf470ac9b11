"""Test failover: a copy of the replica brought up on an isolated network, replication untouched.

As SRM's test recovery does, the replica VM itself is not used: a test VM (``<replica>_test``) is
made beside it on the same host, with the replica's CPUs, memory and NICs, each NIC on a network
made for this test (an uplink-less vSwitch and port group, core.vsphere.networks: no route to
production); its disks are hosted-sparse children of the chosen restore point
(core.failover.running), so the replica's chains are only read. The replica stays Ready and its
job keeps replicating. Test cleanup powers the test VM off, deletes it with its disks and
removes the network: nothing the test did remains. The test record (core.failover.records)
says what to clean. A test should be cleaned up before retention merges its point away (the job
keeps that many runs' worth of points).
"""

from __future__ import annotations

from core.errors import FailoverError, ReplicaDeskError
from core.failover import records, running
from core.failover.operations import choose_point, locks
from core.failover.records import TestRecord
from core.failover.session import Operation, OperationResult, require_state
from core.failover.site import DrSite
from core.model.replicas import ReplicaState
from core.model.runs import RunTrigger
from core.store.store import Store
from core.vsphere import networks, power, vms
from core.vsphere.datastore import DatastorePath

TEST_SUFFIX = "_test"


def start_test_failover(store: Store, replica_id: int, point: int | None = None) -> OperationResult:
    """Bring a copy of the replica at `point` (default the latest) up on an isolated network."""
    replica = store.replicas.get(replica_id)
    require_state(
        replica, {ReplicaState.READY, ReplicaState.FAILOVER, ReplicaState.REIP_FAILED}, "test"
    )
    with Operation(store, replica, RunTrigger.TEST_FAILOVER, "Test failover") as op:
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
            switch = f"rd-test-{replica.id}"
            portgroup = f"ReplicaDesk test {replica.id} (isolated)"
            net = networks.add_isolated_network(site.client, vm.host, switch, portgroup)
            op.info(f"isolated network {portgroup!r} made on vSwitch {switch!r} (no uplink)")
            test_vm = ""
            try:
                datastore = site.datastore(DatastorePath.parse(vm.vmx_path).datastore)
                made = vms.create_vm(
                    site.client,
                    vms.NewVm(
                        name=name,
                        host=vm.host,
                        resource_pool=vm.resource_pool,
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
                records.save(
                    where,
                    records.TEST,
                    TestRecord(
                        replica.id,
                        chosen.number,
                        made.moref,
                        name,
                        vm.host,
                        net.switch,
                        net.portgroup,
                        net.network,
                        disks,
                    ),
                )
            except BaseException:
                if test_vm:
                    vms.destroy_vm(site.client, test_vm)
                networks.remove_isolated_network(site.client, net)
                op.info("the test VM and network were removed again")
                raise
            power.power_on(site.client, made.moref)
            op.info(
                f"test VM {name!r} runs restore point {chosen.number} on the isolated network; "
                "replication goes on; clean up the test when done"
            )
        return op.result()


def cleanup_test_failover(store: Store, replica_id: int) -> OperationResult:
    """Remove everything the test failover made."""
    replica = store.replicas.get(replica_id)
    with Operation(store, replica, RunTrigger.TEST_CLEANUP, "Test cleanup") as op:
        with (
            store.locks.hold(locks(replica), f"test cleanup of {replica.replica_name}"),
            DrSite.connect(store, replica) as site,
        ):
            vm = site.replica_vm()
            where = records.folder(site.local(site.vm_folder(vm)))
            record = records.load(where, records.TEST, TestRecord)
            if record is None:
                raise FailoverError(replica.replica_name, "no test failover is running")
            if site.inventory.has(record.test_vm):
                power.power_off(site.client, record.test_vm)
                vms.destroy_vm(site.client, record.test_vm)
                op.info(f"test VM {record.test_vm_name!r} and its disks were deleted")
            else:
                op.warn(f"test VM {record.test_vm_name!r} was already gone")
            try:
                networks.remove_isolated_network(
                    site.client,
                    networks.IsolatedNetwork(
                        record.host, record.switch, record.portgroup, record.network
                    ),
                )
                op.info(f"isolated network {record.portgroup!r} removed")
            except ReplicaDeskError as e:
                op.warn(f"the isolated network {record.portgroup!r} could not be removed: {e}")
            records.remove(where, records.TEST)
            records.remove_folder_if_empty(where)
        return op.result()
