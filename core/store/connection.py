"""The SQLite connection: per-thread handles, WAL, transactions, and schema migration.

Every thread gets its own sqlite3 connection (wrapped in a sqlite-utils `Database`) to the one
database file, and every process opens its own; WAL lets readers run beside the one writer, and
the busy timeout makes a writer wait for another instead of failing. Writes take the write lock
up front (`BEGIN IMMEDIATE`), so a read-then-write transaction never dies of a lock upgrade.
After a fork the child drops the parent's connections and opens its own.

Before pending migrations run on an existing database, the file is copied beside it (SQLite's
online backup, consistent even while others have it open) as
`<name>.v<old version>-<UTC time>.bak`; Vorta does the same. Migrations run under an exclusive
file lock, so two processes starting at once do not both migrate.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database

from core.errors import MigrationError, SchemaTooNewError, StoreError
from core.store.migrations import migrations, names

DEFAULT_BUSY_TIMEOUT = 30.0  # seconds a writer waits for another before giving up


def _create_private(path: Path) -> None:
    """Create the file readable by its owner only (it holds encrypted secrets and job details)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


class Connection:
    def __init__(self, path: Path, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        _create_private(path)

    def _connect(self) -> Database:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # only close() touches another thread's connection
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")  # a restore point record must survive
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as e:
            raise StoreError(self.path, f"cannot be opened as a database: {e}") from None
        with self._lock:
            self._all.append(conn)
        return Database(conn, execute_plugins=False)

    def db(self) -> Database:
        """This thread's handle."""
        if os.getpid() != self._pid:  # forked: the parent's connections are not ours to use
            self._local = threading.local()
            with self._lock:
                self._all = []
            self._pid = os.getpid()
        db: Database | None = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
        return db

    @contextmanager
    def write(self) -> Iterator[Database]:
        """A write transaction; nested calls become savepoints of the outer one."""
        db = self.db()
        if db.conn.in_transaction:
            with db.atomic():
                yield db
            return
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise
        db.conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[Database]:
        """A consistent snapshot across several queries."""
        db = self.db()
        if db.conn.in_transaction:
            yield db
            return
        db.conn.execute("BEGIN")
        try:
            yield db
        finally:
            if db.conn.in_transaction:
                db.conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()


def schema_version(db: Database) -> int:
    return len(migrations.applied(db))


def latest_version() -> int:
    return len(names())


def _backup(conn: Connection, version: int) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    base = conn.path.with_name(f"{conn.path.name}.v{version}-{stamp}.bak")
    target, n = base, 1
    while target.exists():
        n += 1
        target = base.with_name(f"{base.stem}-{n}.bak")
    _create_private(target)
    dst = sqlite3.connect(target)
    try:
        conn.db().conn.backup(dst)
    finally:
        dst.close()
    return target


def migrate(conn: Connection) -> Path | None:
    """Bring the schema up to date; returns the backup copy made first, if one was needed."""
    lock_path = conn.path.with_name(conn.path.name + ".migrate-lock")
    _create_private(lock_path)
    with open(lock_path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        db = conn.db()
        try:
            applied = [m.name for m in migrations.applied(db)]
        except sqlite3.DatabaseError as e:
            raise StoreError(conn.path, f"is not a ReplicaDesk database: {e}") from None
        known = names()
        if any(name not in known for name in applied):
            raise SchemaTooNewError(conn.path, len(applied), len(known))
        pending = migrations.pending(db)
        if not pending:
            return None
        backup = _backup(conn, len(applied)) if applied else None
        try:
            migrations.apply(db)
        except (sqlite3.Error, ValueError) as e:
            done = {m.name for m in migrations.applied(db)}
            failed = next((m.name for m in pending if m.name not in done), "?")
            raise MigrationError(
                conn.path, failed, e, backup or "(none: the database was new)"
            ) from e
        return backup
