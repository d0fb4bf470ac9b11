"""A backup made from a replica is refused, with the reason.

A replica VM is never started (its disks only ever receive blocks written by ReplicaDesk, and it
is powered on only at failover), so VMware changed block tracking has nothing to track on it:
CBT starts recording when a VM powers on with tracking enabled, and its change IDs would not
cover what replication wrote. A backup taken from it could only read every block each time, and
its restore points would describe a copy of a copy that lags production. Back up the source VM
instead. `check_backup_source` says whether a VM (name or moref, on a server) may be a backup
source; a replica VM (or its test VM) raises ReplicaBackupRefusedError naming the source VM.
"""

from __future__ import annotations

from core.errors import ReplicaBackupRefusedError
from core.failover.drill import TEST_SUFFIX
from core.store.store import Store

REASON = (
    "it is a replica VM, which was never started, so changed block tracking (CBT) cannot "
    "be used on it and its changes are written by replication, not tracked by VMware; back up "
    "the source VM {source!r} on {server} instead"
)


def check_backup_source(store: Store, vm: str, server: str | None = None) -> str:
    """ "" when `vm` may be backed up; ReplicaBackupRefusedError when it is a replica."""
    for r in store.replicas.list(include_permanent=False):
        if server is not None and r.target_server != server:
            continue
        names = {r.replica_name, r.replica_name + TEST_SUFFIX}
        if vm in names or (r.replica_moref is not None and vm == r.replica_moref):
            raise ReplicaBackupRefusedError(
                vm, REASON.format(source=r.vm_name, server=r.source_server)
            )
    return ""
