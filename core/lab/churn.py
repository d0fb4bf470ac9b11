"""Guest writes on the lab's running VMs, so incremental runs have something to carry.

`replicadesk lab churn` calls `churn`: every tick it picks running production VMs at random and
writes into their disks (`core.lab.content.guest_writes`), logging each write in the change log
that the simulator's QueryChangedDiskAreas answers from. A VM that has a snapshot taken by a
replication run is left alone while it does: vcsim makes no delta disks (LAB.md), so a write then
would change what the run reads "from the snapshot", which on ESXi it never could.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import UsageError
from core.lab.changelog import ChangeLog
from core.lab.content import flat_name, guest_writes
from core.lab.lab import LabState, datastore_file
from core.vsphere.connection import VSphereClient
from core.vsphere.inventory import read_inventory

RUN_SNAPSHOT_PREFIX = "ReplicaDesk"
"""Snapshots whose name starts so are a replication run's (see core.jobs)."""


@dataclass
class ChurnResult:
    written_bytes: int = 0
    writes: int = 0
    vms: set[str] = field(default_factory=set)
    skipped_snapshot: set[str] = field(default_factory=set)


def churn(
    state: LabState,
    *,
    rate: float,
    duration: float,
    vm_names: Sequence[str] = (),
    seed: int = 11,
    stop: threading.Event | None = None,
    report: Callable[[ChurnResult], None] | None = None,
) -> ChurnResult:
    """Write about `rate` bytes per second for `duration` seconds over the chosen VMs."""
    if rate <= 0 or duration <= 0:
        raise UsageError("churn needs a positive --rate and --duration")
    stop = stop or threading.Event()
    rng = np.random.default_rng(seed)
    log = ChangeLog(Path(state.changelog))
    result = ChurnResult()
    prod = state.production
    with VSphereClient.connect(
        prod.address, prod.port, state.user, state.password, protocol="http"
    ) as client:
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline and not stop.is_set():
            tick = time.monotonic()
            inv = read_inventory(client)
            vms = [v for v in inv.vms if v.power_state == "poweredOn" and v.disks]
            if vm_names:
                unknown = set(vm_names) - {v.name for v in inv.vms}
                if unknown:
                    raise UsageError(f"no VM named {', '.join(sorted(unknown))} in the lab")
                vms = [v for v in vms if v.name in vm_names]
            busy = {
                v.name
                for v in vms
                if any(s.name.startswith(RUN_SNAPSHOT_PREFIX) for s in v.all_snapshots())
            }
            result.skipped_snapshot |= busy
            ready = [v for v in vms if v.name not in busy]
            if ready:
                budget = int(rate * min(1.0, deadline - tick))
                picks = rng.choice(len(ready), size=min(len(ready), 4), replace=False)
                for i in picks.tolist():
                    vm = ready[i]
                    disk = vm.disks[int(rng.integers(len(vm.disks)))]
                    flat = flat_name(datastore_file(inv, disk.datastore, disk.file_name))
                    areas = guest_writes(flat, max(4096, budget // len(picks)), rng)
                    log.record(vm.moref, disk.key, disk.capacity, areas)
                    result.written_bytes += sum(n for _, n in areas)
                    result.writes += len(areas)
                    result.vms.add(vm.name)
            if report:
                report(result)
            stop.wait(max(0.0, 1.0 - (time.monotonic() - tick)))
    return result
