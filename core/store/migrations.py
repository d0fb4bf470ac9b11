"""The database schema, as numbered migrations (sqlite-utils `Migrations`).

A migration, once released, never changes: a new schema is a new function appended at the end.
The schema version of a database is the number of this set's migrations applied to it.
`core.store.connection` copies the database file before applying any pending migration.

Tables (every time is ISO 8601 UTC text; JSON columns hold lists or job documents):

    credentials     name PK, secret (Fernet token), description
    servers         address PK, kind, port, protocol, user, credential -> credentials,
                    thumbprint (SHA-256 of the accepted certificate; '' = not pinned)
    proxies         name PK, address, port, site, max_tasks, transport_modes (JSON), tls_*,
                    vm, vm_server (the proxy's own VM, for hot-add)
    repositories    name PK, path, site, proxy -> proxies
    jobs            name PK, definition (the job document, JSON), enabled, servers, repository
    schedule_state  job PK -> jobs, last_run, last_status, next_run, retries_done, retry_at
    sessions        id PK, job, trigger, attempt, status, times, bytes, bottleneck, owner
    task_sessions   id PK, session_id -> sessions, vm, status, times, bytes, bottleneck
    session_log     id PK, session_id -> sessions, task_id -> task_sessions, time, severity
    replicas        id PK, (job, source_server, vm_moref) unique, replica VM, target host, state
    restore_points  id PK, replica_id -> replicas, number (unique per replica), snapshot,
                    changed_bytes, transferred_bytes (what the run that made it changed and sent)
    point_disks     (point_id -> restore_points, disk_key) PK, capacity, CBT change ID
    locks           key PK, token, owner process (host, pid, start, boot), purpose, time
    run_snapshots   (server, vm_moref, snapshot_moref) PK, session_id: snapshots runs took
    hotadd_disks    id PK, server, proxy_vm, controller_key, unit_number, device_key, file,
                    source_vm, session_id: source disks runs attached to a proxy VM
    plans           name PK, definition (the plan document, JSON)
    plan_sessions   id PK, plan, action (run, undo, test), status, times, point_in_time, owner
    plan_steps      id PK, session_id -> plan_sessions, time, kind, item, replica_id, severity,
                    message, op_session (the replica operation's session), seconds
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

MIGRATION_SET = "replicadesk"
migrations = Migrations(MIGRATION_SET)


def _sql(db: Database, script: str) -> None:
    # One statement at a time: executescript() would COMMIT the migration's transaction.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


@migrations(name="0001_infrastructure")
def m0001_infrastructure(db: Database) -> None:
    _sql(
        db,
        """
        CREATE TABLE credentials (
            name TEXT PRIMARY KEY,
            secret BLOB NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            updated_at TEXT NOT NULL
        );
        CREATE TABLE servers (
            address TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('vcenter', 'esxi')),
            port INTEGER NOT NULL,
            protocol TEXT NOT NULL,
            user TEXT NOT NULL,
            credential TEXT REFERENCES credentials(name) ON DELETE RESTRICT,
            description TEXT NOT NULL DEFAULT '',
            added_at TEXT NOT NULL
        );
        CREATE TABLE proxies (
            name TEXT PRIMARY KEY,
            address TEXT NOT NULL,
            port INTEGER NOT NULL,
            site TEXT NOT NULL,
            max_tasks INTEGER NOT NULL CHECK (max_tasks > 0),
            transport_modes TEXT NOT NULL,
            tls_cert TEXT,
            tls_key TEXT,
            tls_ca TEXT,
            description TEXT NOT NULL DEFAULT '',
            added_at TEXT NOT NULL
        );
        CREATE TABLE repositories (
            name TEXT PRIMARY KEY,
            path TEXT NOT NULL,
            site TEXT NOT NULL,
            proxy TEXT REFERENCES proxies(name) ON DELETE RESTRICT,
            description TEXT NOT NULL DEFAULT '',
            added_at TEXT NOT NULL
        )
        """,
    )


@migrations(name="0002_jobs")
def m0002_jobs(db: Database) -> None:
    _sql(
        db,
        """
        CREATE TABLE jobs (
            name TEXT PRIMARY KEY,
            definition TEXT NOT NULL,
            enabled INTEGER NOT NULL,
            source_server TEXT NOT NULL REFERENCES servers(address) ON DELETE RESTRICT,
            target_server TEXT NOT NULL REFERENCES servers(address) ON DELETE RESTRICT,
            repository TEXT NOT NULL REFERENCES repositories(name) ON DELETE RESTRICT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE schedule_state (
            job TEXT PRIMARY KEY REFERENCES jobs(name) ON DELETE CASCADE ON UPDATE CASCADE,
            last_run TEXT,
            last_status TEXT,
            next_run TEXT,
            retries_done INTEGER NOT NULL DEFAULT 0,
            retry_at TEXT
        )
        """,
    )


@migrations(name="0003_sessions")
def m0003_sessions(db: Database) -> None:
    _sql(
        db,
        """
        CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            job TEXT NOT NULL,
            trigger TEXT NOT NULL,
            attempt INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL CHECK (status IN ('running', 'success', 'warning', 'failed')),
            started_at TEXT NOT NULL,
            ended_at TEXT,
            processed_bytes INTEGER NOT NULL DEFAULT 0,
            read_bytes INTEGER NOT NULL DEFAULT 0,
            transferred_bytes INTEGER NOT NULL DEFAULT 0,
            duration REAL NOT NULL DEFAULT 0,
            bottleneck TEXT,
            owner_host TEXT NOT NULL,
            owner_pid INTEGER NOT NULL,
            owner_started INTEGER NOT NULL,
            owner_boot TEXT NOT NULL
        );
        CREATE INDEX sessions_by_job ON sessions (job, started_at);
        CREATE INDEX sessions_running ON sessions (status) WHERE status = 'running';
        CREATE TABLE task_sessions (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            vm_moref TEXT NOT NULL,
            vm_name TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('running', 'success', 'warning', 'failed')),
            started_at TEXT NOT NULL,
            ended_at TEXT,
            processed_bytes INTEGER NOT NULL DEFAULT 0,
            read_bytes INTEGER NOT NULL DEFAULT 0,
            transferred_bytes INTEGER NOT NULL DEFAULT 0,
            duration REAL NOT NULL DEFAULT 0,
            bottleneck TEXT
        );
        CREATE INDEX task_sessions_by_session ON task_sessions (session_id);
        CREATE TABLE session_log (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            task_id INTEGER REFERENCES task_sessions(id) ON DELETE CASCADE,
            time TEXT NOT NULL,
            severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'error')),
            message TEXT NOT NULL
        );
        CREATE INDEX session_log_by_session ON session_log (session_id, task_id)
        """,
    )


@migrations(name="0004_replicas")
def m0004_replicas(db: Database) -> None:
    _sql(
        db,
        """
        CREATE TABLE replicas (
            id INTEGER PRIMARY KEY,
            job TEXT NOT NULL,
            source_server TEXT NOT NULL,
            vm_moref TEXT NOT NULL,
            vm_name TEXT NOT NULL,
            replica_name TEXT NOT NULL,
            replica_moref TEXT,
            target_server TEXT NOT NULL,
            target_host_moref TEXT,
            target_host_name TEXT,
            state TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (job, source_server, vm_moref)
        );
        CREATE TABLE restore_points (
            id INTEGER PRIMARY KEY,
            replica_id INTEGER NOT NULL REFERENCES replicas(id) ON DELETE CASCADE,
            number INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            snapshot_moref TEXT,
            session_id INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
            UNIQUE (replica_id, number)
        );
        CREATE TABLE point_disks (
            point_id INTEGER NOT NULL REFERENCES restore_points(id) ON DELETE CASCADE,
            disk_key INTEGER NOT NULL,
            capacity_bytes INTEGER NOT NULL,
            change_id TEXT,
            PRIMARY KEY (point_id, disk_key)
        )
        """,
    )


@migrations(name="0005_locks")
def m0005_locks(db: Database) -> None:
    _sql(
        db,
        """
        CREATE TABLE locks (
            key TEXT PRIMARY KEY,
            token TEXT NOT NULL,
            purpose TEXT NOT NULL,
            owner_host TEXT NOT NULL,
            owner_pid INTEGER NOT NULL,
            owner_started INTEGER NOT NULL,
            owner_boot TEXT NOT NULL,
            acquired_at TEXT NOT NULL
        );
        CREATE INDEX locks_by_token ON locks (token)
        """,
    )


@migrations(name="0006_run_points")
def m0006_run_points(db: Database) -> None:
    """Where each disk of a restore point lives (its chain folder on the target datastore and
    the point in that chain), and the source snapshots runs took (removed by the next run if a
    crash left them)."""
    _sql(
        db,
        """
        ALTER TABLE point_disks ADD COLUMN chain TEXT;
        ALTER TABLE point_disks ADD COLUMN chain_point INTEGER;
        CREATE TABLE run_snapshots (
            server TEXT NOT NULL,
            vm_moref TEXT NOT NULL,
            snapshot_moref TEXT NOT NULL,
            session_id INTEGER,
            created_at TEXT NOT NULL,
            PRIMARY KEY (server, vm_moref, snapshot_moref)
        )
        """,
    )


@migrations(name="0007_hotadd")
def m0007_hotadd(db: Database) -> None:
    """The proxy VM a backup proxy runs in (Virtual appliance mode), and the source disks runs
    attached to proxy VMs: recorded before the attach (with the SCSI slot it takes), so a disk a
    crashed run left attached is found and detached by the next run, and no other disk is."""
    _sql(
        db,
        """
        ALTER TABLE proxies ADD COLUMN vm TEXT;
        ALTER TABLE proxies ADD COLUMN vm_server TEXT;
        CREATE TABLE hotadd_disks (
            id INTEGER PRIMARY KEY,
            server TEXT NOT NULL,
            proxy_vm TEXT NOT NULL,
            controller_key INTEGER NOT NULL,
            unit_number INTEGER NOT NULL,
            device_key INTEGER,
            file TEXT NOT NULL,
            source_vm TEXT NOT NULL,
            session_id INTEGER,
            created_at TEXT NOT NULL,
            UNIQUE (server, proxy_vm, controller_key, unit_number)
        )
        """,
    )


@migrations(name="0008_guest_addresses")
def m0008_guest_addresses(db: Database) -> None:
    """The source VM's guest addresses per NIC as the last run saw them: re-IP at failover
    works from these when the production vCenter is gone."""
    _sql(db, "ALTER TABLE replicas ADD COLUMN guest_addresses TEXT")


@migrations(name="0009_failover_plans")
def m0009_failover_plans(db: Database) -> None:
    """Failover plans (their plan document) and plan sessions: a run, undo or test of a plan,
    with every step it took (time, kind, item, the replica operation's session)."""
    _sql(
        db,
        """
        CREATE TABLE plans (
            name TEXT PRIMARY KEY,
            definition TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE plan_sessions (
            id INTEGER PRIMARY KEY,
            plan TEXT NOT NULL,
            action TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('running', 'success', 'warning', 'failed')),
            started_at TEXT NOT NULL,
            ended_at TEXT,
            point_in_time TEXT,
            owner_host TEXT NOT NULL,
            owner_pid INTEGER NOT NULL,
            owner_started INTEGER NOT NULL,
            owner_boot TEXT NOT NULL
        );
        CREATE INDEX plan_sessions_by_plan ON plan_sessions (plan, started_at);
        CREATE TABLE plan_steps (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES plan_sessions(id) ON DELETE CASCADE,
            time TEXT NOT NULL,
            kind TEXT NOT NULL,
            item TEXT NOT NULL DEFAULT '',
            replica_id INTEGER,
            severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'error')),
            message TEXT NOT NULL,
            op_session INTEGER,
            seconds REAL NOT NULL DEFAULT 0
        );
        CREATE INDEX plan_steps_by_session ON plan_steps (session_id, id)
        """,
    )


@migrations(name="0010_stage_shares")
def m0010_stage_shares(db: Database) -> None:
    """Each run's and VM's busy share per stage (source, proxy, network, target): the line
    "Source 12% > Proxy 80% > Network 35% > Target 20%" the console shows."""
    _sql(
        db,
        """
        ALTER TABLE sessions ADD COLUMN busy TEXT;
        ALTER TABLE task_sessions ADD COLUMN busy TEXT
        """,
    )


@migrations(name="0011_point_bytes")
def m0011_point_bytes(db: Database) -> None:
    """Each restore point's bytes: what its run found changed in the VM's disks and what it
    transferred (after compression). Points made before this version show 0."""
    _sql(
        db,
        """
        ALTER TABLE restore_points ADD COLUMN changed_bytes INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE restore_points ADD COLUMN transferred_bytes INTEGER NOT NULL DEFAULT 0
        """,
    )


@migrations(name="0012_server_thumbprint")
def m0012_server_thumbprint(db: Database) -> None:
    """The certificate thumbprint accepted for each managed server, checked at every https
    connection. Servers added before show '': not pinned until `replicadesk server trust`."""
    _sql(db, "ALTER TABLE servers ADD COLUMN thumbprint TEXT NOT NULL DEFAULT ''")


def names() -> list[str]:
    """Every migration of the set, in order (the latest schema version is their number)."""
    return [m.name for m in migrations.pending(Database(memory=True))]
