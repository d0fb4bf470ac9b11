"""Replication jobs against the real lab: full and incremental runs, CBT and digests, every
restore point of every disk checked by qemu-img against the source disk as it was at that run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from core.jobs.runner import run_job
from core.jobs.vmtask import SNAPSHOT_PREFIX
from core.lab.changelog import ChangeLog
from core.lab.content import flat_name, guest_writes
from core.lab.lab import LabState, datastore_file
from core.lab.register import inventories, lab_job
from core.lab.topology import NETWORK_MAP
from core.model.runs import RunStatus
from core.store.store import Store
from core.vsphere.datastore import DatastorePath
from core.vsphere.models import Inventory, Vm
from tests.conftest import assert_identical


def vm(inv: Inventory, name: str) -> Vm:
    (found,) = inv.vms_named(name)
    return found


def source_copies(lab: LabState, names: list[str], into: Path) -> dict[tuple[str, int], Path]:
    """A copy of every disk of these VMs as it is now (what the next run must reproduce)."""
    prod, _ = inventories(lab)
    into.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in names:
        v = vm(prod, name)
        for d in v.disks:
            flat = flat_name(datastore_file(prod, d.datastore, d.file_name))
            copy = into / f"{v.moref}-{d.key}.raw"
            shutil.copyfile(flat, copy)
            out[(name, d.key)] = copy
    return out


def churn_vm(lab: LabState, name: str, nbytes: int, seed: int) -> None:
    prod, _ = inventories(lab)
    v = vm(prod, name)
    log = ChangeLog(Path(lab.changelog))
    rng = np.random.default_rng(seed)
    for d in v.disks:
        flat = flat_name(datastore_file(prod, d.datastore, d.file_name))
        log.record(v.moref, d.key, d.capacity, guest_writes(flat, nbytes, rng))


def chain_point_file(lab: LabState, dr: Inventory, chain: str, point: int) -> Path:
    path = DatastorePath.parse(chain)
    ds = next(d for d in dr.datastores if d.name == path.datastore)
    return Path(ds.url) / path.path / f"point-{point:04d}.vmdk"


def task_log(store: Store, session_id: int) -> str:
    return "\n".join(e.message for t in store.sessions.tasks(session_id) for e in t.log)


def check_points(
    lab: LabState, store: Store, job: str, copies: dict[tuple[str, int], Path]
) -> None:
    """The newest restore point of each VM reads exactly like the copies, disk by disk."""
    _, dr = inventories(lab)
    for replica in store.replicas.list(job):
        point = store.replicas.latest_point(replica.id)
        assert point is not None
        for d in point.disks:
            assert d.chain is not None and d.chain_point is not None
            assert_identical(
                chain_point_file(lab, dr, d.chain, d.chain_point),
                copies[(replica.vm_name, d.disk_key)],
            )


def test_full_then_cbt_and_digest_runs_with_retention(
    lab: LabState, store: Store, tmp_path: Path
) -> None:
    names = ["web 02 (canary)", "db #2 & replica", "Zürich fileserver [fs]"]
    job = lab_job(lab, "Web & DB tier", names, keep=2)
    store.jobs.add(job)

    copies = source_copies(lab, names, tmp_path / "run1")
    s1 = run_job(store, job.name)
    assert s1.status in (RunStatus.SUCCESS, RunStatus.WARNING), s1.log
    check_points(lab, store, job.name, copies)
    tasks = store.sessions.tasks(s1.id)
    assert sorted(t.vm_name for t in tasks) == sorted(names)
    assert all(t.stats.processed_bytes > 0 for t in tasks)
    # Each VM and the session carry the stages' busy shares: the console's bottleneck line.
    for t in tasks:
        stages = dict(t.stats.busy)
        assert set(stages) == {"source", "proxy", "network", "target"}
        assert all(0 <= v <= 1 for v in stages.values())
        assert t.stats.bottleneck is not None
        assert t.stats.bottleneck.value in t.stats.bottleneck_line
    assert store.sessions.get(s1.id).stats.bottleneck_line.startswith("Source ")

    # The replicas: named with the suffix, on the DR cluster's least loaded hosts, on the mapped
    # networks, one snapshot per restore point; no snapshot left on the sources.
    prod, dr = inventories(lab)
    for name in names:
        replica = vm(dr, name + "_replica")
        source = vm(prod, name)
        assert replica.cpus == source.cpus and replica.memory_mb == source.memory_mb
        assert [d.capacity for d in replica.disks] == [d.capacity for d in source.disks]
        assert [n.network_name for n in replica.nics] == [
            NETWORK_MAP[n.network_name] for n in source.nics
        ]
        assert len(list(replica.all_snapshots())) == 1
        assert not [s for s in source.all_snapshots() if s.name.startswith(SNAPSHOT_PREFIX)]
    hosts = {vm(dr, n + "_replica").host for n in names}
    assert len(hosts) == 2  # three replicas over the DR cluster's two hosts

    # Run 2: guest writes; CBT gives the changed areas.
    churn_vm(lab, names[0], 3 << 20, seed=1)
    churn_vm(lab, names[1], 1 << 20, seed=2)
    copies = source_copies(lab, names, tmp_path / "run2")
    s2 = run_job(store, job.name)
    assert s2.status in (RunStatus.SUCCESS, RunStatus.WARNING), s2.log
    check_points(lab, store, job.name, copies)
    assert "changed areas from CBT" in task_log(store, s2.id)
    unchanged = next(t for t in store.sessions.tasks(s2.id) if t.vm_name == names[2])
    assert unchanged.stats.transferred_bytes == 0

    # Run 3 without CBT (the job's setting): digests find the same changes.
    store.jobs.update(lab_job(lab, "Web & DB tier", names, keep=2, use_cbt=False))
    churn_vm(lab, names[2], 2 << 20, seed=3)
    copies = source_copies(lab, names, tmp_path / "run3")
    s3 = run_job(store, job.name)
    assert s3.status in (RunStatus.SUCCESS, RunStatus.WARNING), s3.log
    check_points(lab, store, job.name, copies)
    assert ": digests" in task_log(store, s3.id)

    # Retention at 2: points 2 and 3 remain, in the store, on disk and as replica snapshots.
    _, dr = inventories(lab)
    for replica in store.replicas.list(job.name):
        points = store.replicas.points(replica.id)
        assert [p.number for p in points] == [2, 3]
        snaps = {s.moref for s in vm(dr, replica.replica_name).all_snapshots()}
        assert snaps == {p.snapshot_moref for p in points}
        for p in points:
            for d in p.disks:
                assert chain_point_file(lab, dr, d.chain or "", d.chain_point or 0).exists()


def test_network_mode_reads_over_datastore_http(
    lab: LabState, store: Store, tmp_path: Path
) -> None:
    from dataclasses import replace

    from core.model.infra import TransportMode

    names = ["app+cache"]
    job = lab_job(lab, "Network mode", names)
    job = replace(job, transfer=replace(job.transfer, transport_modes=(TransportMode.NETWORK,)))
    store.jobs.add(job)
    copies = source_copies(lab, names, tmp_path / "run1")
    s1 = run_job(store, job.name)
    assert s1.status in (RunStatus.SUCCESS, RunStatus.WARNING), s1.log
    assert "read in network mode" in task_log(store, s1.id)
    check_points(lab, store, job.name, copies)
    churn_vm(lab, names[0], 2 << 20, seed=9)
    copies = source_copies(lab, names, tmp_path / "run2")
    s2 = run_job(store, job.name)
    assert "changed areas from CBT" in task_log(store, s2.id)
    check_points(lab, store, job.name, copies)
