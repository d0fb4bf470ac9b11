"""`replicadesk demo`: the main job end to end on the built-in two-site lab.

Starts the lab (a production vCenter with VMs holding real data, a DR vCenter behind a shaped
WAN when run as root, a proxy per site), sets ReplicaDesk up on it as an administrator would
(servers, proxies, a metadata repository), creates a replication job over several VMs and a VM
folder, runs it (the first copy), lets the guests write for a few seconds, runs it again (only
what CBT reports as changed travels), then shows the replicas and their restore points and checks
the newest point of every disk with `qemu-img compare` against the source disk. The lab is
stopped at the end; its work folder is removed unless `--dir` named one (the store stays there).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from core.cli.main import CANCEL
from core.errors import ReplicaDeskError
from core.jobs.events import Event, TaskFinished
from core.jobs.runner import run_job
from core.lab.churn import churn
from core.lab.content import flat_name
from core.lab.lab import Lab, LabState, datastore_file
from core.lab.register import inventories, lab_job, register_lab
from core.lab.topology import LabOptions
from core.model.runs import Session
from core.store.store import Store
from core.vsphere.datastore import DatastorePath

DEMO_VMS = ("dc01", "web 02 (canary)", "db #2 & replica", "app+cache", "50% batch")
DEMO_FOLDER = "Apps/Web"
JOB = "Tier 1 to DR"


def _say(text: str = "") -> None:
    print(text, flush=True)


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _show_session(store: Store, session: Session) -> None:
    s = session.stats
    _say(
        f"  session {session.id}: {session.status}, processed {_mib(s.processed_bytes)}, read "
        f"{_mib(s.read_bytes)}, transferred {_mib(s.transferred_bytes)} in {s.duration:.1f} s "
        f"of VM work"
    )
    for task in store.sessions.tasks(session.id):
        t = task.stats
        bottleneck = t.bottleneck.value if t.bottleneck else "-"
        _say(
            f"    {task.vm_name:<28} {task.status:<8} read {_mib(t.read_bytes):>11}  "
            f"sent {_mib(t.transferred_bytes):>11}  bottleneck {bottleneck}"
        )
        for entry in task.log:
            if entry.severity != "info":
                _say(f"      {entry.severity}: {entry.message}")


def _progress(event: Event) -> None:
    if isinstance(event, TaskFinished):
        _say(f"    done: {event.vm} ({event.status})")


def _verify(lab: LabState, store: Store) -> bool:
    prod, dr = inventories(lab)
    ok = True
    for replica in store.replicas.list(JOB):
        points = store.replicas.points(replica.id)
        _say(f"  {replica.replica_name!r} on {replica.target_host_name} [{replica.state}]")
        for p in points:
            when = p.created.strftime("%Y-%m-%d %H:%M:%S")
            _say(f"    restore point {p.number}  {when} UTC  snapshot {p.snapshot_moref}")
        source = prod.vm(replica.vm_moref)
        latest = points[-1]
        for d in latest.disks:
            chain = DatastorePath.parse(d.chain or "")
            ds = next(x for x in dr.datastores if x.name == chain.datastore)
            point_file = Path(ds.url) / chain.path / f"point-{d.chain_point:04d}.vmdk"
            disk = source.disk(d.disk_key)
            flat = flat_name(datastore_file(prod, disk.datastore, disk.file_name))
            proc = subprocess.run(
                ["qemu-img", "compare", "-f", "vmdk", "-F", "raw", str(point_file), str(flat)],
                capture_output=True,
                text=True,
            )
            same = proc.returncode == 0
            ok = ok and same
            differs = proc.stdout.strip() or proc.stderr.strip()
            verdict = "qemu-img compare: identical" if same else f"DIFFERS: {differs}"
            _say(f"      disk {d.disk_key}: {chain} point {d.chain_point}: {verdict}")
    return ok


def run_demo(args: argparse.Namespace) -> int:
    if shutil.which("qemu-img") is None:
        raise ReplicaDeskError("qemu-img is missing: install the Debian package qemu-utils")
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="replicadesk-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    wan = os.geteuid() == 0
    _say("== The lab ==")
    lab = Lab(LabOptions(vms=args.vms), folder=work / "lab", wan=wan)
    try:
        state = lab.start()
        where = f"behind a {state.wan_mbit:g} Mbit/s WAN" if state.wan_mbit else "on loopback"
        _say(f"  production vCenter {state.production.url}: {state.vms} VMs, {state.disks} disks")
        _say(f"  DR vCenter {state.dr.url} {where}")
        with Store.open(work / "replicadesk.db") as store:
            register_lab(store, state, work / "metadata")
            job = lab_job(state, JOB, DEMO_VMS, folders=(DEMO_FOLDER,))
            store.jobs.add(job)
            _say(f"\n== Job {JOB!r}: {len(DEMO_VMS)} VMs and the folder {DEMO_FOLDER} ==")
            _say("  run 1 (first copy of every disk):")
            s1 = run_job(store, JOB, cancel=CANCEL.event, events=_progress)
            _show_session(store, s1)
            _say(f"\n  the guests write for {args.churn_seconds:g} s ...")
            result = churn(state, rate=8 << 20, duration=args.churn_seconds, stop=CANCEL.event)
            _say(f"  wrote {_mib(result.written_bytes)} on {len(result.vms)} VMs")
            _say("\n  run 2 (changed blocks from CBT):")
            s2 = run_job(store, JOB, cancel=CANCEL.event, events=_progress)
            _show_session(store, s2)
            _say("\n== Replicas and restore points (newest point checked against the source) ==")
            ok = _verify(state, store)
        _say("\nEvery replica matches its source." if ok else "\nSOME REPLICAS DIFFER.")
        return 0 if ok and s1.status != "failed" and s2.status != "failed" else 1
    finally:
        lab.stop()
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
