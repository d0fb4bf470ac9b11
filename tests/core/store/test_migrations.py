"""Schema migrations on a real database file: from empty, from an older version (a backup copy
is made first and the data survives), a newer schema, a failed migration, not a database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

from core.errors import MigrationError, SchemaTooNewError, StoreError
from core.model.infra import ManagedServer, ServerKind
from core.store import Store
from core.store.migrations import migrations, names


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_new_database_gets_the_latest_schema_without_a_backup(db_path: Path) -> None:
    with Store.open(db_path) as store:
        assert store.schema_version == Store.latest_schema_version() == len(names()) == 12
        assert store.migration_backup is None
    assert {
        "servers",
        "jobs",
        "sessions",
        "task_sessions",
        "replicas",
        "point_disks",
        "locks",
    } <= tables(db_path)
    assert list(db_path.parent.glob("*.bak")) == []
    assert db_path.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # Opening again changes nothing.
    with Store.open(db_path) as store:
        assert store.schema_version == 12 and store.migration_backup is None


def test_an_older_schema_is_copied_then_migrated_and_keeps_its_data(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    old = Database(db_path)
    migrations.apply(old, stop_before="0003_sessions")  # the schema of an older release
    old.table("servers").insert(
        {
            "address": "esx-dr-1.example.net",
            "kind": "esxi",
            "port": 443,
            "protocol": "https",
            "user": "root",
            "credential": None,
            "description": "DR host",
            "added_at": "2026-01-01T00:00:00.000000+00:00",
        }
    )
    old.close()
    assert "sessions" not in tables(db_path)

    with Store.open(db_path) as store:
        assert store.schema_version == 12
        backup = store.migration_backup
        assert backup is not None and backup.name.startswith("replicadesk.db.v2-")
        assert store.servers.get("esx-dr-1.example.net") == ManagedServer(
            ServerKind.ESXI, "esx-dr-1.example.net", "root", description="DR host"
        )
        # An https server of an older release keeps no thumbprint: not pinned until trusted.
        assert not store.servers.get("esx-dr-1.example.net").pinned
    # The copy is the database as it was: version 2, the server, no sessions table.
    assert backup.stat().st_mode & 0o777 == 0o600
    assert "sessions" not in tables(backup) and "servers" in tables(backup)
    copy = Database(backup)
    assert len(migrations.applied(copy)) == 2
    assert [r["address"] for r in copy.query("SELECT address FROM servers")] == [
        "esx-dr-1.example.net"
    ]
    copy.close()


def test_a_failed_migration_is_rolled_back_and_names_the_copy(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    old = Database(db_path)
    migrations.apply(old, stop_before="0003_sessions")
    old.execute("CREATE TABLE sessions (id INTEGER PRIMARY KEY)")  # in the way of 0003
    old.close()
    with pytest.raises(MigrationError) as err:
        Store.open(db_path)
    message = str(err.value)
    assert message.startswith(f"Database {db_path}: upgrading the schema failed at 0003_sessions: ")
    assert "already exists" in message and ".v2-" in message
    check = Database(db_path)
    assert len(migrations.applied(check)) == 2  # 0003 left nothing behind
    assert "task_sessions" not in tables(db_path)
    check.close()


def test_a_newer_schema_is_refused(db_path: Path) -> None:
    Store.open(db_path).close()
    db = Database(db_path)
    db.table("_sqlite_migrations").insert(
        {"migration_set": "replicadesk", "name": "0099_future", "applied_at": "2030-01-01"}
    )
    db.close()
    with pytest.raises(SchemaTooNewError) as err:
        Store.open(db_path)
    assert str(err.value) == (
        f"Database {db_path} has schema version 13, newer than this ReplicaDesk knows (12): "
        "upgrade ReplicaDesk"
    )


def test_a_file_that_is_not_a_database(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is a text file, not SQLite " * 100)
    with pytest.raises(StoreError) as err:
        Store.open(db_path)
    assert str(err.value).startswith(f"Database {db_path}: ")
    assert "not a database" in str(err.value)
