"""Guest processing on the lab: application-aware processing (a quiesced snapshot through VMware
Tools) and the job's policy when the guest cannot be quiesced. The lab's "web 02 (canary)" runs
without VMware Tools (LabOptions.no_tools); "db #2 & replica" runs Tools but its quiesced
snapshots fail as ESXi's do when the guest cannot be quiesced (LabOptions.quiesce_fails); its
other guests run Tools while powered on and are quiesced."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from core.errors import VSphereQuiesceError
from core.jobs.runner import run_job
from core.jobs.vmtask import SNAPSHOT_PREFIX
from core.lab.lab import Lab, LabState
from core.lab.register import inventories, lab_job
from core.lab.topology import LabOptions
from core.model.job import QuiesceFailure, ReplicationJob
from core.model.runs import RunStatus, Severity
from core.store.store import Store
from core.vsphere import power, snapshots
from core.vsphere.datastore import DatastorePath
from tests.core.jobs.test_runner import check_points, source_copies, vm
from tests.core.jobs.test_runner_failures import client

WITH_TOOLS = "dc01"
WITHOUT_TOOLS = "web 02 (canary)"
QUIESCE_FAILS = "db #2 & replica"
ESXI_QUIESCE_FAULT = (
    "An error occurred while quiescing the virtual machine. See the virtual machine's event log "
    "for details. (ApplicationQuiesceFault)"
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    folder = tmp_path_factory.mktemp("lab-guest")
    options = LabOptions(
        vms=3, disk_mib=(8, 16), no_tools=(WITHOUT_TOOLS,), quiesce_fails=(QUIESCE_FAILS,)
    )
    with Lab(options, folder=folder, wan=False) as state:
        yield state


def quiescing_job(
    lab: LabState,
    name: str,
    policy: QuiesceFailure,
    vms: tuple[str, str] = (WITH_TOOLS, WITHOUT_TOOLS),
    suffix: str = "",
) -> ReplicationJob:
    """A job over `vms`; its own replica suffix keeps its replicas apart from other tests'."""
    job = lab_job(lab, name, list(vms), keep=2)
    settings = replace(
        job.settings,
        quiesce=True,
        quiesce_failure=policy,
        replica_suffix=f"_{policy}{suffix}",
    )
    return replace(job, settings=settings)


def our_snapshots(lab: LabState, name: str) -> list[str]:
    prod, _ = inventories(lab)
    return [s.name for s in vm(prod, name).all_snapshots() if s.name.startswith(SNAPSHOT_PREFIX)]


def folder_state(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file below `folder`: size, modification time and SHA-256."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            path = Path(root) / f
            st = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns, digest)
    return out


def vm_log(store: Store, session_id: int, name: str) -> list[tuple[Severity, str]]:
    (task,) = [t for t in store.sessions.tasks(session_id) if t.vm_name == name]
    return [(e.severity, e.message) for e in task.log]


def test_the_lab_reports_tools_as_its_guests_run_them(lab: LabState) -> None:
    prod, _ = inventories(lab)
    assert vm(prod, WITH_TOOLS).power_state == "poweredOn" and vm(prod, WITH_TOOLS).tools_running
    assert vm(prod, WITHOUT_TOOLS).power_state == "poweredOn"
    assert not vm(prod, WITHOUT_TOOLS).tools_running


def test_continue_takes_a_crash_consistent_snapshot_with_a_warning(
    lab: LabState, store: Store, tmp_path: Path
) -> None:
    job = quiescing_job(lab, "Guest processing: continue", QuiesceFailure.CONTINUE)
    store.jobs.add(job)
    copies = source_copies(lab, [WITH_TOOLS, WITHOUT_TOOLS], tmp_path / "copies")
    session = run_job(store, job.name)
    assert session.status == RunStatus.WARNING
    statuses = {t.vm_name: t.status for t in store.sessions.tasks(session.id)}
    assert statuses == {WITH_TOOLS: RunStatus.SUCCESS, WITHOUT_TOOLS: RunStatus.WARNING}

    with_tools = vm_log(store, session.id, WITH_TOOLS)
    assert any("quiesced through VMware Tools" in m for _, m in with_tools)
    assert not [m for s, m in with_tools if s != Severity.INFO]
    without = vm_log(store, session.id, WITHOUT_TOOLS)
    warnings = [m for s, m in without if s == Severity.WARNING]
    assert warnings == [
        "application-aware processing failed: VMware Tools are not running in the guest; the "
        "snapshot is crash-consistent (the job continues without quiescing)"
    ]
    assert any("crash-consistent)" in m and m.startswith("snapshot ") for _, m in without)
    # Both VMs have their restore point, equal to the source.
    check_points(lab, store, job.name, copies)
    assert all(store.replicas.latest_point(r.id) for r in store.replicas.list(job.name))


