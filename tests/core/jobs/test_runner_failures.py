"""What goes wrong in a run, against the real lab: a target mover killed mid-run, a snapshot a
crashed run left behind, a replica started by hand, a network mapping to nowhere. Each time the
existing restore points stay intact and the next run (once the cause is gone) succeeds."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from core.jobs.runner import run_job
from core.jobs.vmtask import SNAPSHOT_PREFIX
from core.lab.lab import LabState
from core.lab.register import DR_PROXY, inventories, lab_job
from core.model.infra import BackupProxy
from core.model.job import ProxySelection
from core.model.network import NetworkMap, NetworkMapping
from core.model.replicas import ReplicaState
from core.model.runs import RunStatus
from core.mover.process import MoverServiceProcess
from core.mover.tls import TlsFiles
from core.store.store import Store
from core.vsphere import power, snapshots
from core.vsphere.connection import VSphereClient
from tests.core.jobs.test_runner import (
    chain_point_file,
    check_points,
    churn_vm,
    source_copies,
    task_log,
    vm,
)


def client(lab: LabState, site: str) -> VSphereClient:
    s = lab.production if site == "production" else lab.dr
    return VSphereClient.connect(s.address, s.port, lab.user, lab.password, protocol="http")


def test_a_target_mover_killed_mid_run_keeps_points_and_the_next_run_completes(
    lab: LabState, store: Store, tmp_path: Path
) -> None:
    folder = Path(lab.folder)
    server = TlsFiles(
        folder / "certs/server.pem", folder / "certs/server.key", folder / "certs/ca.pem"
    )
    prefix = ["ip", "netns", "exec", lab.dr.namespace] if lab.dr.namespace else []
    mover = MoverServiceProcess(
        Path(lab.dr.proxy_root),
        server,
        listen=lab.dr.proxy_address,
        prefix=prefix,
        log=tmp_path / "mover.log",
    ).start()
    try:
        store.proxies.add(
            BackupProxy("killable", lab.dr.proxy_address, "dr", mover.port, 2, tls=lab.client)
        )
        names = ["50% batch"]
        job = lab_job(lab, "Killed mover", names)
        job = replace(
            job, transfer=replace(job.transfer, target_proxies=ProxySelection(("killable",)))
        )
        store.jobs.add(job)
        copies = source_copies(lab, names, tmp_path / "run1")
        assert run_job(store, job.name).status in (RunStatus.SUCCESS, RunStatus.WARNING)
        check_points(lab, store, job.name, copies)

        churn_vm(lab, names[0], 12 << 20, seed=21)
        replica = store.replicas.list(job.name)[0]
        point1 = store.replicas.latest_point(replica.id)
        assert point1 is not None
        chain_dir = chain_point_file(
            lab, inventories(lab)[1], point1.disks[0].chain or "", 1
        ).parent
        result: list[RunStatus] = []
        t = threading.Thread(target=lambda: result.append(run_job(store, job.name).status))
        t.start()
        deadline = time.monotonic() + 60
        while not any(p.name.endswith(".partial") for p in chain_dir.iterdir()):
            assert time.monotonic() < deadline, "the run never started writing"
            time.sleep(0.005)
        mover.kill()
        t.join(120)
        assert result == [RunStatus.FAILED]
        # Restore point 1 is intact on every disk; nothing half-written is a point.
        assert [p.number for p in store.replicas.points(replica.id)] == [1]
        check_points(lab, store, job.name, copies)
        _, dr = inventories(lab)
        assert len(list(vm(dr, replica.replica_name).all_snapshots())) == 1
        prod, _ = inventories(lab)
        assert not [
            s for s in vm(prod, names[0]).all_snapshots() if s.name.startswith(SNAPSHOT_PREFIX)
        ]

        mover.start()
        store.proxies.update(
            BackupProxy("killable", lab.dr.proxy_address, "dr", mover.port, 2, tls=lab.client)
        )
        copies = source_copies(lab, names, tmp_path / "run3")
        s3 = run_job(store, job.name)
        assert s3.status in (RunStatus.SUCCESS, RunStatus.WARNING), task_log(store, s3.id)
        assert [p.number for p in store.replicas.points(replica.id)] == [1, 2]
        check_points(lab, store, job.name, copies)
    finally:
        mover.stop()


def test_our_stale_snapshot_is_removed_and_others_are_never_touched(
    lab: LabState, store: Store
) -> None:
    names = ["dc01"]
    job = lab_job(lab, "Stale snapshots", names)
    store.jobs.add(job)
    prod, _ = inventories(lab)
    source = vm(prod, names[0])
    with client(lab, "production") as c:
        theirs = snapshots.create_snapshot(c, source.moref, "before patching", "the admin's own")
        ours = snapshots.create_snapshot(c, source.moref, f"{SNAPSHOT_PREFIX} replication x", "")
        # A crashed run recorded this one before it died.
        store.run_snapshots.add(lab.production.address, source.moref, ours, None)
        lookalike = snapshots.create_snapshot(c, source.moref, f"{SNAPSHOT_PREFIX} lookalike", "")
    session = run_job(store, job.name)
    assert session.status == RunStatus.WARNING
    assert "left behind by an earlier run" in task_log(store, session.id)
    prod, _ = inventories(lab)
    left = {s.moref for s in vm(prod, names[0]).all_snapshots()}
    assert left == {theirs, lookalike}  # only the recorded one of ours went
    assert store.run_snapshots.of_vm(lab.production.address, source.moref) == []


def test_a_replica_started_by_hand_needs_resync_and_is_not_overwritten(
    lab: LabState, store: Store, tmp_path: Path
) -> None:
    names = ["web 02 (canary)"]
    job = lab_job(lab, "Resync", names)
    store.jobs.add(job)
    copies = source_copies(lab, names, tmp_path / "run1")
    assert run_job(store, job.name).status in (RunStatus.SUCCESS, RunStatus.WARNING)
    replica = store.replicas.list(job.name)[0]
    with client(lab, "dr") as c:
        power.power_on(c, replica.replica_moref or "")
    try:
        churn_vm(lab, names[0], 1 << 20, seed=5)
        s2 = run_job(store, job.name)
        assert s2.status == RunStatus.FAILED
        assert "marked Needs resync" in task_log(store, s2.id)
        assert store.replicas.get(replica.id).state == ReplicaState.NEEDS_RESYNC
        assert [p.number for p in store.replicas.points(replica.id)] == [1]
        check_points(lab, store, job.name, copies)  # point 1 untouched
        s3 = run_job(store, job.name)
        assert s3.status == RunStatus.FAILED and "needs resync" in task_log(store, s3.id)
    finally:
        with client(lab, "dr") as c:
            power.power_off(c, replica.replica_moref or "")


def test_a_mapping_to_a_missing_network_stops_the_vm_before_anything_is_written(
    lab: LabState, store: Store
) -> None:
    names = ["app+cache"]
    job = lab_job(lab, "Bad network map", names)
    job = replace(job, network=NetworkMap((NetworkMapping("Prod App", "No Such Net"),)))
    store.jobs.add(job)
    prod, _ = inventories(lab)
    session = run_job(store, job.name)
    assert session.status == RunStatus.FAILED
    log = task_log(store, session.id)
    assert "'No Such Net', which does not exist at the DR site" in log
    _, dr = inventories(lab)
    assert not dr.vms_named("app+cache_replica")
    assert not [s for s in vm(prod, names[0]).all_snapshots() if s.name.startswith(SNAPSHOT_PREFIX)]
    replica = store.replicas.list(job.name)[0]
    assert store.replicas.points(replica.id) == []


def test_a_second_run_of_a_running_job_is_refused(lab: LabState, store: Store) -> None:
    from core.errors import LockHeldError
    from core.jobs.runner import job_lock_key

    job = lab_job(lab, "Locked", ["db #2 & replica"])
    store.jobs.add(job)
    with (
        store.locks.hold([job_lock_key(job.name)], "another run"),
        pytest.raises(LockHeldError, match="being processed by another run"),
    ):
        run_job(store, job.name)
    assert DR_PROXY in job.transfer.target_proxies.proxies


def test_a_vm_being_processed_by_another_run_is_not_touched(lab: LabState, store: Store) -> None:
    from core.store.locks import vm_key

    name = "Zürich fileserver [fs]"
    job = lab_job(lab, "Second job on a VM", [name])
    store.jobs.add(job)
    prod, _ = inventories(lab)
    source = vm(prod, name)
    with store.locks.hold([vm_key(lab.production.address, source.moref)], "job Other, session 9"):
        session = run_job(store, job.name)
    assert session.status == RunStatus.FAILED
    assert "is being processed by another run (job Other, session 9," in task_log(store, session.id)
    prod, _ = inventories(lab)
    assert not [s for s in vm(prod, name).all_snapshots() if s.name.startswith(SNAPSHOT_PREFIX)]
    again = run_job(store, job.name)
    assert again.status in (RunStatus.SUCCESS, RunStatus.WARNING)
