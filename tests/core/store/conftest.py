"""A real SQLite database file in tmp_path, and the infrastructure the example job refers to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.model.infra import BackupProxy, ManagedServer, Repository, ServerKind
from core.model.job import ReplicationJob
from core.model.jobfile import load_job
from core.model.secret import Credential, Secret
from core.store import Store

EXAMPLE = Path(__file__).parents[1] / "model" / "example_job.yaml"
PASSWORD = "Sup3r$ecret-Pa55word!"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "replicadesk.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store.open(db_path)
    yield s
    s.close()


def add_infrastructure(store: Store) -> None:
    store.credentials.put(Credential("prod-admin", Secret(PASSWORD), "vCenter admin"))
    store.servers.add(
        ManagedServer(
            ServerKind.VCENTER, "vc-prod.example.net", "administrator@vsphere.local", "prod-admin"
        )
    )
    store.servers.add(
        ManagedServer(ServerKind.VCENTER, "vc-dr.example.net", "administrator@vsphere.local")
    )
    for name in ("proxy-prod-1", "proxy-prod-2"):
        store.proxies.add(BackupProxy(name, "10.0.0.11", "prod"))
    store.proxies.add(BackupProxy("proxy-dr-1", "10.1.0.11", "dr"))
    store.repositories.add(
        Repository("metadata-prod", "/srv/replicadesk/meta", "prod", "proxy-prod-1")
    )


@pytest.fixture
def example_job() -> ReplicationJob:
    return load_job(EXAMPLE)
