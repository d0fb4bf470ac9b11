"""What a replica operation must remember until the next one: JSON records beside the replica.

A failover, a test failover and a failback each write a record into the replica VM's folder on the
DR datastore, in a subfolder of ours (``[ds] <replica>/replicadesk/``): which restore point runs,
which snapshot was current before, each running disk and where its replaced descriptor was saved,
the test VM and its isolated network, the failback target. The record lives with the files it
describes, on the site that survives, so an undo works from any backup server that sees the DR
site. It is written (atomically) before the operation changes anything, with its `phase`
(`STARTED`: changes under way; `PREPARED`: all in place, the end not reached; `DONE`), rewritten as
the operation goes on, and removed only when the operation was undone, committed or cleaned up: a
record left in an earlier phase is what a crashed operation leaves, and core.failover.recovery
finishes or rolls it back at the next operation on the replica. The subfolder keeps the files out
of the VM's own file list (the lab's simulator may delete a file of that list when a snapshot is
removed, LAB.md). The replica's state itself stays in the store (`ReplicaState`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from core.errors import FailoverError
from core.fsutil import atomic_write

RECORD_FOLDER = "replicadesk"
FAILOVER = "failover.json"
TEST = "test-failover.json"
FAILBACK = "failback.json"

STARTED = "started"
PREPARED = "prepared"
DONE = "done"

_T = TypeVar("_T")


@dataclass(frozen=True)
class RunningDisk:
    """One disk of a running VM: a hosted-sparse child of a restore point's file."""

    disk_key: int  # the running VM's device key
    source_disk_key: int  # the disk's key in the restore point (the source VM's)
    file_name: str  # "[ds] folder/name.vmdk": the VM's disk, now the child
    chain: str  # "[ds] replica/disk-2000": the restore point chain
    chain_point: int  # the point (in that chain) the child reads through to
    capacity: int
    saved: str | None  # the replaced descriptor's copy in the record folder (None: it was absent)


@dataclass(frozen=True)
class FailoverRecord:
    replica_id: int
    point: int  # the restore point number failed over to
    point_snapshot: str  # its snapshot on the replica VM
    previous_snapshot: str  # the replica VM's current snapshot before the failover
    disks: tuple[RunningDisk, ...]
    planned: bool = False
    reip: str = ""  # what re-IP did, for the console
    phase: str = DONE
    session_id: int = 0  # the operation's session
    reip_expected: tuple[str, ...] = ()  # the addresses the guest must report after re-IP
    source_instance_uuid: str = ""  # the source VM's, when production answered at failover


@dataclass(frozen=True)
class TestRecord:
    replica_id: int
    point: int
    test_vm: str  # moref
    test_vm_name: str
    host: str  # moref of the host carrying the test VM and its network
    switch: str
    portgroup: str
    network: str  # moref
    disks: tuple[RunningDisk, ...]
    phase: str = DONE
    session_id: int = 0
    shared: bool = False  # the network is a plan test's, shared by its VMs: not removed here


@dataclass(frozen=True)
class FailbackRecord:
    replica_id: int
    target_server: str  # the production server holding the failback target
    target_vm: str  # moref of the VM that now runs production
    target_vm_name: str
    new_vm: bool  # True: a VM failback created (commit makes the job replicate it)
    copied_bytes: int = 0
    disks: tuple[str, ...] = field(default=())  # the target disks written
    phase: str = DONE  # STARTED: copying; PREPARED: copied, the target not yet powered on
    session_id: int = 0
    kind: str = ""  # "original", "restored" or "new" ("" in records of older versions)
    target_was_on: bool = False


def folder(vm_folder: Path) -> Path:
    return vm_folder / RECORD_FOLDER


def save(where: Path, name: str, record: object) -> None:
    where.mkdir(parents=True, exist_ok=True)
    text = json.dumps(asdict(record), indent=2, ensure_ascii=False)  # type: ignore[call-overload]
    atomic_write(where / name, text.encode())


def _disks(items: list[dict[str, Any]]) -> tuple[RunningDisk, ...]:
    return tuple(RunningDisk(**d) for d in items)


def load(where: Path, name: str, cls: type[_T]) -> _T | None:
    path = where / name
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise FailoverError(str(where.parent.name), f"the record {path} is unreadable: {e}") from e
    for key, value in list(doc.items()):
        if isinstance(value, list):
            doc[key] = tuple(value)
    if "disks" in doc and cls is not FailbackRecord:
        doc["disks"] = _disks(list(doc["disks"]))
    try:
        return cls(**doc)
    except TypeError as e:
        raise FailoverError(str(where.parent.name), f"the record {path} is damaged: {e}") from e


def remove(where: Path, name: str) -> None:
    (where / name).unlink(missing_ok=True)


def remove_folder_if_empty(where: Path) -> None:
    if where.is_dir() and not any(where.iterdir()):
        shutil.rmtree(where, ignore_errors=True)
