#!/usr/bin/env python3
"""Benchmark of the block engine against the tools an admin would otherwise use.

Builds a realistic disk image (half zeros, text-like, binary, random), replicates it, changes 5%
of its 1 MiB blocks at random places, and times on the same data, in one run:

    ours, full onsite copy           vs  cp --sparse=always (+ sync of the copy)
    ours, incremental by digests     vs  rsync --inplace --no-whole-file (+ sync)
    ours, incremental, changed areas (what CBT gives)
    ours, offsite over loopback TLS (full, then incremental with changed areas)

Every one of our runs is a separate `replicadesk` process, so its peak memory (max RSS from
wait4) is its own; the mover service's peak is read when it exits. Before each timed run the
files it reads are read once (page cache warm for every contender alike: other work on the
machine can evict them, which made a digests run read from disk at 7x the time). Prints figures;
asserts nothing.

    .venv/bin/python benchmarks/engine_bench.py [--size-gib 4] [--dir /var/tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.diskgen import change_blocks, write_image  # noqa: E402
from core.mover.certs import create_certificates  # noqa: E402

MIB = 1 << 20


def timed(cmd: list[str]) -> tuple[float, int, str]:
    """Run a command; return (seconds, peak RSS in bytes, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err}")
    return seconds, usage.ru_maxrss * 1024, out


def warm(*paths: Path) -> None:
    """Read files through once so every contender starts with them in the page cache."""
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while f.read(8 << 20):
                pass


def replicadesk(*args: str) -> list[str]:
    return [sys.executable, "-m", "core", *args]


def ours(label: str, args: list[str], rows: list[dict[str, object]]) -> dict[str, object]:
    seconds, rss, out = timed(replicadesk("disk", "replicate", *args, "--json"))
    stats = json.loads(out)["stats"]
    row = {
        "what": label,
        "seconds": seconds,
        "read": stats["read_bytes"],
        "written": stats["written_bytes"],
        "sent": stats["transferred_bytes"],
        "peak_rss": rss,
        "bottleneck": stats["bottleneck"],
    }
    rows.append(row)
    return row


def tool(label: str, cmd: list[str], dst: Path, rows: list[dict[str, object]]) -> dict[str, object]:
    seconds, rss, _ = timed(cmd)
    start = time.perf_counter()
    subprocess.run(["sync", str(dst)], check=True)
    seconds += time.perf_counter() - start
    row = {
        "what": label,
        "seconds": seconds,
        "read": None,
        "written": None,
        "sent": None,
        "peak_rss": rss,
        "bottleneck": "",
    }
    rows.append(row)
    return row


def startup_seconds() -> float:
    """The least time our command takes to start: interpreter, imports, argument parsing (the
    best of 5 runs of `replicadesk disk replicate --help`)."""
    return min(timed(replicadesk("disk", "replicate", "--help"))[0] for _ in range(5))


def durable_copy_seconds(image: Path, areas: list[tuple[int, int]], out: Path) -> float:
    """The least any tool needs to make the changed blocks durable on this disk: read them from
    the (warm) image and write them one after another to a new file with O_DIRECT, then fsync.
    No digests, no metadata, no start-up: the I/O floor of a run given the changed areas."""
    import mmap

    chunk = max(length for _, length in areas)
    buf = mmap.mmap(-1, chunk)  # page-aligned, as O_DIRECT wants
    start = time.perf_counter()
    with open(image, "rb", buffering=0) as src:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
        try:
            for offset, length in areas:
                src.seek(offset)
                n = src.readinto(memoryview(buf)[:length])
                os.write(fd, memoryview(buf)[:n])
            os.fsync(fd)
        finally:
            os.close(fd)
    seconds = time.perf_counter() - start
    out.unlink()
    return seconds


