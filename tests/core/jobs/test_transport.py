"""Transport modes against the real lab: reading source disks in virtual appliance (hot-add)
mode through the production proxy's VM, disks a crashed run left attached detached at the next
run (and nobody else's), and replicas written in network mode (staged here, uploaded over the DR
site's datastore HTTP) with retention deferred until a run with direct storage access. Every
restore point is checked with qemu-img against the source disk as it was at that run."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from core.jobs.events import Event, TaskLog
from core.jobs.runner import run_job
from core.lab.lab import Lab, LabState
from core.lab.register import PROD_PROXY, inventories, lab_job, register_lab
from core.lab.topology import PROXY_VM, LabOptions
from core.model.infra import TransportMode
from core.model.job import ProxySelection, ReplicationJob
from core.model.runs import RunStatus
from core.replica.manifest import Manifest
from core.store.store import Store
from core.vsphere import hotadd
from core.vsphere.connection import VSphereClient
from core.vsphere.datastore import DatastorePath
from tests.conftest import assert_identical, qemu_check
from tests.core.jobs.test_runner import (
    chain_point_file,
    check_points,
    churn_vm,
    source_copies,
    task_log,
    vm,
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    folder = tmp_path_factory.mktemp("lab")
    options = LabOptions(vms=6, disk_mib=(16, 40), proxy_vm=True)
    with Lab(options, folder=folder, wan=os.geteuid() == 0) as state:
        yield state


@pytest.fixture
def store(tmp_path: Path, lab: LabState) -> Iterator[Store]:
    with Store.open(tmp_path / "replicadesk.db") as s:
        register_lab(s, lab, tmp_path / "metadata")
        yield s


@pytest.fixture
def prod(lab: LabState) -> Iterator[VSphereClient]:
    p = lab.production
    with VSphereClient.connect(p.address, p.port, lab.user, lab.password, protocol="http") as c:
        yield c


def proxy_vm(lab: LabState) -> str:
    prod_inv, _ = inventories(lab)
    return vm(prod_inv, PROXY_VM).moref


def give_proxy_its_vm(lab: LabState, store: Store) -> str:
    """The production proxy runs in the lab's proxy VM (what `proxy add --vm` stores)."""
    moref = proxy_vm(lab)
    proxy = store.proxies.get(PROD_PROXY)
    store.proxies.update(replace(proxy, vm=moref, vm_server=lab.production.address))
    return moref


def with_modes(
    job: ReplicationJob, *modes: TransportMode, automatic: bool = False
) -> ReplicationJob:
    transfer = replace(job.transfer, transport_modes=modes)
    if automatic:
        transfer = replace(transfer, target_proxies=ProxySelection())
    return replace(job, transfer=transfer)


def own_disks(client: VSphereClient, moref: str) -> list[hotadd.ProxyDisk]:
    return [d for d in hotadd.proxy_disks(client, moref) if PROXY_VM in d.file_name]


def test_hotadd_reads_through_the_proxy_vm_and_detaches(
    lab: LabState, store: Store, prod: VSphereClient, tmp_path: Path
) -> None:
    moref = give_proxy_its_vm(lab, store)
    names = ["web 02 (canary)", "db #2 & replica"]
    job = with_modes(lab_job(lab, "Hot-add", names), TransportMode.HOTADD, TransportMode.DIRECT)
    store.jobs.add(job)
    prod_inv, _ = inventories(lab)
    source_files = {d.file_name for n in names for d in vm(prod_inv, n).disks}

    # While a disk is being read, the proxy VM has it attached, and the store records it.
    seen: dict[str, tuple[str, bool]] = {}  # file -> (its mode on the proxy VM, recorded)

    def events(e: Event) -> None:
        if isinstance(e, TaskLog) and " attached to the VM of proxy" in e.message:
            file = e.message.split(" attached to the VM of proxy")[0]
            modes = {d.file_name: d.mode for d in hotadd.proxy_disks(prod, moref)}
            records = store.hotadd_disks.of_proxy(lab.production.address, moref)
            recorded = any(r.file == file and r.device_key is not None for r in records)
            seen[file] = (modes.get(file, "not attached"), recorded)

    copies = source_copies(lab, names, tmp_path / "run1")
    s1 = run_job(store, job.name, events=events)
    assert s1.status in (RunStatus.SUCCESS, RunStatus.WARNING), s1.log
    check_points(lab, store, job.name, copies)
    log = task_log(store, s1.id)
    assert "read in virtual appliance (hot-add) mode through proxy prod-proxy" in log
    assert "falls back to direct storage access" in log  # hot-add cannot write the replica
    assert seen == {f: ("independent_nonpersistent", True) for f in source_files}
    # Nothing stays attached, nothing stays recorded.
    assert len(own_disks(prod, moref)) == len(hotadd.proxy_disks(prod, moref)) == 1
    assert store.hotadd_disks.of_proxy(lab.production.address, moref) == []
    assert log.count("detached from the VM of proxy") == len(source_files)

    # An incremental run (CBT) in the same mode.
    churn_vm(lab, names[0], 2 << 20, seed=11)
    copies = source_copies(lab, names, tmp_path / "run2")
    s2 = run_job(store, job.name)
    assert s2.status in (RunStatus.SUCCESS, RunStatus.WARNING), s2.log
    assert "changed areas from CBT" in task_log(store, s2.id)
    check_points(lab, store, job.name, copies)
    assert len(hotadd.proxy_disks(prod, moref)) == 1


