"""Every `replicadesk replica ...` operation through the command line, against the real lab:
`--json` documents (state, session, the VM brought up, bytes sent), and the transitions the
state machine refuses, with their exit code and message."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from core.cli.main import main
from core.lab.content import flat_name
from core.lab.lab import LabState, datastore_file
from core.lab.register import inventories
from core.model.replicas import ReplicaState
from core.store.store import Store
from core.vsphere import power
from tests.conftest import assert_identical
from tests.core.failover.conftest import (
    dr_local,
    lose_and_restore_elsewhere,
    ok,
    prod_client,
    replicate,
    the_replica,
)
from tests.core.jobs.test_runner import source_copies, vm

REFUSED = 50  # FailoverError and ReplicaStateError
USAGE = 2


class Cli:
    def __init__(self, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.db = db
        self.capsys = capsys

    def json(self, *args: str) -> dict[str, Any]:
        code = main(["--db", str(self.db), "replica", *args, "--json"])
        out = self.capsys.readouterr()
        assert code == 0, out.err
        doc: dict[str, Any] = json.loads(out.out)
        return doc

    def refused(self, code: int, *args: str) -> str:
        assert main(["--db", str(self.db), "replica", *args]) == code
        out = self.capsys.readouterr()
        assert out.out == ""
        return out.err


@pytest.fixture
def cli(tmp_path: Path, store: Store, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path / "replicadesk.db", capsys)


def messages(doc: dict[str, Any]) -> list[str]:
    return [e["message"] for e in doc["log"]]


def test_planned_then_permanent_failover(lab: LabState, store: Store, cli: Cli) -> None:
    name = "web-01"
    job = replicate(store, lab, "CLI planned", [name, "dc02"])
    r = the_replica(store, job.name, name)
    rid = str(r.id)
    err = cli.refused(REFUSED, "permanent-failover", rid)
    assert "cannot make a failover permanent while the replica is in state Ready" in err

    doc = cli.json("planned-failover", rid, "--shutdown-timeout", "5", "--reip-timeout", "10")
    assert doc["replica"]["state"] == str(ReplicaState.FAILOVER)
    assert doc["session"]["trigger"] == "planned_failover"
    assert doc["session"]["status"] == "success" and doc["vm"] == r.replica_moref
    log = messages(doc)
    assert any("final incremental run of the stopped source" in m for m in log)
    prod, dr = inventories(lab)
    assert vm(prod, name).power_state == "poweredOff"
    assert dr.vm(r.replica_moref or "").power_state == "poweredOn"

    err = cli.refused(REFUSED, "planned-failover", rid)
    assert "cannot start a planned failover while the replica is in state Failover" in err
    err = cli.refused(REFUSED, "commit-failback", rid)
    assert "cannot commit a failback while the replica is in state Failover" in err
    assert "undo the failover, make it permanent or fail back first" in err

    doc = cli.json("permanent-failover", rid)
    assert doc["replica"]["state"] == str(ReplicaState.PERMANENT_FAILOVER)
    assert doc["session"]["trigger"] == "permanent_failover"
    assert any(f"{name!r} is excluded from job" in m for m in messages(doc))
    for action in ("failover", "undo-failover", "failback", "test-failover"):
        err = cli.refused(REFUSED, action, rid)
        assert "it was failed over permanently and is production now" in err, action
    assert [o.name for o in store.jobs.get(job.name).source.objects] == ["dc02"]


def test_failback_undo_and_commit(lab: LabState, store: Store, cli: Cli) -> None:
    name = "mail-01"
    job = replicate(store, lab, "CLI failback", [name])
    r = the_replica(store, job.name, name)
    rid = str(r.id)
    err = cli.refused(REFUSED, "failback", rid)
    assert "cannot fail back while the replica is in state Ready" in err
    assert "it is not failed over" in err
    cli.json("failover", rid)
    _, dr = inventories(lab)
    first = sorted(dr.vm(r.replica_moref or "").disks, key=lambda d: d.key)[0]
    subprocess.run(  # the running replica's guest writes 1 MiB
        ["qemu-io", "-f", "vmdk", "-c", "write -P 0x33 2M 1M", str(dr_local(dr, first.file_name))],
        check=True,
        capture_output=True,
    )
    err = cli.refused(REFUSED, "undo-failback", rid)
    assert "cannot undo a failback while the replica is in state Failover" in err
    for wrong in (
        ("--to", "restored", "--new-name", "x"),
        ("--vm", "vm-1"),
        ("--to", "new", "--new-name", "x"),
    ):
        assert "replicadesk: error:" in cli.refused(USAGE, "failback", rid, *wrong)

    doc = cli.json("failback", rid, "--shutdown-timeout", "5")
    assert doc["replica"]["state"] == str(ReplicaState.FAILBACK)
    assert doc["session"]["trigger"] == "failback" and doc["vm"] == r.vm_moref
    assert doc["session"]["stats"]["transferred_bytes"] == 1 << 20
    err = cli.refused(REFUSED, "failback", rid)
    assert "cannot fail back while the replica is in state Failback" in err
    assert "commit or undo the failback first" in err

    doc = cli.json("undo-failback", rid)
    assert doc["replica"]["state"] == str(ReplicaState.FAILOVER)
    assert any("is powered off" in m for m in messages(doc))
    doc = cli.json("failback", rid, "--to", "original", "--shutdown-timeout", "5")
    assert doc["session"]["stats"]["transferred_bytes"] == 0  # in line since the first one
    doc = cli.json("commit-failback", rid)
    assert doc["replica"]["state"] == str(ReplicaState.READY)
    assert doc["session"]["trigger"] == "commit_failback"
    err = cli.refused(REFUSED, "commit-failback", rid)
    assert "cannot commit a failback while the replica is in state Ready" in err
    ok(store, job.name)


def test_failback_to_a_restored_vm_named_by_moref(
    lab: LabState, store: Store, cli: Cli, tmp_path: Path
) -> None:
    name = "db [primary]"
    job = replicate(store, lab, "CLI restored", [name])
    backup = source_copies(lab, [name], tmp_path / "backup")
    r = the_replica(store, job.name, name)
    rid = str(r.id)
    cli.json("failover", rid)
    # Restored without its old identity: it can only be named.
    restored = lose_and_restore_elsewhere(lab, name, backup, keep_uuid=False)
    err = cli.refused(REFUSED, "failback", rid, "--to", "restored")
    assert "no VM at production has the original VM's instance UUID" in err
    assert "name the restored VM with its moref (--vm)" in err
    err = cli.refused(REFUSED, "failback", rid)
    assert "is gone: fail back to the original VM restored in another place" in err

    doc = cli.json("failback", rid, "--to", "restored", "--vm", restored.moref)
    assert doc["replica"]["state"] == str(ReplicaState.FAILBACK) and doc["vm"] == restored.moref
    assert doc["session"]["stats"]["transferred_bytes"] == 0  # the backup holds the point
    prod, dr = inventories(lab)
    back = prod.vm(restored.moref)
    replica_disks = sorted(dr.vm(r.replica_moref or "").disks, key=lambda d: d.key)
    for rd, td in zip(replica_disks, sorted(back.disks, key=lambda d: d.key), strict=True):
        flat = flat_name(datastore_file(prod, td.datastore, td.file_name))
        assert_identical(dr_local(dr, rd.file_name), flat)
    doc = cli.json("commit-failback", rid)
    assert any(f"now replicates {restored.name!r}" in m for m in messages(doc))
    assert [o.moref for o in store.jobs.get(job.name).source.objects] == [restored.moref]


def test_test_failover_and_cleanup(lab: LabState, store: Store, cli: Cli) -> None:
    name = "web 02 (canary)"
    job = replicate(store, lab, "CLI drill", [name])
    r = the_replica(store, job.name, name)
    rid = str(r.id)
    err = cli.refused(REFUSED, "test-cleanup", rid)
    assert "no test failover is running" in err
    doc = cli.json("test-failover", rid, "--point", "1")
    assert doc["replica"]["state"] == str(ReplicaState.READY)
    assert doc["session"]["trigger"] == "test_failover"
    _, dr = inventories(lab)
    test_vm = dr.vm(doc["vm"])
    assert test_vm.name == r.replica_name + "_test" and test_vm.power_state == "poweredOn"
    assert {n.network_name for n in test_vm.nics} == {f"ReplicaDesk test {r.id} (isolated)"}
    err = cli.refused(REFUSED, "test-failover", rid)
    assert "a test failover is running: clean it up first" in err
    err = cli.refused(REFUSED, "test-failover", rid, "--point", "7")
    assert "it has no restore point 7 (it has 1)" in err

    # Human output: the state, the action and the session's log.
    assert main(["--db", str(cli.db), "replica", "test-cleanup", rid]) == 0
    out = cli.capsys.readouterr().out
    assert out.startswith(f'replica {r.id} "{r.replica_name}": Ready (test-cleanup, session ')
    assert "and its disks were deleted" in out and "removed" in out
    _, dr = inventories(lab)
    assert not dr.has(test_vm.moref)
    assert not dr.vms_named(r.replica_name + "_test")
    with prod_client(lab) as c:  # the lab's other tests want their VMs running
        prod, _ = inventories(lab)
        for v in prod.vms:
            if v.power_state != "poweredOn":
                power.power_on(c, v.moref)
