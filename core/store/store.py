"""`Store`: the one object the CLI, the service and the console open to reach the database.

    store = Store.open(Path("~/.local/share/replicadesk/replicadesk.db").expanduser())
    store.servers.add(server); store.jobs.get("SQL tier"); store.locks.hold([...], "run")

Opening migrates the schema (copying the file first when it is not new). A Store may be used
from many threads; each process opens its own (a child forked with one open reconnects).
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from core.store.connection import (
    DEFAULT_BUSY_TIMEOUT,
    Connection,
    latest_version,
    migrate,
    schema_version,
)
from core.store.hotadd import HotAddDisks
from core.store.infra import Credentials, Proxies, Repositories, Servers
from core.store.jobs import Jobs
from core.store.locks import Locks
from core.store.plans import Plans, PlanSessions
from core.store.replicas import Replicas, RunSnapshots
from core.store.secrets import SecretBox
from core.store.sessions import Sessions


class Store:
    def __init__(
        self,
        conn: Connection,
        key_file: Path,
        backup: Path | None = None,
    ) -> None:
        self.path = conn.path
        self.migration_backup = backup  # the copy made before this open's migration, if any
        self._conn = conn
        self.secrets = SecretBox(key_file)
        self.credentials = Credentials(conn, self.secrets)
        self.servers = Servers(conn)
        self.proxies = Proxies(conn)
        self.repositories = Repositories(conn)
        self.jobs = Jobs(conn)
        self.sessions = Sessions(conn)
        self.replicas = Replicas(conn)
        self.run_snapshots = RunSnapshots(conn)
        self.hotadd_disks = HotAddDisks(conn)
        self.locks = Locks(conn)
        self.plans = Plans(conn)
        self.plan_sessions = PlanSessions(conn)

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        key_file: Path | None = None,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> Store:
        """Open (creating if needed) and migrate the database; the secrets key defaults to
        `<database>.key` beside it."""
        conn = Connection(path, busy_timeout)
        try:
            backup = migrate(conn)
        except BaseException:
            conn.close()
            raise
        return cls(conn, key_file or path.with_name(path.name + ".key"), backup)

    @property
    def schema_version(self) -> int:
        return schema_version(self._conn.db())

    @staticmethod
    def latest_schema_version() -> int:
        return latest_version()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
