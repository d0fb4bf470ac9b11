"""A proxy's own VM and the hot-add records in a real database: which records are stale."""

from __future__ import annotations

import pytest

from core.errors import InvalidSettingError, JobRunError
from core.model.infra import BackupProxy
from core.model.runs import RunStatus, RunTrigger, TransferStats
from core.store import Store

SERVER = "vc-prod.example.net"


def test_a_proxy_keeps_its_vm(store: Store) -> None:
    proxy = BackupProxy("proxy-vm-1", "10.0.0.21", "prod", vm="vm-1042", vm_server=SERVER)
    store.proxies.add(proxy)
    assert store.proxies.get("proxy-vm-1") == proxy
    with pytest.raises(InvalidSettingError, match="both its moref and the managed server"):
        BackupProxy("p", "10.0.0.22", "prod", vm="vm-1")


def test_records_of_live_runs_are_not_stale(store: Store) -> None:
    live = store.sessions.start("job", RunTrigger.MANUAL)
    over = store.sessions.start("job", RunTrigger.MANUAL)
    store.sessions.finish(over.id, RunStatus.FAILED, TransferStats())
    disks = store.hotadd_disks
    mine = disks.record(SERVER, "vm-9", (1000, 1), "[ds] a/a.vmdk", "vm-1", live.id)
    crashed = disks.record(SERVER, "vm-9", (1000, 2), "[ds] b/b.vmdk", "vm-2", over.id)
    unknown = disks.record(SERVER, "vm-9", (1000, 3), "[ds] c/c.vmdk", "vm-3", None)
    disks.set_device(crashed, 2003)
    assert [r.id for r in disks.of_proxy(SERVER, "vm-9")] == [mine, crashed, unknown]
    stale = disks.stale(SERVER, "vm-9")
    assert [(r.id, r.device_key) for r in stale] == [(crashed, 2003), (unknown, None)]
    assert disks.stale(SERVER, "vm-other") == []
    # A slot recorded once cannot be recorded again before it is forgotten.
    with pytest.raises(JobRunError, match="SCSI slot 1000:1 is already recorded"):
        disks.record(SERVER, "vm-9", (1000, 1), "[ds] d/d.vmdk", "vm-4", live.id)
    disks.forget(mine)
    disks.record(SERVER, "vm-9", (1000, 1), "[ds] d/d.vmdk", "vm-4", live.id)