def test_a_disk_left_attached_by_a_crash_is_detached_and_no_other(
    lab: LabState, store: Store, prod: VSphereClient, tmp_path: Path
) -> None:
    moref = give_proxy_its_vm(lab, store)
    prod_inv, _ = inventories(lab)
    ours = vm(prod_inv, "app+cache").disks[0].file_name
    theirs = vm(prod_inv, "50% batch").disks[0].file_name
    server = lab.production.address

    # A run that crashed after its attach: the record is there, the disk is attached.
    slot = hotadd.free_slot(prod, moref)
    record = store.hotadd_disks.record(server, moref, slot, ours, "vm-gone", None)
    key = hotadd.attach_disk(prod, moref, ours, slot)
    store.hotadd_disks.set_device(record, key)
    # Someone else's hot-add (another backup product): no record of ours.
    other = hotadd.attach_disk(prod, moref, theirs)

    job = with_modes(
        lab_job(lab, "Hot-add leftovers", ["Zürich fileserver [fs]"]),
        TransportMode.HOTADD,
        TransportMode.DIRECT,
    )
    store.jobs.add(job)
    copies = source_copies(lab, ["Zürich fileserver [fs]"], tmp_path / "run1")
    s1 = run_job(store, job.name)
    assert s1.status == RunStatus.WARNING, s1.log
    log = task_log(store, s1.id)
    assert f"detached disk {ours} from the VM of proxy prod-proxy" in log
    assert "left attached by an earlier run that did not finish" in log
    check_points(lab, store, job.name, copies)

    left = {d.key: d.file_name for d in hotadd.proxy_disks(prod, moref)}
    assert key not in left and ours not in left.values()
    assert left[other] == theirs  # not ours to detach
    assert store.hotadd_disks.of_proxy(server, moref) == []
    hotadd.detach_disk(prod, moref, other)


def staging_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("replicadesk-network-*")}


