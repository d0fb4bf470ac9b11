#!/usr/bin/env python3
"""Benchmark of replication jobs on the built-in lab: 20 VMs, onsite and offsite, full and
incremental.

Starts the two-site lab (`core.lab.lab.Lab`) with 20 production VMs of one to three thin disks
(41 disks for the default seed; `--disk-mib 512 1408` makes them 40.0 GiB provisioned), registers
it in a temporary store, and runs two jobs over the same 20 VMs, in this order:

    onsite full, offsite full, 5% churn, onsite incremental, offsite incremental

* onsite: the target data mover sits on the production LAN. The benchmark starts a third mover
  service of its own on loopback, outside the DR namespace, whose root is the DR datastores'
  folder, and registers it as a production-site proxy. Data never crosses the shaped link and,
  source and target movers being on one site, compression is off (the jobs' `auto` rule). The
  replicas still live on the DR vCenter, so that vCenter's few SOAP calls (snapshots, reconfig,
  the replica VM) cross the link; they are small. This keeps one lab (one set of 40 GiB disks)
  for both placements; a second lab without a WAN would double the set-up and the disk space and
  measure the same data path.
* offsite: the lab's DR proxy, inside the DR site's network namespace behind the tbf-shaped link
  (`--wan-mbit`, 100 by default; LAB.md measured 96 Mbit/s for one TCP stream), compression on
  (LZ4, `auto` between sites). Needs root: without it the lab has no shaped link and the offsite
  figures are over loopback (the script says so).
* churn: for every VM, guest writes (`core.lab.content.guest_writes`) of 5% of the data its disks
  hold, spread over its disks in proportion, each logged in the lab's change log so the next runs
  get them from CBT (QueryChangedDiskAreas), as in tests/core/jobs/test_runner.py.

Per run it prints wall time, bytes read at the source and sent to the target mover (after
compression), link utilisation (sent bits / (link rate x wall time); offsite only), per-VM
averages (VM task time, bytes sent) and the vSphere call overhead per VM: calls made through
`VSphereClient.call` during the run and the seconds spent waiting for their answers (summed over
the run's threads, task waits included), divided by the VM count, split source / target vCenter.
At the end: the peak RSS of this process (engine and source side of all runs) and of its
child processes by kind (mover services, simulators), read from /proc before they stop. "read"
includes the CBT check: each incremental disk also reads 16 blocks CBT called unchanged.

Fill: the lab writes `LabOptions.fill` (15% by default) of each disk. Over 40 GiB that is about
6-7 GiB, which at 100 Mbit/s and LZ4's ~1.7x on the lab mix (measured on lab disks) is about
6 minutes for the offsite full run alone. The benchmark writes 5% instead (`--fill`): 2.1 GiB of
data, an offsite full run of about 2 minutes and the whole benchmark in about 3 minutes on the
2-core lab machine. The lab has no option for the fill, so the script sets the module constant
before the lab starts (core.lab reads it when it writes the disks); `--fill 0.15` gives the lab's
default.

Prints figures; asserts nothing. Run as root for the shaped link:

    .venv/bin/python benchmarks/jobs_bench.py [--fill 0.05] [--wan-mbit 100] [--dir /var/tmp]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from core.jobs.runner import run_job  # noqa: E402
from core.lab.changelog import ChangeLog  # noqa: E402
from core.lab.content import data_areas, flat_name, guest_writes  # noqa: E402
from core.lab.lab import Lab, LabState, datastore_file  # noqa: E402
from core.lab.register import DR_PROXY, PROD_SITE, inventories, lab_job, register_lab  # noqa: E402
from core.lab.topology import LabOptions  # noqa: E402
from core.model.infra import BackupProxy  # noqa: E402
from core.model.job import ProxySelection, ReplicationJob  # noqa: E402
from core.model.runs import Severity  # noqa: E402
from core.mover.process import MoverServiceProcess  # noqa: E402
from core.mover.tls import TlsFiles  # noqa: E402
from core.store.store import Store  # noqa: E402
from core.vsphere.connection import CallCounts, server_call_totals  # noqa: E402

MIB = 1 << 20
GIB = 1 << 30
ONSITE_PROXY = "onsite-proxy"
HOW = ("full copy", "changed areas from CBT", "digests")  # how core.jobs.vmtask logs a disk


@dataclass
class Row:
    what: str
    offsite: bool
    status: str
    vms: int
    seconds: float
    read: int
    sent: int
    vm_seconds: float  # average VM task duration
    source_calls: CallCounts
    target_calls: CallCounts
    errors: list[str]
    how: dict[str, int]  # disks copied in full, from CBT's changed areas, by digests


def fmt_mib(n: float) -> str:
    return f"{n / MIB:,.0f} MiB"


def written_bytes(state: LabState, names: list[str]) -> tuple[int, int, int]:
    """(disks, provisioned bytes, bytes holding data) of these VMs' disks."""
    prod, _ = inventories(state)
    disks = provisioned = data = 0
    for name in names:
        (vm,) = prod.vms_named(name)
        for d in vm.disks:
            flat = flat_name(datastore_file(prod, d.datastore, d.file_name))
            disks += 1
            provisioned += d.capacity
            data += sum(n for _, n in data_areas(flat))
    return disks, provisioned, data


