"""A lab of its own for the failover plan tests, with 10 small VMs replicated once per module.

Disks are 8-16 MiB, so replication and failover stay fast; the job keeps two restore points
per VM (a point-in-time run needs an older one). Tests leave every replica Ready again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.lab.lab import Lab, LabState
from core.lab.register import lab_job, register_lab
from core.lab.topology import LabOptions, vm_names
from core.model.replicas import Replica
from core.store.store import Store
from tests.core.failover.conftest import ok

JOB = "Plan VMs"
VMS = vm_names(10)


@dataclass(frozen=True)
class PlanLab:
    lab: LabState
    store: Store
    job: str
    replicas: dict[str, Replica]  # by source VM name
    first_run: int  # session ids of the two runs
    second_run: int


@pytest.fixture(scope="module")
def planlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanLab]:
    folder = tmp_path_factory.mktemp("lab")
    work = tmp_path_factory.mktemp("store")
    options = LabOptions(vms=12, disk_mib=(8, 16))
    with (
        Lab(options, folder=folder, wan=os.geteuid() == 0) as state,
        Store.open(work / "replicadesk.db") as store,
    ):
        register_lab(store, state, work / "metadata")
        store.jobs.add(lab_job(state, JOB, VMS))
        first = ok(store, JOB)
        second = ok(store, JOB)
        replicas = {r.vm_name: r for r in store.replicas.list(JOB)}
        assert sorted(replicas) == sorted(VMS)
        yield PlanLab(state, store, JOB, replicas, first, second)


def replica_folders(planlab: PlanLab) -> dict[str, Path]:
    from tests.core.failover.conftest import replica_folder

    return {
        name: replica_folder(planlab.lab, planlab.store, r) for name, r in planlab.replicas.items()
    }
