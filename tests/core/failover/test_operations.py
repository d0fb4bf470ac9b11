"""Permanent, planned and test failover, failback with commit and undo, re-IP and the network
mapping at failover, against the real lab."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from core.errors import FailbackError, FailoverNetworkError, ReplicaStateError
from core.failover.drill import cleanup_test_failover, start_test_failover
from core.failover.failback import (
    NewLocation,
    Restored,
    commit_failback,
    failback,
    undo_failback,
)
from core.failover.operations import failover, permanent_failover, planned_failover, undo_failover
from core.failover.reip import plan as plan_reip
from core.lab.content import flat_name
from core.lab.lab import LabState, datastore_file
from core.lab.register import inventories, lab_job
from core.model.network import NetworkMap, NetworkMapping
from core.model.reip import ReIpRule
from core.model.replicas import ReplicaState
from core.model.runs import RunStatus
from core.store.store import Store
from core.vsphere import power
from core.vsphere._pyvmomi import vim
from core.vsphere.connection import VSphereClient
from core.vsphere.customization import Customization, NicIp, build_spec, customize_vm
from core.vsphere.props import retrieve_one
from tests.conftest import assert_identical, qemu_compare
from tests.core.failover.conftest import (
    dr_local,
    folder_hashes,
    lose_and_restore_elsewhere,
    ok,
    prod_client,
    replica_folder,
    replicate,
    the_replica,
)
from tests.core.jobs.test_runner import check_points, churn_vm, source_copies, vm


def running(lab: LabState, moref: str) -> list[Path]:
    _, dr = inventories(lab)
    return [dr_local(dr, d.file_name) for d in sorted(dr.vm(moref).disks, key=lambda d: d.key)]


def source_flats(lab: LabState, name: str) -> list[Path]:
    prod, _ = inventories(lab)
    v = vm(prod, name)
    return [flat_name(datastore_file(prod, d.datastore, d.file_name)) for d in v.disks]


def dr_client(lab: LabState) -> VSphereClient:
    d = lab.dr
    return VSphereClient.connect(d.address, d.port, lab.user, lab.password, protocol="http")


def test_permanent_failover(lab: LabState, store: Store, tmp_path: Path) -> None:
    names = ["db #2 & replica", "mail-01"]
    copies = source_copies(lab, names, tmp_path / "c")
    job = replicate(store, lab, "Permanent", names)
    r = the_replica(store, job.name, names[0])
    with pytest.raises(ReplicaStateError, match="state Ready"):
        permanent_failover(store, r.id)
    failover(store, r.id)
    result = permanent_failover(store, r.id)
    assert result.replica.state == ReplicaState.PERMANENT_FAILOVER
    assert store.replicas.points(r.id) == []
    assert r.id not in {x.id for x in store.replicas.list(job.name)}
    _, dr = inventories(lab)
    replica_vm = dr.vm(r.replica_moref or "")
    assert replica_vm.power_state == "poweredOn" and not replica_vm.snapshots
    prod, _ = inventories(lab)
    for path, d in zip(running(lab, replica_vm.moref), vm(prod, names[0]).disks, strict=True):
        assert_identical(path, copies[(names[0], d.key)])
    assert [o.name for o in store.jobs.get(job.name).source.objects] == [names[1]]
    with pytest.raises(ReplicaStateError, match="production now"):
        undo_failover(store, r.id)
    ok(store, job.name)  # the job goes on with the other VM


def test_planned_failover_loses_nothing(lab: LabState, store: Store) -> None:
    name = "50% batch"
    job = replicate(store, lab, "Planned", [name])
    r = the_replica(store, job.name, name)
    churn_vm(lab, name, 3 << 20, seed=31)  # guest writes before the shutdown
    result = planned_failover(store, r.id, shutdown_timeout=10)
    assert result.replica.state == ReplicaState.FAILOVER
    assert [p.number for p in store.replicas.points(r.id)] == [1, 2, 3]
    prod, dr = inventories(lab)
    assert vm(prod, name).power_state == "poweredOff"
    assert dr.vm(r.replica_moref or "").power_state == "poweredOn"
    disks = running(lab, r.replica_moref or "")
    for path, flat in zip(disks, source_flats(lab, name), strict=True):
        assert_identical(path, flat)
    undo_failover(store, r.id)
    with prod_client(lab) as c:
        power.power_on(c, vm(prod, name).moref)


def test_failback_to_the_original_commit_and_undo(lab: LabState, store: Store) -> None:
    name = "Zürich fileserver [fs]"
    job = replicate(store, lab, "Failback", [name])
    r = the_replica(store, job.name, name)
    folder = replica_folder(lab, store, r)
    before = folder_hashes(folder)
    failover(store, r.id)
    disks = running(lab, r.replica_moref or "")
    # The guest of the running replica writes 2 MiB (at 1 MiB) into its first disk.
    subprocess.run(
        ["qemu-io", "-f", "vmdk", "-c", "write -P 0x5a 1M 2M", str(disks[0])],
        check=True,
        capture_output=True,
    )
    result = failback(store, r.id, shutdown_timeout=5)
    assert result.replica.state == ReplicaState.FAILBACK
    session = store.sessions.get(result.session_id)
    assert session.stats.transferred_bytes == 2 << 20  # only the changed blocks travelled
    for path, flat in zip(disks, source_flats(lab, name), strict=True):
        proc = qemu_compare(path, flat)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    prod, dr = inventories(lab)
    assert vm(prod, name).power_state == "poweredOn"
    assert dr.vm(r.replica_moref or "").power_state == "poweredOff"

    undo = undo_failback(store, r.id)
    assert undo.replica.state == ReplicaState.FAILOVER
    prod, dr = inventories(lab)
    assert vm(prod, name).power_state == "poweredOff"
    assert dr.vm(r.replica_moref or "").power_state == "poweredOn"
    again = failback(store, r.id, shutdown_timeout=5)
    assert store.sessions.get(again.session_id).stats.transferred_bytes == 0

    commit = commit_failback(store, r.id)
    assert commit.replica.state == ReplicaState.READY
    assert folder_hashes(folder) == before
    flats = source_flats(lab, name)
    copies = {(name, d.key): f for d, f in zip(vm(prod, name).disks, flats, strict=True)}
    sid = ok(store, job.name)  # change tracking was reset: the run compares digests
    log = "\n".join(e.message for t in store.sessions.tasks(sid) for e in t.log)
    assert "comparing digests" in log or ": digests" in log
    check_points(lab, store, job.name, copies)


def test_test_failover_while_replication_goes_on(
    lab: LabState, store: Store, tmp_path: Path
) -> None:
    name = "web-01"
    copies = source_copies(lab, [name], tmp_path / "c")
    job = replicate(store, lab, "Drill", [name])
    r = the_replica(store, job.name, name)
    _, dr = inventories(lab)
    networks_before = sorted(n.name for n in dr.networks)
    vms_before = sorted(v.name for v in dr.vms)
    result = start_test_failover(store, r.id)
    assert result.replica.state == ReplicaState.READY
    _, dr = inventories(lab)
    (test_vm,) = dr.vms_named(r.replica_name + "_test")
    assert test_vm.power_state == "poweredOn"
    assert {n.network_name for n in test_vm.nics} == {f"ReplicaDesk test {r.id} (isolated)"}
    prod, _ = inventories(lab)
    for path, d in zip(running(lab, test_vm.moref), vm(prod, name).disks, strict=True):
        assert_identical(path, copies[(name, d.key)])
    churn_vm(lab, name, 1 << 20, seed=41)
    ok(store, job.name)  # replication goes on beside the test
    folder = replica_folder(lab, store, r)
    after_run = folder_hashes(folder)
    assert "replicadesk/test-failover.json" in after_run  # the test's record, beside the replica
    del after_run["replicadesk/test-failover.json"]
    cleanup_test_failover(store, r.id)
    _, dr = inventories(lab)
    assert sorted(n.name for n in dr.networks) == networks_before
    assert sorted(v.name for v in dr.vms) == vms_before
    assert folder_hashes(folder) == after_run
    assert not (folder / "replicadesk").exists()
    assert not dr_local(dr, test_vm.vmx_path).parent.exists()
    assert [p.number for p in store.replicas.points(r.id)] == [1, 2]


def give_addresses(lab: LabState, name: str, ips: list[tuple[str, str]]) -> None:
    """The source VM's guest reports these addresses (NIC by NIC) from now on."""
    prod, _ = inventories(lab)
    moref = vm(prod, name).moref
    with prod_client(lab) as c:
        power.power_off(c, moref)
        customize_vm(c, moref, Customization("linux", "src", tuple(NicIp(a, m) for a, m in ips)))
        power.power_on(c, moref)
        power.wait_for_guest_ips(c, moref, [a for a, _ in ips], timeout=30)