def churn(state: LabState, names: list[str], share: float, seed: int) -> tuple[int, int]:
    """Guest writes of `share` of each VM's data, logged for CBT; (bytes written, MiB blocks
    touched)."""
    prod, _ = inventories(state)
    log = ChangeLog(Path(state.changelog))
    rng = np.random.default_rng(seed)
    written = 0
    blocks: set[tuple[str, int, int]] = set()
    for name in names:
        (vm,) = prod.vms_named(name)
        for d in vm.disks:
            flat = flat_name(datastore_file(prod, d.datastore, d.file_name))
            nbytes = int(sum(n for _, n in data_areas(flat)) * share)
            if nbytes <= 0:
                continue
            areas = guest_writes(flat, nbytes, rng)
            log.record(vm.moref, d.key, d.capacity, areas)
            for offset, length in areas:
                written += length
                for b in range(offset // MIB, (offset + length - 1) // MIB + 1):
                    blocks.add((vm.moref, d.key, b))
    return written, len(blocks)


def job_for(
    state: LabState, name: str, names: list[str], proxy: str, datastore: str, suffix: str
) -> ReplicationJob:
    job = lab_job(state, name, names, datastore=datastore)
    return replace(
        job,
        settings=replace(job.settings, replica_suffix=suffix),
        transfer=replace(job.transfer, target_proxies=ProxySelection((proxy,))),
    )


def run(store: Store, state: LabState, job: ReplicationJob, what: str, offsite: bool) -> Row:
    source = f"{state.production.address}:{state.production.port}"
    target = f"{state.dr.address}:{state.dr.port}"
    before = server_call_totals()
    t0 = time.perf_counter()
    session = run_job(store, job.name)
    seconds = time.perf_counter() - t0
    after = server_call_totals()

    def grown(where: str) -> CallCounts:
        return after.get(where, CallCounts()) - before.get(where, CallCounts())

    tasks = store.sessions.tasks(session.id)
    errors = [e.message for e in store.sessions.get(session.id).log if e.severity == Severity.ERROR]
    errors += [
        f"{t.vm_name}: {e.message}"
        for t in tasks
        for e in t.log
        if e.severity in (Severity.ERROR, Severity.WARNING)
    ]
    how: dict[str, int] = {}
    for t in tasks:
        for e in t.log:
            for kind in HOW:
                if e.message.endswith(f"): {kind}"):
                    how[kind] = how.get(kind, 0) + 1
    row = Row(
        what=what,
        offsite=offsite,
        status=str(session.status),
        vms=len(tasks),
        seconds=seconds,
        read=sum(t.stats.read_bytes for t in tasks),
        sent=sum(t.stats.transferred_bytes for t in tasks),
        vm_seconds=sum(t.stats.duration for t in tasks) / max(1, len(tasks)),
        source_calls=grown(source),
        target_calls=grown(target),
        errors=errors,
        how=how,
    )
    disks = ", ".join(f"{n} {kind}" for kind, n in how.items())
    print(f"  {what}: {row.status} in {seconds:.1f} s (disks: {disks})", flush=True)
    return row


def children_peak_rss() -> dict[str, int]:
    """Peak RSS (VmHWM) of this process's running children, by kind (mover, simulator)."""
    me = os.getpid()
    peaks: dict[str, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != me:
                continue
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (proc / "status").read_text()
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        hwm = next((ln for ln in status.splitlines() if ln.startswith("VmHWM:")), "")
        if not hwm:
            continue
        kind = "mover service" if "mover serve" in cmd else Path(cmd.split(" ", 1)[0]).name
        peaks[kind] = max(peaks.get(kind, 0), int(hwm.split()[1]) * 1024)
    return peaks


def report(rows: list[Row], wan_mbit: float | None) -> None:
    print()
    print(
        f"{'run':<22}{'status':>8}{'wall s':>8}{'read':>11}{'sent':>11}{'link':>7}"
        f"{'VM task s':>11}{'sent/VM':>10}{'calls/VM':>10}{'call s/VM':>11}"
        f"{'src calls/s':>14}{'tgt calls/s':>14}"
    )
    for r in rows:
        n = max(1, r.vms)
        calls = r.source_calls + r.target_calls
        link = "-"
        if r.offsite and wan_mbit:
            link = f"{r.sent * 8 / (wan_mbit * 1e6 * r.seconds):.0%}"
        print(
            f"{r.what:<22}{r.status:>8}{r.seconds:>8.1f}{fmt_mib(r.read):>11}{fmt_mib(r.sent):>11}"
            f"{link:>7}{r.vm_seconds:>11.1f}{fmt_mib(r.sent / n):>10}{calls.calls / n:>10.1f}"
            f"{calls.seconds / n:>11.2f}"
            f"{f'{r.source_calls.calls / n:.1f}/{r.source_calls.seconds / n:.2f}':>14}"
            f"{f'{r.target_calls.calls / n:.1f}/{r.target_calls.seconds / n:.2f}':>14}"
        )
    for r in rows:
        for e in r.errors[:5]:
            print(f"  {r.what}: {e}")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--vms", type=int, default=20)
    ap.add_argument("--disk-mib", type=int, nargs=2, default=(512, 1408), metavar=("LOW", "HIGH"))
    ap.add_argument("--fill", type=float, default=0.05, help="share of each disk holding data")
    ap.add_argument("--churn", type=float, default=0.05, help="share of each VM's data rewritten")
    ap.add_argument("--wan-mbit", type=float, default=100.0)
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    args = ap.parse_args()

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if os.geteuid() != 0:
        print("not root: the lab gets no shaped link; offsite runs go over loopback")
    work = Path(tempfile.mkdtemp(prefix="replicadesk-jobs-bench-", dir=args.dir))
    # The lab has no option for its disks' fill: set the constant it reads when writing them.
    lab = Lab(
        LabOptions(
            vms=args.vms, disk_mib=tuple(args.disk_mib), wan_mbit=args.wan_mbit, fill=args.fill
        ),
        folder=work / "lab",
        wan=True,
    )
    onsite_mover: MoverServiceProcess | None = None
    rows: list[Row] = []
    try:
        t0 = time.perf_counter()
        state = lab.start()
        prod, _ = inventories(state)
        names = [vm.name for vm in prod.vms]
        disks, provisioned, data = written_bytes(state, names)
        link = f"{state.wan_mbit:g} Mbit/s shaped link" if state.wan_mbit else "no shaped link"
        print(
            f"lab: {len(names)} VMs, {disks} thin disks, {provisioned / GIB:.1f} GiB provisioned, "
            f"{data / GIB:.2f} GiB written (fill {args.fill:.0%}), DR site behind {link}; "
            f"started in {time.perf_counter() - t0:.1f} s"
        )
        if state.wan_mbit:
            print(
                f"estimate, offsite full: {data * 8 / (state.wan_mbit * 1e6):.0f} s uncompressed, "
                f"~{data * 8 / 1.7 / (state.wan_mbit * 1e6):.0f} s at LZ4 1.7x"
            )

        certs = work / "lab" / "certs"
        onsite_mover = MoverServiceProcess(
            Path(state.dr.proxy_root),
            TlsFiles(certs / "server.pem", certs / "server.key", certs / "ca.pem"),
            listen="127.0.0.1",
            log=work / "onsite-proxy.log",
        ).start()
        with Store.open(work / "replicadesk.db") as store:
            register_lab(store, state, work / "metadata")
            store.proxies.add(
                BackupProxy(
                    ONSITE_PROXY,
                    onsite_mover.listen,
                    PROD_SITE,
                    onsite_mover.port,
                    4,
                    tls=state.client,
                    description="benchmark: a mover on the production LAN writing to DR storage",
                )
            )
            onsite = job_for(state, "Onsite 20 VMs", names, ONSITE_PROXY, "dr-ds-02", "_onsite")
            offsite = job_for(state, "Offsite 20 VMs", names, DR_PROXY, "dr-ds-01", "_offsite")
            store.jobs.add(onsite)
            store.jobs.add(offsite)

            rows.append(run(store, state, onsite, "onsite full", False))
            rows.append(run(store, state, offsite, "offsite full (LZ4)", True))
            t1 = time.perf_counter()
            churned, blocks = churn(state, names, args.churn, seed=1)
            print(
                f"  churn: {churned / MIB:,.0f} MiB of guest writes ({churned / data:.1%} of the "
                f"data) over {blocks:,} 1 MiB blocks, in {time.perf_counter() - t1:.1f} s"
            )
            rows.append(run(store, state, onsite, "onsite incremental", False))
            rows.append(run(store, state, offsite, "offsite incr. (LZ4)", True))
        report(rows, state.wan_mbit)
        print(
            "\nsent: bytes to the target mover after compression; link: sent bits / (link rate x "
            "wall time);\ncalls: vSphere calls through VSphereClient.call and the seconds spent in "
            "them (summed over threads,\ntask waits included) per VM; src/tgt: production / DR "
            "vCenter, calls/seconds per VM."
        )
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(f"peak RSS, this process (engine and source side): {own / MIB:,.0f} MiB")
        for kind, peak in sorted(children_peak_rss().items()):
            print(f"peak RSS, largest {kind} (child process): {peak / MIB:,.0f} MiB")
    finally:
        if onsite_mover is not None:
            onsite_mover.stop()
        lab.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
