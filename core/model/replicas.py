"""The catalog of replicas: one per source VM and job, with its restore points and state.

This is the record the console lists (which VM, which replica VM on which host, which points);
the replica's disk data and its chain live in `core.replica`. Each restore point keeps, per
disk, the CBT change ID the next incremental run asks `QueryChangedDiskAreas` from, and the
capacity (a resized disk invalidates the change ID); and, for the VM, the bytes the run that
made it found changed and transferred (its size, as the console shows it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from core.model import fields
from core.model.runs import aware


class ReplicaState(StrEnum):
    READY = "Ready"
    PROCESSING = "Processing"
    FAILOVER = "Failover"
    FAILBACK = "Failback"
    PERMANENT_FAILOVER = "Permanent failover"  # gone from the default list
    NEEDS_RESYNC = "Needs resync"  # powered on or edited by hand behind our back
    REIP_FAILED = "Re-IP failed"


@dataclass(frozen=True)
class DiskPoint:
    disk_key: int
    capacity_bytes: int
    change_id: str | None = None  # None when the run did not use CBT
    chain: str | None = None  # the disk's replica folder: "[datastore] replica/disk-2000"
    chain_point: int | None = None  # the point's id in that folder's chain

    def __post_init__(self) -> None:
        fields.integer("disk_key", self.disk_key, 0, 2**31 - 1)
        fields.integer("capacity_bytes", self.capacity_bytes, 0, 2**63 - 1)
        if self.change_id is not None:
            fields.name("change_id", self.change_id)
        if self.chain is not None:
            fields.text("chain", self.chain)
        if self.chain_point is not None:
            fields.integer("chain_point", self.chain_point, 1, 2**31 - 1)


@dataclass(frozen=True)
class RestorePoint:
    replica_id: int
    number: int  # 1, 2, ... never reused for a replica
    created: dt.datetime
    disks: tuple[DiskPoint, ...]
    snapshot_moref: str | None = None  # the VMware snapshot on the replica VM
    session_id: int | None = None
    changed_bytes: int = 0  # of the VM's disks, blocks its run found changed (data or zeros)
    transferred_bytes: int = 0  # what its run sent to the target for this VM (compressed)

    def __post_init__(self) -> None:
        aware("created", self.created)
        fields.integer("changed_bytes", self.changed_bytes, 0, 2**63 - 1)
        fields.integer("transferred_bytes", self.transferred_bytes, 0, 2**63 - 1)
        fields.unique("disks", (d.disk_key for d in self.disks), "disk key")
        if self.snapshot_moref is not None:
            fields.moref("snapshot_moref", self.snapshot_moref)

    def disk(self, key: int) -> DiskPoint | None:
        return next((d for d in self.disks if d.disk_key == key), None)


@dataclass(frozen=True)
class Replica:
    id: int
    job: str
    source_server: str
    vm_moref: str
    vm_name: str
    replica_name: str
    target_server: str
    state: ReplicaState
    created: dt.datetime
    updated: dt.datetime
    replica_moref: str | None = None  # None until the first run created the replica VM
    target_host_moref: str | None = None
    target_host_name: str | None = None
    # The source VM's guest addresses per NIC (device order) at its last run; None: never seen.
    guest_addresses: tuple[tuple[str, ...], ...] | None = None
