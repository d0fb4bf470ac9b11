"""Bandwidth estimation from the lab's real sessions and a CBT probe; backups from replicas
refused with the reason."""

from __future__ import annotations

import datetime as dt

import pytest

from core.errors import ReplicaBackupRefusedError
from core.lab.register import inventories
from core.model.runs import REPLICATION_TRIGGERS
from core.model.schedule import BackupWindow
from core.planning.backup_source import check_backup_source
from core.planning.bandwidth import (
    MBIT,
    Link,
    Throttle,
    estimate,
    first_copy_hours,
    measure,
    probe_changes,
)
from tests.core.failover.conftest import ok
from tests.core.jobs.test_runner import churn_vm
from tests.core.plans.conftest import PlanLab

MIB = 1 << 20


def test_estimates_from_real_sessions(planlab: PlanLab) -> None:
    store = planlab.store
    churn_vm(planlab.lab, "dc01", 2 * MIB, seed=5)
    churn_vm(planlab.lab, "web-01", 1 * MIB, seed=6)
    ok(store, planlab.job)
    runs = sorted(
        (s for s in store.sessions.list(planlab.job) if s.trigger in REPLICATION_TRIGGERS),
        key=lambda s: s.started,
    )
    m = measure(store, planlab.job)
    assert m.sessions == len(runs) == 3
    assert m.full_bytes == runs[0].stats.read_bytes > 0
    assert m.changed_bytes == sum(s.stats.read_bytes for s in runs[1:]) >= 3 * MIB
    assert m.span_seconds == (runs[-1].started - runs[0].started).total_seconds()
    sent = sum(s.stats.transferred_bytes for s in runs)
    assert m.ratio == sent / sum(s.stats.read_bytes for s in runs)

    link = Link(100.0)
    e = estimate(store, planlab.job, link, start=dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC))
    rpo = 24 * 3600
    assert e.changed_per_rpo == pytest.approx(m.change_rate * rpo)
    assert e.required_mbit == pytest.approx(m.change_rate * m.ratio / MBIT)
    assert e.meets_rpo == (e.required_mbit <= 100.0) and e.worst_mbit == 100.0
    seed_bytes = m.full_bytes * m.ratio
    assert e.first_copy_hours == pytest.approx(seed_bytes / (100 * MBIT) / 3600)
    # One RPO interval's changes at the lab's rate (runs seconds apart), over 100 Mbit/s.
    assert e.run_hours == pytest.approx(e.changed_per_rpo * m.ratio / (100 * MBIT) / 3600)
    assert e.meets_rpo and e.fits_window == (e.run_hours * 3600 <= rpo)
    # Over a 1 Mbit/s link the same changes no longer keep up.
    assert e.required_mbit > 1.0
    tight = estimate(store, planlab.job, Link(1.0))
    assert not tight.meets_rpo and not tight.fits_window

    # A throttle at night and a window of 22:00-06:00: the seed waits for the window.
    night = frozenset({22, 23, 0, 1, 2, 3, 4, 5})
    window = BackupWindow((night,) * 7)
    slow = Link(100.0, (Throttle(1.0, frozenset(range(0, 6))),))
    noon = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)
    hours = first_copy_hours(seed_bytes, noon, window, slow)
    assert hours is not None and hours > 10  # nothing is sent before 22:00
    assert Link(10.0, sharing_jobs=2).rate_at(noon) == 5 * MBIT


def test_cbt_probe_counts_changes_without_copying(planlab: PlanLab) -> None:
    store = planlab.store
    prod, _ = inventories(planlab.lab)
    churn_vm(planlab.lab, "db [primary]", 1 * MIB, seed=9)
    before_sessions = len(store.sessions.list(planlab.job))
    snaps = {v.name: v.snapshots for v in prod.vms}
    m = probe_changes(store, planlab.job)
    assert m.source == "cbt probe" and m.changed_bytes >= 1 * MIB
    prod_after, _ = inventories(planlab.lab)
    assert {v.name: v.snapshots for v in prod_after.vms} == snaps  # the probe snapshots are gone
    assert len(store.sessions.list(planlab.job)) == before_sessions  # nothing was replicated
    assert [p.number for p in store.replicas.points(planlab.replicas["db [primary]"].id)][-1] >= 2
    for r in planlab.replicas.values():
        assert store.run_snapshots.of_vm(r.source_server, r.vm_moref) == []


def test_backup_from_a_replica_is_refused(planlab: PlanLab) -> None:
    store = planlab.store
    r = planlab.replicas["dc01"]
    with pytest.raises(ReplicaBackupRefusedError) as err:
        check_backup_source(store, r.replica_name)
    text = str(err.value)
    assert text.startswith("A backup of 'dc01_replica' is refused: it is a replica VM")
    assert "changed block tracking (CBT) cannot be used" in text and "'dc01'" in text
    with pytest.raises(ReplicaBackupRefusedError):
        check_backup_source(store, r.replica_moref or "")
    assert check_backup_source(store, "dc01") == ""
