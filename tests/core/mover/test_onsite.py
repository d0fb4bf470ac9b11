"""Onsite runs (both movers in one process): cancel, kill at any instant, a full target."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from core import blocks
from core.diskgen import change_blocks
from core.engine import ReplicationRequest, replicate_disk
from core.errors import BlockIntegrityError, CancelledError, TargetFullError
from core.mover.batch import KIND_RAW, BlockBatch
from core.mover.target import LocalTarget, OpenRequest
from core.replica.chain import ReplicaChain
from core.replica.verify import verify_replica
from tests.conftest import MIB, assert_identical


def state(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != ".lock"}


def test_cancel_mid_run_changes_nothing(tmp_path, make_disk):
    disk = make_disk(size_mib=64, seed=41)
    rep, meta = tmp_path / "rep", tmp_path / "meta"
    replicate_disk(ReplicationRequest(disk, str(rep), meta))
    change_blocks(disk, 0.5, seed=42)
    before, meta_before = state(rep), state(meta)
    cancel = threading.Event()
    seen = []

    def progress(phase: str, done: int, total: int) -> None:
        seen.append(done)
        if done >= total // 4:
            cancel.set()

    with pytest.raises(CancelledError):
        replicate_disk(ReplicationRequest(disk, str(rep), meta), cancel=cancel, progress=progress)
    assert seen and seen[-1] < 64 * MIB
    assert state(rep) == before and state(meta) == meta_before


def test_a_block_that_does_not_match_its_digest_is_never_written(tmp_path):
    target = LocalTarget(tmp_path / "rep")
    target.open(OpenRequest(4 * MIB, MIB, 3))
    data = bytes(range(256)) * 4096
    digest = blocks.digest_blocks(data, MIB)
    bad = bytearray(data)
    bad[12345] ^= 0x20
    target.put(BlockBatch(np.array([2]), np.array([KIND_RAW], np.uint8), digest, [bytes(bad)]))
    with pytest.raises(BlockIntegrityError, match=r"Block 2 \(offset 2097152\)"):
        target.commit("")
    target.close()
    with ReplicaChain.open_for_read(tmp_path / "rep") as chain:
        assert chain.points == []
    assert not any(p.name.endswith(".partial") for p in (tmp_path / "rep").iterdir())


def test_full_target_file_system_is_a_clear_error_and_loses_nothing(tmp_path, make_disk, small_fs):
    from core.diskgen import ImageMix

    disk = make_disk(size_mib=64, seed=43, mix=ImageMix(zero=0.0, text=0.0, binary=0.0, random=1.0))
    small = make_disk(
        "small.img",
        size_mib=64,
        seed=44,
        mix=ImageMix(zero=0.95, text=0.05, binary=0.0, random=0.0),
    )
    rep, meta = small_fs / "rep", tmp_path / "meta"
    # First a point that fits, then one that does not.
    replicate_disk(ReplicationRequest(small, str(rep), meta))
    before = state(rep)
    with pytest.raises(TargetFullError, match="file system is full"):
        replicate_disk(ReplicationRequest(disk, str(rep), meta))
    assert state(rep) == before
    assert all(c.ok for c in verify_replica(rep))


def wait_for_partial(folder: Path, proc: subprocess.Popen[bytes]) -> None:
    """Until the run writes its point's data (or ends)."""
    deadline = time.time() + 30
    while time.time() < deadline and proc.poll() is None:
        if any(p.name.endswith(".partial") for p in folder.iterdir()):
            return
        time.sleep(0.002)


def _replicate_cmd(disk: Path, rep: Path, meta: Path, keep: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "core",
        "disk",
        "replicate",
        str(disk),
        str(rep),
        "--metadata-dir",
        str(meta),
        "--keep",
        str(keep),
    ]


def test_kill_at_any_instant_keeps_every_listed_point_correct(tmp_path, make_disk, snapshot):
    """SIGKILL onsite runs (with retention merging) at spread-out instants; after each kill
    every listed point must equal the source as it was at its run, and the next run completes."""
    disk = make_disk(size_mib=96, seed=45)
    rep, meta = tmp_path / "rep", tmp_path / "meta"
    states: dict[int, Path] = {}
    r = replicate_disk(ReplicationRequest(disk, str(rep), meta, keep=2))
    states[r.point.point_id] = snapshot(disk, "p1")
    killed = 0
    # Each kill lands a little later after the point's data starts: writing, commit, merge.
    for attempt, delay in enumerate([0.0, 0.01, 0.02, 0.04, 0.06, 0.09, 0.13, 0.18]):
        change_blocks(disk, 0.4, seed=200 + attempt)
        current = snapshot(disk, f"attempt{attempt}")
        proc = subprocess.Popen(
            _replicate_cmd(disk, rep, meta, 2),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_partial(rep, proc)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        killed += proc.returncode == -9
        with ReplicaChain.open_for_read(rep) as chain:
            listed = [p.id for p in chain.points]
        new = [i for i in listed if i not in states]
        for i in new:
            states[i] = current
        for i in listed:
            assert_identical(rep / f"point-{i:04d}.vmdk", states[i])
        # The next run finishes any interrupted work and commits a correct point.
        r = replicate_disk(ReplicationRequest(disk, str(rep), meta, keep=2))
        states[r.point.point_id] = current
        assert_identical(Path(r.point.path), current)
    assert killed >= 3, "most attempts must really be killed mid-run"
    assert all(c.ok for c in verify_replica(rep))


def test_a_sample_of_blocks_cbt_calls_unchanged_catches_cbt_that_lies(
    tmp_path, make_disk, snapshot
):
    disk = make_disk(size_mib=16, seed=61)
    meta = tmp_path / "meta"
    replicate_disk(ReplicationRequest(disk, str(tmp_path / "rep"), meta))
    replicate_disk(ReplicationRequest(disk, str(tmp_path / "trusting"), tmp_path / "meta2"))
    areas = change_blocks(disk, 0.25, seed=62)
    told = areas[1:]  # CBT "forgets" one changed block, as after a bad consolidation
    # Every block with data is in the sample: the forgotten one must be found and sent.
    checked = replicate_disk(
        ReplicationRequest(
            disk, str(tmp_path / "rep"), meta, changed_areas=told, cbt_verify_sample=10_000
        )
    )
    assert checked.stats.cbt_misses == 1
    assert checked.stats.sampled_blocks > 0
    assert_identical(tmp_path / "rep" / "point-0002.vmdk", disk)
    trusting = replicate_disk(
        ReplicationRequest(disk, str(tmp_path / "trusting"), tmp_path / "meta2", changed_areas=told)
    )
    assert trusting.stats.cbt_misses == 0 and trusting.stats.sampled_blocks == 0
    proc = subprocess.run(
        [
            "qemu-img",
            "compare",
            "-f",
            "vmdk",
            "-F",
            "raw",
            str(tmp_path / "trusting" / "point-0002.vmdk"),
            str(disk),
        ],
        capture_output=True,
    )
    assert proc.returncode == 1  # without the check, the lie goes unnoticed