def test_network_mode_writes_the_replica_over_datastore_http(
    lab: LabState, store: Store, tmp_path: Path
) -> None:
    names = ["dc01"]
    base = lab_job(lab, "Network write", names, keep=1)
    # No direct storage access allowed, automatic proxies: the DR datastore is reached only
    # through the DR vCenter's datastore HTTP. No proxy has a VM here: hot-add falls back too.
    job = with_modes(base, TransportMode.HOTADD, TransportMode.NETWORK, automatic=True)
    store.jobs.add(job)
    before = staging_folders()

    copies = source_copies(lab, names, tmp_path / "run1")
    s1 = run_job(store, job.name)
    assert s1.status in (RunStatus.SUCCESS, RunStatus.WARNING), s1.log
    log = task_log(store, s1.id)
    assert "virtual appliance (hot-add) mode: none of the proxies" in log
    assert "falls back to network mode" in log
    assert "virtual appliance (hot-add) mode cannot write the replica" in log
    assert "read in network mode (datastore HTTP)" in log
    assert "in network mode (datastore HTTP, whole files)" in log
    assert "restore point written by the backup server" in log
    check_points(lab, store, job.name, copies)

    # Run 2: an incremental delta, uploaded; retention (keep 1) waits for direct access.
    churn_vm(lab, names[0], 3 << 20, seed=21)
    copies2 = source_copies(lab, names, tmp_path / "run2")
    s2 = run_job(store, job.name)
    assert s2.status == RunStatus.WARNING, s2.log
    log = task_log(store, s2.id)
    assert "changed areas from CBT" in log
    assert "downloaded over datastore HTTP" in log
    assert "retention deferred" in log
    check_points(lab, store, job.name, copies2)
    _, dr = inventories(lab)
    (replica,) = store.replicas.list(job.name)
    points = store.replicas.points(replica.id)
    assert [p.number for p in points] == [1, 2]
    for p in points:
        for d in p.disks:
            point_file = chain_point_file(lab, dr, d.chain or "", d.chain_point or 0)
            qemu_check(point_file)
            # Both points still read as the source did at their run.
            assert point_file.exists()
    first = points[0].disks[0]
    assert_identical(
        chain_point_file(lab, dr, first.chain or "", first.chain_point or 0),
        copies[(names[0], first.disk_key)],
    )
    assert staging_folders() <= before  # staging removed

    # Run 3 with direct storage access (the DR proxy): retention merges down to one point.
    store.jobs.update(base)
    copies3 = source_copies(lab, names, tmp_path / "run3")
    s3 = run_job(store, job.name)
    assert s3.status in (RunStatus.SUCCESS, RunStatus.WARNING), s3.log
    check_points(lab, store, job.name, copies3)
    assert [p.number for p in store.replicas.points(replica.id)] == [3]
    for d in store.replicas.latest_point(replica.id).disks:  # type: ignore[union-attr]
        chain = DatastorePath.parse(d.chain or "")
        ds = next(x for x in dr.datastores if x.name == chain.datastore)
        manifest = Manifest.load(Path(ds.url) / chain.path)
        assert manifest is not None and [p.id for p in manifest.points] == [d.chain_point]


def test_network_mode_takes_back_a_point_when_another_disk_fails(
    lab: LabState, store: Store, tmp_path: Path
) -> None:
    prod_inv, dr = inventories(lab)
    name = next(n for n in ("app+cache", "50% batch") if len(vm(prod_inv, n).disks) >= 2)
    job = with_modes(
        lab_job(lab, "Network take-back", [name], keep=3), TransportMode.NETWORK, automatic=True
    )
    store.jobs.add(job)
    s1 = run_job(store, job.name)
    assert s1.status in (RunStatus.SUCCESS, RunStatus.WARNING), s1.log
    (replica,) = store.replicas.list(job.name)
    (point,) = store.replicas.points(replica.id)
    folders = []
    for d in point.disks:
        chain = DatastorePath.parse(d.chain or "")
        ds = next(x for x in dr.datastores if x.name == chain.datastore)
        folders.append(Path(ds.url) / chain.path)

    # The last disk's chain was edited by hand: its point no longer has the CID the manifest
    # records. The run fails on that disk, and the point the first disk uploaded is taken back.
    descriptor = folders[-1] / "point-0001.vmdk"
    original = descriptor.read_text()
    cid = next(line for line in original.splitlines() if line.startswith("CID="))
    descriptor.write_text(original.replace(cid, "CID=0badc0de"))
    churn_vm(lab, name, 1 << 20, seed=31)
    s2 = run_job(store, job.name)
    assert s2.status == RunStatus.FAILED
    log = task_log(store, s2.id)
    assert "the chain was changed outside ReplicaDesk" in log
    for folder in folders:
        manifest = Manifest.load(folder)
        assert manifest is not None and [p.id for p in manifest.points] == [1]
    assert (folders[0] / "point-0002.vmdk").exists()  # an unlisted leftover
    assert [p.number for p in store.replicas.points(replica.id)] == [1]

    # Put right, the next run adds the point (the taken-back chains never reuse point id 2);
    # their metadata was dropped with the taken-back points and comes from the replicas'
    # digest files.
    descriptor.write_text(original)
    copies = source_copies(lab, [name], tmp_path / "run3")
    s3 = run_job(store, job.name)
    assert s3.status == RunStatus.WARNING, s3.log
    assert "the digests were taken from the replica's digest file of restore point 1" in (
        task_log(store, s3.id)
    )
    check_points(lab, store, job.name, copies)
    ids = []
    for folder in folders:
        manifest = Manifest.load(folder)
        assert manifest is not None
        ids.append([p.id for p in manifest.points])
    assert ids == [[1, 3]] * (len(folders) - 1) + [[1, 2]]