def test_reip_linux_rules_and_a_miss(lab: LabState, store: Store) -> None:
    give_addresses(
        lab, "app+cache", [("172.17.5.20", "255.255.0.0"), ("10.1.2.3", "255.255.255.0")]
    )
    give_addresses(lab, "db [primary]", [("192.0.2.10", "255.255.255.0")])
    rules = (
        ReIpRule(
            "172.17.*.*",
            "192.168.*.*",
            source_mask="255.255.0.0",
            target_mask="255.255.0.0",
            gateway="192.168.0.1",
            dns=("192.168.0.53",),
        ),
        ReIpRule("10.1.2.0/24", "10.201.2.0/24", gateway="10.201.2.1"),
    )
    job = replace(lab_job(lab, "Re-IP", ["app+cache", "db [primary]"]), reip=rules)
    store.jobs.add(job)
    ok(store, job.name)
    good = the_replica(store, job.name, "app+cache")
    result = failover(store, good.id, reip_timeout=30)
    assert result.status == RunStatus.SUCCESS and result.replica.state == ReplicaState.FAILOVER
    _, dr = inventories(lab)
    ips = set(dr.vm(good.replica_moref or "").guest_ips)
    assert {"192.168.5.20", "10.201.2.3"} <= ips
    log = [e.message for t in store.sessions.tasks(result.session_id) for e in t.log]
    assert any("re-IP verified" in m for m in log)

    miss = the_replica(store, job.name, "db [primary]")
    result = failover(store, miss.id, reip_timeout=30)
    assert result.status == RunStatus.WARNING
    assert result.replica.state == ReplicaState.REIP_FAILED
    assert any("no re-IP rule matches 192.0.2.10" in w for w in result.warnings)
    _, dr = inventories(lab)
    assert dr.vm(miss.replica_moref or "").power_state == "poweredOn"  # the failover stands
    undo_failover(store, miss.id)
    undo_failover(store, good.id)
    assert store.replicas.get(miss.id).state == ReplicaState.READY