def fmt_bytes(n: object) -> str:
    return "-" if n is None else f"{int(n) / MIB:,.0f} MiB"  # type: ignore[call-overload]


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size-gib", type=float, default=4.0)
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    ap.add_argument("--keep-files", action="store_true")
    args = ap.parse_args()
    for prog in ("rsync", "cp", "qemu-img"):
        if shutil.which(prog) is None:
            raise SystemExit(f"{prog} is missing (make setup installs it)")
    work = Path(tempfile.mkdtemp(prefix="replicadesk-bench-", dir=args.dir))
    os.chdir(ROOT)
    size = int(args.size_gib * 1024) * MIB
    rows: list[dict[str, object]] = []
    server = None
    try:
        image = work / "vm-disk.img"
        t0 = time.perf_counter()
        write_image(image, size, seed=42)
        print(f"image: {size / MIB:,.0f} MiB in {time.perf_counter() - t0:.1f} s at {image}")
        meta_a, meta_b = work / "meta-a", work / "meta-b"
        warm(image)
        full = ours(
            "ours: full onsite copy",
            [str(image), str(work / "rep-a"), "--metadata-dir", str(meta_a)],
            rows,
        )
        warm(image)
        cp = tool(
            "cp --sparse=always",
            ["cp", "--sparse=always", str(image), str(work / "rsync-copy.img")],
            work / "rsync-copy.img",
            rows,
        )
        ours(
            "ours: full onsite copy (2nd replica)",
            [str(image), str(work / "rep-b"), "--metadata-dir", str(meta_b)],
            rows,
        )

        areas = change_blocks(image, 0.05, seed=43)
        areas_file = work / "areas.json"
        areas_file.write_text(json.dumps([list(a) for a in areas]))
        print(
            f"changed {len(areas)} blocks of 1 MiB ({len(areas) * MIB / size:.1%}) at random places"
        )

        warm(image)
        inc = ours(
            "ours: incremental, digests",
            [str(image), str(work / "rep-a"), "--metadata-dir", str(meta_a)],
            rows,
        )
        warm(image)
        cbt = ours(
            "ours: incremental, changed areas",
            [
                str(image),
                str(work / "rep-b"),
                "--metadata-dir",
                str(meta_b),
                "--changed-areas",
                str(areas_file),
            ],
            rows,
        )
        warm(image)
        floor_io = durable_copy_seconds(image, areas, work / "floor.bin")
        floor_start = startup_seconds()
        warm(image, work / "rsync-copy.img")
        rs = tool(
            "rsync --inplace --no-whole-file",
            ["rsync", "--inplace", "--no-whole-file", str(image), str(work / "rsync-copy.img")],
            work / "rsync-copy.img",
            rows,
        )

        certs = create_certificates(work / "certs", ["127.0.0.1"])
        server = subprocess.Popen(
            replicadesk(
                "mover",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--root",
                str(work / "dr"),
                "--tls-cert",
                str(certs["server"]),
                "--tls-key",
                str(certs["server_key"]),
                "--tls-ca",
                str(certs["ca"]),
                "--json",
            ),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        text = ""
        while not text.rstrip().endswith("}"):
            text += server.stdout.readline()
        port = json.loads(text)["port"]
        tls = [
            "--target",
            f"127.0.0.1:{port}",
            "--tls-cert",
            str(certs["client"]),
            "--tls-key",
            str(certs["client_key"]),
            "--tls-ca",
            str(certs["ca"]),
        ]
        # The offsite replica starts from the changed image; a second change gives the increment.
        meta_c = work / "meta-c"
        ours(
            "ours: offsite full (TLS, LZ4)",
            [str(image), "vm", "--metadata-dir", str(meta_c), *tls],
            rows,
        )
        areas2 = change_blocks(image, 0.05, seed=44)
        (work / "areas2.json").write_text(json.dumps([list(a) for a in areas2]))
        ours(
            "ours: offsite incremental, changed areas",
            [
                str(image),
                "vm",
                "--metadata-dir",
                str(meta_c),
                "--changed-areas",
                str(work / "areas2.json"),
                *tls,
            ],
            rows,
        )
        server.terminate()
        _, _, usage = os.wait4(server.pid, 0)
        server_rss = usage.ru_maxrss * 1024
        server = None

        print()
        print(
            f"{'what':<42}{'seconds':>9}{'read':>12}{'written':>12}{'sent':>12}{'peak RSS':>11}  bottleneck"
        )
        for r in rows:
            print(
                f"{r['what']:<42}{float(r['seconds']):>9.2f}{fmt_bytes(r['read']):>12}"  # type: ignore[arg-type]
                f"{fmt_bytes(r['written']):>12}{fmt_bytes(r['sent']):>12}"
                f"{fmt_bytes(r['peak_rss']):>11}  {r['bottleneck']}"
            )
        print(f"{'mover service (target side), peak RSS':<42}{'':>45}{fmt_bytes(server_rss):>11}")
        print()
        rsync_s = float(rs["seconds"])  # type: ignore[arg-type]
        print(
            f"incremental by digests vs rsync:  {rsync_s / float(inc['seconds']):6.1f}x faster (target >= 10x)"
        )  # type: ignore[arg-type]
        print(
            f"incremental by changed areas vs rsync: {rsync_s / float(cbt['seconds']):6.1f}x faster (target >= 40x)"
        )  # type: ignore[arg-type]
        floor = floor_io + floor_start
        print(
            f"  floor of a changed-areas run on this machine: start-up {floor_start:.3f} s + reading "
            f"the changed blocks and writing them durably (O_DIRECT, fsync) {floor_io:.3f} s = "
            f"{floor:.3f} s,\n  so at most {rsync_s / floor:.1f}x faster than rsync here "
            f"({rsync_s / floor_io:.1f}x with no start-up at all); ours is {float(cbt['seconds']) / floor:.2f}x the floor"
        )
        print(
            f"full onsite copy vs cp --sparse=always: {float(full['seconds']) / float(cp['seconds']):6.2f}x the time (target <= 1.1x)"
        )  # type: ignore[arg-type]
        peak = max(int(r["peak_rss"]) for r in rows if str(r["what"]).startswith("ours"))  # type: ignore[call-overload]
        print(
            f"peak memory of our movers: {peak / MIB:.0f} MiB source side, {server_rss / MIB:.0f} MiB service (target < 200 MB)"
        )

        check = subprocess.run(
            [
                "qemu-img",
                "compare",
                "-f",
                "vmdk",
                "-F",
                "raw",
                str(work / "dr" / "vm" / "point-0002.vmdk"),
                str(image),
            ],
            capture_output=True,
            text=True,
        )
        print(
            f"qemu-img compare, offsite point 2 vs source: {check.stdout.strip() or check.stderr.strip()}"
        )
        return 0
    finally:
        if server is not None:
            server.kill()
            server.wait()
        if not args.keep_files:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
