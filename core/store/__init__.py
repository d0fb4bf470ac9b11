"""ReplicaDesk's database: infrastructure, jobs, sessions, replicas and locks in SQLite.

Reached through `Store` (core.store.store), whose repositories take and return the dataclasses
of `core.model`; no row or raw dict leaves the package. SQLite through sqlite-utils 4, with
numbered migrations (core.store.migrations), WAL and a busy timeout for many threads and
processes, passwords encrypted at rest (core.store.secrets) and cross-process locks per VM and
per replica (core.store.locks).
"""

from core.store.locks import Lease, LockHolder, replica_key, vm_key
from core.store.store import Store

__all__ = ["Lease", "LockHolder", "Store", "replica_key", "vm_key"]
