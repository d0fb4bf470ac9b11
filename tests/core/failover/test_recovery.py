"""Operations interrupted by a crash, found and finished or rolled back by the next operation on
the replica, against the real lab: a process killed (SIGKILL) in the middle of a failback's
copy and right after a failover's power-on, and the records a crash during a failover's disk
attach leaves."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from core.failover import records, running
from core.failover.failback import commit_failback, failback
from core.failover.operations import choose_point, failover, undo_failover
from core.failover.records import FailbackRecord, FailoverRecord
from core.failover.site import DrSite
from core.lab.content import flat_name
from core.lab.lab import LabState, datastore_file
from core.lab.register import inventories
from core.model.replicas import ReplicaState
from core.model.runs import RunStatus
from core.store.store import Store
from tests.conftest import assert_identical
from tests.core.failover.conftest import (
    dr_local,
    folder_hashes,
    replica_folder,
    replicate,
    the_replica,
)
from tests.core.jobs.test_runner import vm

ROOT = Path(__file__).resolve().parents[3]

KILLED_IN_FAILBACK = """
import os, signal, sys
from pathlib import Path
from core.store.store import Store
from core.failover.failback import failback

def crash(done: int, total: int) -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # the first chunk is written: the machine dies

with Store.open(Path(sys.argv[1])) as store:
    failback(store, int(sys.argv[2]), shutdown_timeout=5, on_progress=crash)
"""

KILLED_AFTER_POWER_ON = """
import os, signal, sys
from pathlib import Path
from core.store.store import Store
from core.failover.operations import failover

def crash(replica: object, vm: str) -> None:
    os.kill(os.getpid(), signal.SIGKILL)

with Store.open(Path(sys.argv[1])) as store:
    failover(store, int(sys.argv[2]), on_powered_on=crash)
"""


def killed(code: str, db: Path, replica_id: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", code, str(db), str(replica_id)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def logs(store: Store, session_id: int) -> list[str]:
    s = store.sessions.get(session_id)
    return [e.message for e in s.log] + [
        e.message for t in store.sessions.tasks(session_id) for e in t.log
    ]


def recovery_session(store: Store, job: str, title: str) -> int:
    found = [s.id for s in store.sessions.list(job) if any(title in m for m in logs(store, s.id))]
    assert len(found) == 1, found
    return found[0]


def test_failback_killed_while_copying(lab: LabState, store: Store, tmp_path: Path) -> None:
    name = "app-02"
    job = replicate(store, lab, "Crash in failback", [name])
    r = the_replica(store, job.name, name)
    failover(store, r.id)
    _, dr = inventories(lab)
    disk = sorted(dr.vm(r.replica_moref or "").disks, key=lambda d: d.key)[0]
    path = dr_local(dr, disk.file_name)
    last = disk.capacity - (1 << 20)
    for offset, pattern in ((1 << 20, 0x11), (last, 0x22)):  # first chunk and last chunk
        subprocess.run(
            ["qemu-io", "-f", "vmdk", "-c", f"write -P {pattern} {offset} 1M", str(path)],
            check=True,
            capture_output=True,
        )
    killed(KILLED_IN_FAILBACK, tmp_path / "replicadesk.db", r.id)
    where = replica_folder(lab, store, r) / records.RECORD_FOLDER
    left = records.load(where, records.FAILBACK, FailbackRecord)
    assert left is not None and left.phase == records.STARTED and left.kind == "original"
    assert store.replicas.get(r.id).state == ReplicaState.FAILOVER
    crashed = store.sessions.get(left.session_id)
    assert crashed.status == RunStatus.RUNNING  # its process is dead

    # The next failback rolls the crashed one back, then sends what still differs: the last
    # chunk's write (the first chunk reached the source VM before the crash).
    result = failback(store, r.id, shutdown_timeout=5)
    assert result.replica.state == ReplicaState.FAILBACK
    assert store.sessions.get(result.session_id).stats.transferred_bytes == 1 << 20
    rec = recovery_session(store, job.name, "Recovery of an interrupted failback")
    assert store.sessions.get(rec).status == RunStatus.WARNING
    line = next(m for m in logs(store, rec) if "was interrupted while copying" in m)
    assert f"the failback of session {left.session_id}" in line
    assert "rolled back to the failover" in line and "fail back again" in line
    assert store.sessions.get(left.session_id).status == RunStatus.FAILED
    prod, _ = inventories(lab)
    source = vm(prod, name)
    first = sorted(source.disks, key=lambda d: d.key)[0]
    assert_identical(path, flat_name(datastore_file(prod, first.datastore, first.file_name)))
    commit_failback(store, r.id)
    assert store.replicas.get(r.id).state == ReplicaState.READY


def test_failover_killed_after_power_on_is_finished(
    lab: LabState, store: Store, tmp_path: Path
) -> None:
    name = "mail-01"
    job = replicate(store, lab, "Crash after power-on", [name])
    r = the_replica(store, job.name, name)
    folder = replica_folder(lab, store, r)
    before = folder_hashes(folder)
    killed(KILLED_AFTER_POWER_ON, tmp_path / "replicadesk.db", r.id)
    left = records.load(folder / records.RECORD_FOLDER, records.FAILOVER, FailoverRecord)
    assert left is not None and left.phase == records.PREPARED
    _, dr = inventories(lab)
    assert dr.vm(r.replica_moref or "").power_state == "poweredOn"

    # The next operation (an undo) first finishes the failover, then undoes it.
    result = undo_failover(store, r.id)
    assert result.replica.state == ReplicaState.READY
    rec = recovery_session(store, job.name, "Recovery of an interrupted failover")
    line = next(m for m in logs(store, rec) if "was interrupted after everything" in m)
    assert f"session {left.session_id}" in line and "finished" in line
    assert store.sessions.get(left.session_id).status == RunStatus.FAILED
    assert folder_hashes(folder) == before


def test_failover_crashed_while_attaching_is_rolled_back(lab: LabState, store: Store) -> None:
    name = "web-01"
    job = replicate(store, lab, "Crash in attach", [name])
    r = the_replica(store, job.name, name)
    folder = replica_folder(lab, store, r)
    before = folder_hashes(folder)
    # What a failover killed while attaching its first disk leaves: its record (started), the
    # first disk a child of the point, its descriptor saved in the record folder.
    point = choose_point(store, r, None)
    with DrSite.connect(store, r) as site:
        replica_vm = site.replica_vm()
        where = records.folder(site.local(site.vm_folder(replica_vm)))
        records.save(
            where,
            records.FAILOVER,
            FailoverRecord(
                r.id,
                point.number,
                point.snapshot_moref or "",
                replica_vm.current_snapshot,
                (),
                phase=records.STARTED,
                session_id=0,
            ),
        )
        pairs = running.pair_disks(replica_vm, point, r.replica_name)
        running.attach(site, pairs[:1], point.number, where)
    assert folder_hashes(folder) != before

    result = failover(store, r.id)  # rolls the crashed one back, then fails over
    assert result.replica.state == ReplicaState.FAILOVER
    rec = recovery_session(store, job.name, "Recovery of an interrupted failover")
    line = next(m for m in logs(store, rec) if "before it was complete: rolled back" in m)
    assert "1 disk(s) put back" in line and "the replica is Ready as before" in line
    undo_failover(store, r.id)
    assert folder_hashes(folder) == before
    assert store.replicas.get(r.id).state == ReplicaState.READY