def test_missing_target_network_stops_before_power_on(lab: LabState, store: Store) -> None:
    name = "dc02"
    job = replicate(store, lab, "Networks", [name])
    r = the_replica(store, job.name, name)
    folder = replica_folder(lab, store, r)
    before = folder_hashes(folder)
    gone = NetworkMap((NetworkMapping("Prod App", "DR App (gone)"),))
    store.jobs.update(replace(job, network=gone))
    with pytest.raises(FailoverNetworkError, match="'DR App \\(gone\\)', which no longer exists"):
        failover(store, r.id)
    assert store.replicas.get(r.id).state == ReplicaState.READY
    _, dr = inventories(lab)
    assert dr.vm(r.replica_moref or "").power_state == "poweredOff"
    assert folder_hashes(folder) == before
    (session,) = [s for s in store.sessions.list(job.name) if s.trigger == "failover"]
    assert session.status == RunStatus.FAILED


def test_failback_to_a_new_vm_then_commit(lab: LabState, store: Store) -> None:
    name = "web-03 [dmz]"
    job = replicate(store, lab, "Failback new", [name])
    r = the_replica(store, job.name, name)
    failover(store, r.id)
    prod, _ = inventories(lab)
    source = vm(prod, name)
    where = NewLocation(f"{name} restored", source.host, source.disks[0].datastore)
    result = failback(store, r.id, to=where, shutdown_timeout=5)
    assert result.replica.state == ReplicaState.FAILBACK
    prod, _ = inventories(lab)
    new = vm(prod, where.name)
    assert new.power_state == "poweredOn"
    for path, d in zip(running(lab, r.replica_moref or ""), new.disks, strict=True):
        flat = flat_name(datastore_file(prod, d.datastore, d.file_name))
        proc = qemu_compare(path, flat)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    commit_failback(store, r.id)
    assert [o.moref for o in store.jobs.get(job.name).source.objects] == [new.moref]
    ok(store, job.name)  # the new VM is replicated from now on


