"""A running two-site lab for the job tests, and a store set up on it as an administrator would.

One lab per test module (starting one takes a few seconds); each test gets its own store, so
jobs, sessions and replicas do not leak between tests. Replicas on the DR datastore do: tests
use their own job names and VMs, or look only at what their own runs wrote.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.lab.lab import Lab, LabState
from core.lab.register import register_lab
from core.lab.topology import LabOptions
from core.store.store import Store


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    folder = tmp_path_factory.mktemp("lab")
    with Lab(LabOptions(vms=6, disk_mib=(16, 40)), folder=folder, wan=os.geteuid() == 0) as state:
        yield state


@pytest.fixture
def store(tmp_path: Path, lab: LabState) -> Iterator[Store]:
    with Store.open(tmp_path / "replicadesk.db") as s:
        register_lab(s, lab, tmp_path / "metadata")
        yield s
