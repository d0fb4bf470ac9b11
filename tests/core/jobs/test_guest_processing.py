"""Guest processing on the lab: application-aware processing (a quiesced snapshot through VMware
Tools) and the job's policy when the guest cannot be quiesced. The lab's "web 02 (canary)" runs
without VMware Tools (LabOptions.no_tools); its other guests run Tools while powered on."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from core.jobs.runner import run_job
from core.jobs.vmtask import SNAPSHOT_PREFIX
from core.lab.lab import Lab, LabState
from core.lab.register import inventories, lab_job
from core.lab.topology import LabOptions
from core.model.job import QuiesceFailure, ReplicationJob
from core.model.runs import RunStatus, Severity
from core.store.store import Store
from core.vsphere import power
from tests.core.jobs.test_runner import check_points, source_copies, vm
from tests.core.jobs.test_runner_failures import client

WITH_TOOLS = "dc01"
WITHOUT_TOOLS = "web 02 (canary)"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    folder = tmp_path_factory.mktemp("lab-guest")
    options = LabOptions(vms=2, disk_mib=(8, 16), no_tools=(WITHOUT_TOOLS,))
    with Lab(options, folder=folder, wan=False) as state:
        yield state


def quiescing_job(lab: LabState, name: str, policy: QuiesceFailure) -> ReplicationJob:
    """A job over both VMs; its own replica suffix keeps its replicas apart from other tests'."""
    job = lab_job(lab, name, [WITH_TOOLS, WITHOUT_TOOLS], keep=2)
    settings = replace(
        job.settings, quiesce=True, quiesce_failure=policy, replica_suffix=f"_{policy}"
    )
    return replace(job, settings=settings)


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
