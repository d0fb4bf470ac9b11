"""Servers, credentials, proxies and repositories in a real database; secrets at rest."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.errors import AlreadyExistsError, InUseError, NotFoundError, SecretError
from core.model.infra import BackupProxy, ManagedServer, Repository, ServerKind, TransportMode
from core.model.job import ReplicationJob
from core.model.secret import Credential, Secret
from core.mover.tls import TlsFiles
from core.store import Store

from .conftest import PASSWORD, add_infrastructure


def test_round_trips(store: Store) -> None:
    add_infrastructure(store)
    server = store.servers.get("vc-prod.example.net")
    assert server == ManagedServer(
        ServerKind.VCENTER, "vc-prod.example.net", "administrator@vsphere.local", "prod-admin"
    )
    assert [s.address for s in store.servers.list()] == ["vc-dr.example.net", "vc-prod.example.net"]
    tls = TlsFiles(Path("/etc/rd/proxy.pem"), Path("/etc/rd/proxy.key"), Path("/etc/rd/ca.pem"))
    proxy = BackupProxy(
        "proxy-dr-2",
        "fd00::5",
        "dr",
        7000,
        8,
        (TransportMode.NETWORK, TransportMode.HOTADD),
        tls,
        "x",
    )
    store.proxies.add(proxy)
    assert store.proxies.get("proxy-dr-2") == proxy
    assert [p.name for p in store.proxies.list(site="dr")] == ["proxy-dr-1", "proxy-dr-2"]
    repo = store.repositories.get("metadata-prod")
    assert repo == Repository("metadata-prod", "/srv/replicadesk/meta", "prod", "proxy-prod-1")
    assert store.credentials.get("prod-admin").secret.reveal() == PASSWORD
    assert store.credentials.names() == ["prod-admin"]


def test_updates(store: Store) -> None:
    add_infrastructure(store)
    changed = ManagedServer(
        ServerKind.VCENTER, "vc-dr.example.net", "svc-replicadesk", "prod-admin", 8443
    )
    store.servers.update(changed)
    assert store.servers.get("vc-dr.example.net") == changed
    pinned = ManagedServer(
        ServerKind.VCENTER, "vc-dr.example.net", "svc-replicadesk", "prod-admin", 8443,
        thumbprint="ab" * 32,
    )  # fmt: skip
    store.servers.update(pinned)
    assert store.servers.get("vc-dr.example.net") == pinned and pinned.pinned
    store.proxies.update(BackupProxy("proxy-dr-1", "10.1.0.12", "dr", max_tasks=2))
    assert store.proxies.get("proxy-dr-1").max_tasks == 2
    store.repositories.update(Repository("metadata-prod", "/data/meta", "prod", None))
    assert store.repositories.get("metadata-prod").proxy is None
    store.credentials.put(Credential("prod-admin", Secret("rotated-0nce"), "rotated"))
    assert store.credentials.get("prod-admin").secret == Secret("rotated-0nce")
    with pytest.raises(NotFoundError) as err:
        store.servers.update(ManagedServer(ServerKind.ESXI, "esx9", "root"))
    assert str(err.value) == "There is no server 'esx9'"


def test_duplicates_missing_references_and_unknown_names(store: Store) -> None:
    add_infrastructure(store)
    with pytest.raises(AlreadyExistsError) as err:
        store.servers.add(ManagedServer(ServerKind.ESXI, "vc-dr.example.net", "root"))
    assert str(err.value) == "A server named 'vc-dr.example.net' already exists"
    with pytest.raises(AlreadyExistsError):
        store.proxies.add(BackupProxy("proxy-dr-1", "h", "dr"))
    with pytest.raises(NotFoundError) as err:
        store.servers.add(ManagedServer(ServerKind.ESXI, "esx1", "root", "no-such-cred"))
    assert str(err.value) == "There is no credential 'no-such-cred'"
    with pytest.raises(NotFoundError) as err:
        store.repositories.add(Repository("r2", "/m", "dr", "no-such-proxy"))
    assert str(err.value) == "There is no proxy 'no-such-proxy'"
    for lookup in (
        store.servers.get,
        store.proxies.get,
        store.repositories.get,
        store.credentials.get,
    ):
        with pytest.raises(NotFoundError):
            lookup("nothing")


def test_removal_refused_while_in_use(store: Store, example_job: ReplicationJob) -> None:
    add_infrastructure(store)
    store.jobs.add(example_job)
    cases = [
        (
            store.credentials.remove,
            "prod-admin",
            "Credential 'prod-admin' is still used by server 'vc-prod.example.net'",
        ),
        (
            store.servers.remove,
            "vc-dr.example.net",
            "Server 'vc-dr.example.net' is still used by job 'SQL tier #1 (prod)'",
        ),
        (
            store.proxies.remove,
            "proxy-prod-1",
            "Proxy 'proxy-prod-1' is still used by repository 'metadata-prod'",
        ),
        (
            store.proxies.remove,
            "proxy-prod-2",
            "Proxy 'proxy-prod-2' is still used by job 'SQL tier #1 (prod)'",
        ),
        (
            store.repositories.remove,
            "metadata-prod",
            "Repository 'metadata-prod' is still used by job 'SQL tier #1 (prod)'",
        ),
    ]
    for remove, name, message in cases:
        with pytest.raises(InUseError) as err:
            remove(name)
        assert str(err.value) == message
    store.proxies.remove("proxy-dr-1")  # automatic target proxies: not named by the job
    store.jobs.remove(example_job.name)
    store.repositories.remove("metadata-prod")
    store.proxies.remove("proxy-prod-1")
    store.servers.remove("vc-prod.example.net")
    store.credentials.remove("prod-admin")
    assert store.credentials.names() == [] and [s.address for s in store.servers.list()] == [
        "vc-dr.example.net"
    ]


def test_passwords_are_not_in_the_database_files(store: Store, db_path: Path) -> None:
    add_infrastructure(store)
    key_file = db_path.with_name("replicadesk.db.key")
    assert key_file.stat().st_mode & 0o777 == 0o600
    files = [p for p in db_path.parent.iterdir() if p != key_file]
    assert any(
        p.name.endswith("-wal") for p in files
    )  # the WAL is checked too, not only the main file
    for path in files:
        data = path.read_bytes()
        assert PASSWORD.encode() not in data and PASSWORD.encode("utf-16-le") not in data
    store.close()
    assert PASSWORD.encode() not in db_path.read_bytes()
    reopened = Store.open(db_path)
    assert reopened.credentials.get("prod-admin").secret.reveal() == PASSWORD
    reopened.close()


def test_a_key_file_at_a_given_path(db_path: Path, tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "secrets.key"
    with Store.open(db_path, key_file=key_file) as store:
        store.credentials.put(Credential("c", Secret("pw-1")))
        assert key_file.exists() and not db_path.with_name("replicadesk.db.key").exists()


def test_wrong_missing_and_exposed_key_files(db_path: Path) -> None:
    with Store.open(db_path) as store:
        store.credentials.put(Credential("dr-root", Secret("pw-1")))
    key_file = db_path.with_name("replicadesk.db.key")

    key_file.chmod(0o644)
    with Store.open(db_path) as store, pytest.raises(SecretError) as err:
        store.credentials.get("dr-root")
    assert (
        str(err.value) == f"Secrets key {key_file}: may be read by others (mode 0644): chmod 600 it"
    )

    key_file.unlink()
    with Store.open(db_path) as store:
        with pytest.raises(SecretError) as err:
            store.credentials.get("dr-root")
        assert str(err.value) == (
            f"Secrets key {key_file}: is missing: stored passwords cannot be read; enter them again"
        )
        store.credentials.put(Credential("other", Secret("pw-2")))  # makes a new key
        with pytest.raises(SecretError) as err:
            store.credentials.get("dr-root")
        assert str(err.value) == (
            f"Secrets key {key_file}: cannot decrypt the password of credential 'dr-root': "
            "it was stored with another key"
        )
        assert store.credentials.get("other").secret.reveal() == "pw-2"
    assert os.stat(key_file).st_mode & 0o777 == 0o600