def test_failback_to_the_original_restored_in_another_place(
    lab: LabState, store: Store, tmp_path: Path
) -> None:
    name = "app-02"
    job = replicate(store, lab, "Failback restored", [name])
    backup = source_copies(lab, [name], tmp_path / "backup")  # what a backup of it holds
    r = the_replica(store, job.name, name)
    failover(store, r.id)
    disks = running(lab, r.replica_moref or "")
    subprocess.run(  # the running replica's guest writes 3 MiB at 4 MiB
        ["qemu-io", "-f", "vmdk", "-c", "write -P 0xa7 4M 3M", str(disks[0])],
        check=True,
        capture_output=True,
    )
    prod, _ = inventories(lab)
    original = vm(prod, name)
    # Production is lost, then rebuilt: the VM comes back from the backup, elsewhere.
    restored = lose_and_restore_elsewhere(lab, name, backup)
    assert restored.moref != original.moref and restored.host != original.host
    assert restored.disks[0].datastore != original.disks[0].datastore
    with pytest.raises(FailbackError, match="is gone: fail back to the original VM restored"):
        failback(store, r.id, shutdown_timeout=5)
    other = next(
        v for v in prod.vms if [d.capacity for d in v.disks] != [d.capacity for d in original.disks]
    )
    with pytest.raises(FailbackError, match=r"the layouts differ|disks, the replica"):
        failback(store, r.id, to=Restored(other.moref), shutdown_timeout=5)
    assert store.replicas.get(r.id).state == ReplicaState.FAILOVER

    # Found by the original's instance UUID (recorded at failover); only the guest's writes
    # travel back, since the restored disks hold what the replica's point holds.
    result = failback(store, r.id, to=Restored(), shutdown_timeout=5)
    assert result.replica.state == ReplicaState.FAILBACK and result.vm == restored.moref
    assert store.sessions.get(result.session_id).stats.transferred_bytes == 3 << 20
    prod, dr = inventories(lab)
    back = prod.vm(restored.moref)
    assert back.power_state == "poweredOn"
    assert dr.vm(r.replica_moref or "").power_state == "poweredOff"
    for path, d in zip(disks, sorted(back.disks, key=lambda d: d.key), strict=True):
        assert_identical(path, flat_name(datastore_file(prod, d.datastore, d.file_name)))
    log = [e.message for t in store.sessions.tasks(result.session_id) for e in t.log]
    assert any("restored in another place" in m and restored.moref in m for m in log)

    undo_failback(store, r.id)  # the restored VM is off again, not deleted
    prod, _ = inventories(lab)
    assert prod.vm(restored.moref).power_state == "poweredOff"
    again = failback(store, r.id, to=Restored(restored.moref), shutdown_timeout=5)
    assert store.sessions.get(again.session_id).stats.transferred_bytes == 0
    commit_failback(store, r.id)
    assert [o.moref for o in store.jobs.get(job.name).source.objects] == [restored.moref]
    ok(store, job.name)  # the restored VM is replicated from now on


def test_reip_windows_guest_by_sysprep(lab: LabState, store: Store) -> None:
    name = "dc01"  # a Windows guest with two NICs
    give_addresses(lab, name, [("172.17.40.7", "255.255.0.0"), ("10.1.2.40", "255.255.255.0")])
    rules = (
        ReIpRule(
            "172.17.*.*",
            "192.168.*.*",
            source_mask="255.255.0.0",
            target_mask="255.255.0.0",
            gateway="192.168.0.1",
            dns=("192.168.0.53",),
            wins=("192.168.0.54", "192.168.0.55"),
        ),
        ReIpRule("10.1.2.0/24", "10.201.2.0/24", gateway="10.201.2.1"),
    )
    job = replace(lab_job(lab, "Re-IP Windows", [name]), reip=rules)
    store.jobs.add(job)
    ok(store, job.name)
    r = the_replica(store, job.name, name)
    prod, dr = inventories(lab)
    replica_vm = dr.vm(r.replica_moref or "")
    assert replica_vm.guest_id.startswith("windows")
    # What failover stores on the replica: a Sysprep identity, WINS on the first NIC.
    p = plan_reip(rules, replica_vm, vm(prod, name))
    assert p is not None and p.customization is not None and not p.problems
    assert p.customization.os == "windows"
    assert p.customization.nics[0].wins == ("192.168.0.54", "192.168.0.55")
    spec = build_spec(p.customization)
    assert isinstance(spec.identity, vim.vm.customization.Sysprep)
    assert spec.identity.userData.computerName.name == "dc01"

    result = failover(store, r.id, reip_timeout=30)
    assert result.status == RunStatus.SUCCESS and result.replica.state == ReplicaState.FAILOVER
    assert result.vm == r.replica_moref
    with dr_client(lab) as c:
        guest = retrieve_one(
            c, c.obj("VirtualMachine", result.vm), ["guest.hostName", "guest.net"], "read guest"
        )
    assert guest["guest.hostName"] == "dc01"  # Sysprep's computer name, as the guest reports it
    per_nic = [tuple(n.ipAddress) for n in guest["guest.net"]]
    assert per_nic == [("192.168.40.7",), ("10.201.2.40",)]
    log = [e.message for t in store.sessions.tasks(result.session_id) for e in t.log]
    assert any("re-IP verified: the guest reports 192.168.40.7, 10.201.2.40" in m for m in log)
    undo_failover(store, r.id)
