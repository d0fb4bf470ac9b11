"""`replicadesk demo`: the main job on the built-in lab (`core.cli.labdemo`), or with `--engine`
the block engine end to end on a generated VM disk:

Generates a realistic disk, replicates it (full copy), changes 5% of its blocks and replicates
again with the changed areas (as CBT would report them), changes it once more and replicates by
digests only, then lists the restore points and checks every one of them twice: with our own
verifier and with `qemu-img compare` against the source as it was at that run. Then does the
same over TLS to a `mover serve` process (offsite, compressed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from core.cli.main import CANCEL
from core.diskgen import change_blocks, write_image
from core.engine import RemoteSpec, ReplicationRequest, replicate_disk
from core.errors import ReplicaDeskError
from core.mover.tls import TlsFiles
from core.replica.chain import ReplicaChain
from core.replica.verify import verify_replica


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = sub.add_parser(
        "demo",
        help="replicate lab VMs to the DR site twice and verify the replicas (--engine: one disk)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--engine",
        action="store_true",
        help="only the block engine: a generated disk replicated onsite and offsite",
    )
    demo.add_argument("--vms", type=int, default=24, help="VMs in the lab (default 24)")
    demo.add_argument(
        "--churn-seconds", type=float, default=4.0, help="guest writes between runs (default 4)"
    )
    demo.add_argument(
        "--size-mib", type=int, default=512, help="--engine: disk size (default 512 MiB)"
    )
    demo.add_argument("--dir", type=Path, help="work folder (default: a temporary one, removed)")
    demo.set_defaults(handler=cmd_demo)


def _say(text: str) -> None:
    print(text, flush=True)


def _qemu_compare(point: Path, image: Path) -> str:
    proc = subprocess.run(
        ["qemu-img", "compare", "-f", "vmdk", "-F", "raw", str(point), str(image)],
        capture_output=True,
        text=True,
    )
    return "identical" if proc.returncode == 0 else f"DIFFERS ({proc.stdout.strip()})"


def _run(label: str, request: ReplicationRequest) -> None:
    result = replicate_disk(request, cancel=CANCEL.event)
    s = result.stats
    _say(
        f"  {label}: restore point {result.point.point_id} "
        f"({'full' if result.full else 'incremental'}): read {s.read_bytes >> 20} MiB, "
        f"transferred {s.transferred_bytes >> 20} MiB, wrote {s.written_bytes >> 20} MiB "
        f"in {s.duration:.2f} s; bottleneck {s.bottleneck}"
    )
    for w in result.warnings:
        _say(f"    warning: {w}")


RequestFactory = Callable[[Path, list[tuple[int, int]] | None], ReplicationRequest]


def _scenario(work: Path, size: int, make_request: RequestFactory) -> bool:
    disk = work / "vm-disk.img"
    states = work / "states"
    states.mkdir(exist_ok=True)
    write_image(disk, size, seed=7)
    _say(f"  generated {disk.name}: {size >> 20} MiB (half zeros, text, binary, random)")
    _run("run 1", make_request(disk, None))
    shutil.copyfile(disk, states / "point-1.img")
    areas = change_blocks(disk, 0.05, seed=11)
    _run("run 2 (changed areas, like CBT)", make_request(disk, areas))
    shutil.copyfile(disk, states / "point-2.img")
    change_blocks(disk, 0.05, seed=12)
    _run("run 3 (digests only)", make_request(disk, None))
    shutil.copyfile(disk, states / "point-3.img")
    return True


def _check(replica: Path, work: Path) -> bool:
    ok = True
    with ReplicaChain.open_for_read(replica) as chain:
        points = chain.points
    _say(f"  restore points of {replica}:")
    for p in points:
        _say(f"    {p.id}  {p.created}  {p.kind:<5}  {p.path.name}")
    for check in verify_replica(replica):
        state = work / "states" / f"point-{check.point_id}.img"
        qemu = _qemu_compare(Path(check.path), state)
        ok = ok and check.ok and qemu == "identical"
        _say(
            f"    point {check.point_id}: replicadesk verify "
            f"{'ok' if check.ok else 'FAILED ' + '; '.join(check.problems)}; "
            f"qemu-img compare with the source at that run: {qemu}"
        )
    return ok


def cmd_demo(args: argparse.Namespace) -> int:
    if not args.engine:
        # Imported here: the lab demo pulls in the simulator, the vSphere adapter and the store.
        from core.cli.labdemo import run_demo

        return run_demo(args)
    return _engine_demo(args)


def _engine_demo(args: argparse.Namespace) -> int:
    if shutil.which("qemu-img") is None:
        raise ReplicaDeskError("qemu-img is missing: install the Debian package qemu-utils")
    size = args.size_mib << 20
    own = args.dir is None
    work = Path(tempfile.mkdtemp(prefix="replicadesk-demo-")) if own else args.dir
    work.mkdir(parents=True, exist_ok=True)
    ok = True
    server: subprocess.Popen[str] | None = None
    try:
        _say("== Onsite: both data movers in one process ==")
        onsite = work / "onsite"
        onsite.mkdir(exist_ok=True)
        replica = onsite / "replica"

        def local_request(disk: Path, areas: list[tuple[int, int]] | None) -> ReplicationRequest:
            return ReplicationRequest(
                disk, str(replica), onsite / "metadata", keep=7, changed_areas=areas
            )

        _scenario(onsite, size, local_request)
        ok = _check(replica, onsite) and ok

        _say("\n== Offsite: `replicadesk mover serve` over mutual TLS, compressed ==")
        offsite = work / "offsite"
        offsite.mkdir(exist_ok=True)
        certs = _create_certificates(offsite / "certs", ["localhost", "127.0.0.1"])
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "core",
                "mover",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--root",
                str(offsite / "dr-site"),
                "--tls-cert",
                str(certs["server"]),
                "--tls-key",
                str(certs["server_key"]),
                "--tls-ca",
                str(certs["ca"]),
                "--json",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        lines = ""
        while not lines.rstrip().endswith("}"):
            line = server.stdout.readline()
            if not line:
                raise ReplicaDeskError("the mover service did not start")
            lines += line
        addr = json.loads(lines)
        _say(f"  mover service listening on {addr['host']}:{addr['port']}")
        tls = TlsFiles(certs["client"], certs["client_key"], certs["ca"])
        spec = RemoteSpec(addr["host"], int(addr["port"]), tls)

        def remote_request(disk: Path, areas: list[tuple[int, int]] | None) -> ReplicationRequest:
            return ReplicationRequest(
                disk,
                "vm-disk",
                offsite / "metadata",
                keep=7,
                block_size=256 << 10,
                changed_areas=areas,
                target=spec,
            )

        _scenario(offsite, size, remote_request)
        ok = _check(offsite / "dr-site" / "vm-disk", offsite) and ok
        _say("\nEvery restore point verified." if ok else "\nSOME RESTORE POINTS FAILED.")
        return 0 if ok else 1
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
        if own:
            shutil.rmtree(work, ignore_errors=True)


def _create_certificates(out: Path, names: list[str]) -> dict[str, Path]:
    # Imported on use: `cryptography` costs 30 ms at start-up, which every other command saves.
    from core.mover.certs import create_certificates

    return create_certificates(out, names)
