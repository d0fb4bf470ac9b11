"""Failover with the production vCenter gone: only the DR server is needed. Driven through the
command line (`replicadesk replica failover|undo-failover --json`), on a lab of its own, since
its production simulator is stopped."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from core.cli.main import main
from core.lab.lab import Lab, LabState
from core.lab.register import inventories, lab_job, register_lab
from core.lab.topology import LabOptions
from core.model.reip import ReIpRule
from core.model.replicas import ReplicaState
from core.store.store import Store
from core.vsphere.connection import VSphereClient
from core.vsphere.inventory import read_inventory
from core.vsphere.models import Inventory
from tests.conftest import assert_identical
from tests.core.failover.conftest import dr_local, ok, the_replica
from tests.core.failover.test_operations import give_addresses
from tests.core.jobs.test_runner import source_copies, vm

VM = "dc01"


def test_failover_with_production_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own = Lab(LabOptions(vms=2, disk_mib=(16, 16)), folder=tmp_path / "lab", wan=False)
    state = own.start()
    try:
        db = tmp_path / "replicadesk.db"
        copies = source_copies(state, [VM], tmp_path / "c")
        prod, _ = inventories(state)
        keys = [d.key for d in vm(prod, VM).disks]
        # The guest's addresses as the last run sees them: re-IP must work from those.
        give_addresses(state, VM, [("172.17.8.9", "255.255.0.0"), ("10.1.2.30", "255.255.255.0")])
        rules = (
            ReIpRule("172.17.*.*", "192.168.*.*", target_mask="255.255.0.0"),
            ReIpRule("10.1.2.0/24", "10.201.2.0/24"),
        )
        with Store.open(db) as store:
            register_lab(store, state, tmp_path / "metadata")
            job = replace(lab_job(state, "Site loss", [VM]), reip=rules)
            store.jobs.add(job)
            ok(store, job.name)
            replica = the_replica(store, job.name, VM)
        assert replica.guest_addresses == (("172.17.8.9",), ("10.1.2.30",))
        assert own._prod is not None  # the production site's simulator: the disaster
        own._prod.stop()

        assert main(["--db", str(db), "replica", "failover", str(replica.id), "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["replica"]["state"] == str(ReplicaState.FAILOVER)
        assert doc["session"]["trigger"] == "failover"
        assert any("was not reached" in e["message"] for e in doc["log"])
        dr = dr_inventory(state)
        running = dr.vm(replica.replica_moref or "")
        assert running.power_state == "poweredOn"
        assert {"192.168.8.9", "10.201.2.30"} <= set(running.guest_ips)
        for d, key in zip(sorted(running.disks, key=lambda d: d.key), keys, strict=True):
            assert_identical(dr_local(dr, d.file_name), copies[(VM, key)])

        assert main(["--db", str(db), "replica", "failover", str(replica.id)]) == 50
        assert "state Failover" in capsys.readouterr().err
        assert main(["--db", str(db), "replica", "undo-failover", str(replica.id)]) == 0
        assert "Ready" in capsys.readouterr().out
    finally:
        own.stop()


def dr_inventory(state: LabState) -> Inventory:
    """The DR site's inventory alone (production is down)."""
    d = state.dr
    with VSphereClient.connect(d.address, d.port, state.user, state.password, "http") as c:
        return read_inventory(c)