def test_fail_stops_the_vm_without_tools_and_leaves_nothing_behind(
    lab: LabState, store: Store, tmp_path: Path
) -> None:
    job = quiescing_job(lab, "Guest processing: fail", QuiesceFailure.FAIL)
    store.jobs.add(job)
    session = run_job(store, job.name)
    assert session.status == RunStatus.FAILED
    statuses = {t.vm_name: t.status for t in store.sessions.tasks(session.id)}
    assert statuses == {WITH_TOOLS: RunStatus.SUCCESS, WITHOUT_TOOLS: RunStatus.FAILED}
    errors = [m for s, m in vm_log(store, session.id, WITHOUT_TOOLS) if s == Severity.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith(
        f"{WITHOUT_TOOLS}: application-aware processing failed: VMware Tools are not running in "
        "the guest; no snapshot was kept"
    )
    replicas = {r.vm_name: r for r in store.replicas.list(job.name)}
    assert store.replicas.latest_point(replicas[WITH_TOOLS].id) is not None
    assert store.replicas.latest_point(replicas[WITHOUT_TOOLS].id) is None
    assert replicas[WITHOUT_TOOLS].replica_moref is None  # no replica VM was made
    prod, dr = inventories(lab)
    source = vm(prod, WITHOUT_TOOLS)
    assert not [s for s in source.all_snapshots() if s.name.startswith(SNAPSHOT_PREFIX)]
    assert not dr.vms_named(job.replica_name(WITHOUT_TOOLS))


def test_a_powered_off_vm_needs_no_quiescing(lab: LabState, store: Store) -> None:
    prod, _ = inventories(lab)
    target = vm(prod, WITHOUT_TOOLS)
    with client(lab, "production") as c:
        power.power_off(c, target.moref)
        try:
            job = quiescing_job(lab, "Guest processing: off", QuiesceFailure.FAIL)
            job = replace(
                job,
                source=lab_job(lab, "x", [WITHOUT_TOOLS]).source,
                settings=replace(job.settings, replica_suffix="_off"),
            )
            store.jobs.add(job)
            session = run_job(store, job.name)
        finally:
            power.power_on(c, target.moref)
    assert session.status == RunStatus.SUCCESS, session.log
    log = vm_log(store, session.id, WITHOUT_TOOLS)
    assert (
        Severity.INFO,
        "guest processing: the VM is powered off, its disks need no quiescing",
    ) in log


def test_a_guest_that_cannot_be_quiesced_fails_only_the_quiesced_snapshot(lab: LabState) -> None:
    prod, _ = inventories(lab)
    target = vm(prod, QUIESCE_FAILS)
    assert target.power_state == "poweredOn" and target.tools_running
    with client(lab, "production") as c:
        with pytest.raises(VSphereQuiesceError) as failed:
            snapshots.create_snapshot(c, target.moref, "q", "", quiesce=True, vm_name=target.name)
        assert failed.value.fault == "ApplicationQuiesceFault"
        assert failed.value.reason == ESXI_QUIESCE_FAULT
        assert str(failed.value).startswith(
            f"snapshot VM {target.moref} ({QUIESCE_FAILS}) as 'q': VMware Tools could not "
            f"quiesce the guest: {ESXI_QUIESCE_FAULT}"
        )
        assert snapshots.list_snapshots(c, target.moref) == ()  # nothing was made
        plain = snapshots.create_snapshot(c, target.moref, "crash-consistent", "")
        try:
            (taken,) = snapshots.list_snapshots(c, target.moref)
            assert taken.moref == plain and not taken.quiesced
        finally:
            snapshots.remove_snapshot(c, target.moref, plain)
        # The other guests are quiesced as before.
        other = vm(prod, WITH_TOOLS).moref
        quiesced = snapshots.create_snapshot(c, other, "q", "", quiesce=True)
        try:
            assert snapshots.find_snapshot(c, other, quiesced).quiesced
        finally:
            snapshots.remove_snapshot(c, other, quiesced)


def test_continue_after_a_failed_quiesced_snapshot_replicates_crash_consistent(
    lab: LabState, store: Store, tmp_path: Path
) -> None:
    job = quiescing_job(
        lab, "Quiescing fails: continue", QuiesceFailure.CONTINUE, (WITH_TOOLS, QUIESCE_FAILS), "q"
    )
    store.jobs.add(job)
    copies = source_copies(lab, [WITH_TOOLS, QUIESCE_FAILS], tmp_path / "copies")
    session = run_job(store, job.name)
    assert session.status == RunStatus.WARNING
    statuses = {t.vm_name: t.status for t in store.sessions.tasks(session.id)}
    assert statuses == {WITH_TOOLS: RunStatus.SUCCESS, QUIESCE_FAILS: RunStatus.WARNING}

    log = vm_log(store, session.id, QUIESCE_FAILS)
    assert [m for s, m in log if s != Severity.INFO] == [
        f"application-aware processing failed: VMware Tools could not quiesce the guest "
        f"({ESXI_QUIESCE_FAULT}); the snapshot is crash-consistent (the job continues without "
        "quiescing)"
    ]
    taken = [m for _, m in log if m.startswith(f"snapshot '{SNAPSHOT_PREFIX}")]
    assert len(taken) == 1 and taken[0].endswith(" taken (crash-consistent)")
    assert any(
        "quiesced through VMware Tools" in m for _, m in vm_log(store, session.id, WITH_TOOLS)
    )
    # Each VM has one restore point of this session, reading exactly like its source disks.
    check_points(lab, store, job.name, copies)
    for replica in store.replicas.list(job.name):
        (point,) = store.replicas.points(replica.id)
        assert point.session_id == session.id
    assert our_snapshots(lab, QUIESCE_FAILS) == []
    assert our_snapshots(lab, WITH_TOOLS) == []


def test_fail_after_a_failed_quiesced_snapshot_leaves_source_and_replica_as_they_were(
    lab: LabState, store: Store
) -> None:
    job = quiescing_job(
        lab, "Quiescing fails: fail", QuiesceFailure.FAIL, (WITH_TOOLS, QUIESCE_FAILS), "q"
    )
    expected_error = (
        f"{QUIESCE_FAILS}: application-aware processing failed: VMware Tools could not quiesce "
        f"the guest ({ESXI_QUIESCE_FAULT}); no snapshot was kept (the job requires a quiesced "
        "snapshot: set its guest processing to continue crash-consistent, or find in the VM's "
        "event log why the guest could not be quiesced)"
    )

    def failed_run() -> int:
        session = run_job(store, job.name)
        assert session.status == RunStatus.FAILED
        statuses = {t.vm_name: t.status for t in store.sessions.tasks(session.id)}
        assert statuses == {WITH_TOOLS: RunStatus.SUCCESS, QUIESCE_FAILS: RunStatus.FAILED}
        log = vm_log(store, session.id, QUIESCE_FAILS)
        assert [m for s, m in log if s != Severity.INFO] == [expected_error]
        assert not [m for _, m in log if m.startswith("snapshot ")]  # none was taken
        assert our_snapshots(lab, QUIESCE_FAILS) == []
        prod, _ = inventories(lab)
        assert (
            store.run_snapshots.of_vm(lab.production.address, vm(prod, QUIESCE_FAILS).moref) == []
        )
        return session.id

    # A first run: nothing is made for the VM at the DR site.
    store.jobs.add(job)
    failed_run()
    replicas = {r.vm_name: r for r in store.replicas.list(job.name)}
    assert replicas[QUIESCE_FAILS].replica_moref is None
    assert store.replicas.points(replicas[QUIESCE_FAILS].id) == []
    _, dr = inventories(lab)
    assert not dr.vms_named(job.replica_name(QUIESCE_FAILS))

    # Once the VM has a replica (a run without quiescing), a failed run leaves it as it was.
    store.jobs.update(replace(job, settings=replace(job.settings, quiesce=False)))
    assert run_job(store, job.name).status == RunStatus.SUCCESS
    replica = store.replicas.get(replicas[QUIESCE_FAILS].id)
    points = store.replicas.points(replica.id)
    (point,) = points
    _, dr = inventories(lab)
    replica_vm = vm(dr, job.replica_name(QUIESCE_FAILS))
    chain = DatastorePath.parse(point.disks[0].chain or "")
    ds = next(d for d in dr.datastores if d.name == chain.datastore)
    folder = Path(ds.url) / chain.path.rsplit("/", 1)[0]
    files = folder_state(folder)
    assert any(name.endswith(".vmdk") for name in files)

    store.jobs.update(job)
    session_id = failed_run()
    assert store.replicas.points(replica.id) == points
    assert store.replicas.get(replica.id) == replica
    _, dr = inventories(lab)
    after = vm(dr, job.replica_name(QUIESCE_FAILS))
    assert after.current_snapshot == replica_vm.current_snapshot == point.snapshot_moref
    assert [s.moref for s in after.all_snapshots()] == [s.moref for s in replica_vm.all_snapshots()]
    assert after.disks == replica_vm.disks
    assert folder_state(folder) == files
    # The VM that could be quiesced went on: its restore point of this run is there.
    with_tools = {r.vm_name: r for r in store.replicas.list(job.name)}[WITH_TOOLS]
    latest = store.replicas.latest_point(with_tools.id)
    assert latest is not None and latest.session_id == session_id
