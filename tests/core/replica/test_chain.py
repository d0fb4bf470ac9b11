"""Replica chains on real files, every point checked by qemu-img against the source at that run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.diskgen import change_blocks
from core.engine import ReplicationRequest, replicate_disk
from core.errors import ReplicaCorruptError, ReplicaError, ReplicaLockedError, ReplicaMismatchError
from core.replica.chain import ReplicaChain
from core.replica.manifest import Manifest, PendingMerge
from core.replica.verify import export_point, verify_replica
from tests.conftest import MIB, assert_identical, qemu_check

KIB = 1024


def run(disk: Path, replica: Path, meta: Path, **kw):  # type: ignore[no-untyped-def]
    return replicate_disk(ReplicationRequest(disk, str(replica), meta, **kw))


def folder_state(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != ".lock"}


def test_full_then_incremental_points_match_source_at_each_run(tmp_path, make_disk, snapshot):
    disk = make_disk(size_mib=24, seed=3)
    rep, meta = tmp_path / "rep", tmp_path / "meta"
    states = []
    r1 = run(disk, rep, meta, keep=5)
    assert r1.full and r1.point.point_id == 1
    states.append(snapshot(disk, "p1"))
    for i in range(2, 5):
        change_blocks(disk, 0.1, seed=i)
        r = run(disk, rep, meta, keep=5)
        assert not r.full and r.point.point_id == i
        assert r.stats.written_bytes <= 0.1 * 24 * MIB + MIB
        states.append(snapshot(disk, f"p{i}"))
    with ReplicaChain.open_for_read(rep) as chain:
        points = chain.points
    assert [p.id for p in points] == [1, 2, 3, 4]
    assert [p.kind for p in points] == ["base", "delta", "delta", "delta"]
    for p, state in zip(points, states, strict=True):
        assert_identical(p.path, state)
        qemu_check(p.path)
    assert all(c.ok for c in verify_replica(rep, against=disk)[-1:])


def test_base_is_sparse_and_zero_blocks_are_not_written(tmp_path, make_disk):
    disk = make_disk(size_mib=32, seed=5)
    rep = tmp_path / "rep"
    r = run(disk, rep, tmp_path / "meta")
    data = disk.read_bytes()
    nonzero = sum(1 for i in range(0, len(data), MIB) if any(data[i : i + MIB])) * MIB
    assert nonzero < len(data)
    allocated = os.stat(rep / "base-flat.vmdk").st_blocks * 512
    assert allocated <= nonzero
    assert r.stats.written_bytes == r.stats.changed_bytes == nonzero
    assert r.stats.zero_blocks == (len(data) - nonzero) // MIB


def test_block_that_becomes_zero_reads_zero_in_the_next_point(tmp_path, make_disk, snapshot):
    disk = make_disk(size_mib=8, seed=9)
    rep, meta = tmp_path / "rep", tmp_path / "meta"
    run(disk, rep, meta, block_size=256 * KIB)
    data = bytearray(disk.read_bytes())
    nonzero = [i for i in range(0, len(data), 256 * KIB) if any(data[i : i + 256 * KIB])]
    victim = nonzero[len(nonzero) // 2]
    with open(disk, "r+b") as f:
        f.seek(victim)
        f.write(bytes(256 * KIB))
    state = snapshot(disk, "zeroed")
    r = run(disk, rep, meta, block_size=256 * KIB)
    assert r.stats.blocks_sent == 1 and r.stats.written_bytes == 0
    assert_identical(Path(r.point.path), state)


def test_retention_merges_oldest_delta_and_keeps_points_correct(tmp_path, make_disk, snapshot):
    disk = make_disk(size_mib=16, seed=4)
    rep, meta = tmp_path / "rep", tmp_path / "meta"
    states = {}
    for i in range(1, 7):
        if i > 1:
            change_blocks(disk, 0.2, seed=100 + i)
        r = run(disk, rep, meta, keep=3)
        states[r.point.point_id] = snapshot(disk, f"p{i}")
    with ReplicaChain.open_for_read(rep) as chain:
        points = chain.points
    assert [p.id for p in points] == [4, 5, 6]
    assert points[0].kind == "base"
    names = {p.name for p in rep.iterdir()}
    assert not any(n.startswith(("point-0001", "point-0002", "point-0003")) for n in names)
    for p in points:
        assert_identical(p.path, states[p.id])


def test_keep_one_and_lowering_keep(tmp_path, make_disk, snapshot):
    disk = make_disk(size_mib=8, seed=6)
    rep, meta = tmp_path / "rep", tmp_path / "meta"
    for i in range(4):
        change_blocks(disk, 0.25, seed=i)
        run(disk, rep, meta, keep=4)
    change_blocks(disk, 0.25, seed=50)
    r = run(disk, rep, meta, keep=1)
    assert r.point.merged == [1, 2, 3, 4]
    state = snapshot(disk, "last")
    with ReplicaChain.open_for_read(rep) as chain:
        assert [p.id for p in chain.points] == [5]
    assert_identical(Path(r.point.path), state)


@pytest.mark.parametrize("stage", ["before-copy", "half-copied", "descriptor-swapped"])
def test_interrupted_merge_leaves_points_readable_and_is_finished(
    tmp_path, make_disk, snapshot, stage
):
    """Reproduce the files a kill leaves at each step of a merge; every listed point must
    read correctly as it is, and the next open must finish the merge."""
    disk = make_disk(size_mib=16, seed=8)
    rep, meta = tmp_path / "rep", tmp_path / "meta"
    run(disk, rep, meta, keep=3)
    change_blocks(disk, 0.3, seed=1)
    run(disk, rep, meta, keep=3)
    p2 = snapshot(disk, "p2")
    change_blocks(disk, 0.3, seed=2)
    run(disk, rep, meta, keep=3)
    p3 = snapshot(disk, "p3")

    manifest = Manifest.load(rep)
    assert manifest is not None
    manifest.points = manifest.points[1:]
    manifest.merge = PendingMerge(1, 2)
    manifest.save(rep)
    if stage != "before-copy":
        chain = ReplicaChain(rep, manifest, -1, writable=True)
        if stage == "half-copied":
            # Copy the first half of the delta's data into the base, as a kill mid-copy would.
            full = rep / "point-0002.vmdk"
            keep = rep / "p2-backup.vmdk"
            shutil.copyfile(full, keep)
            chain._copy_into_base(full)
            shutil.copyfile(keep, full)
            keep.unlink()
        else:
            chain._copy_into_base(rep / "point-0002.vmdk")
            from core.fsutil import atomic_write
            from core.vmdk.descriptor import flat_descriptor, render_descriptor

            cid = manifest.points[0].cid
            atomic_write(
                rep / "point-0002.vmdk",
                render_descriptor(flat_descriptor(16 * MIB, "base-flat.vmdk", cid)).encode(),
            )
    # As the kill left it: the listed points read right in qemu-img.
    assert_identical(rep / "point-0002.vmdk", p2)
    assert_identical(rep / "point-0003.vmdk", p3)
    # The next writer finishes the merge.
    with ReplicaChain.open_for_write(rep, disk_size=16 * MIB, block_size=MIB) as chain:
        assert chain.manifest.merge is None
        assert [p.id for p in chain.points] == [2, 3]
        assert chain.points[0].kind == "base"
    assert not (rep / "point-0001.vmdk").exists()
    assert_identical(rep / "point-0002.vmdk", p2)
    assert_identical(rep / "point-0003.vmdk", p3)
    assert all(c.ok for c in verify_replica(rep))


def test_replica_of_another_disk_is_refused_and_untouched(tmp_path, make_disk):
    disk = make_disk(size_mib=8, seed=1)
    other = make_disk("other.img", size_mib=12, seed=2)
    rep, meta = tmp_path / "rep", tmp_path / "meta"
    run(disk, rep, meta)
    before = folder_state(rep)
    with pytest.raises(ReplicaMismatchError, match="12582912"):
        run(other, rep, tmp_path / "meta2")
    with pytest.raises(ReplicaMismatchError, match="262144"):
        run(disk, rep, meta, block_size=256 * KIB)
    assert folder_state(rep) == before


def test_folder_with_foreign_files_is_not_taken_over(tmp_path, make_disk):
    disk = make_disk(size_mib=4)
    rep = tmp_path / "rep"
    rep.mkdir()
    (rep / "important.txt").write_text("keep me")
    with pytest.raises(ReplicaError, match="not empty"):
        run(disk, rep, tmp_path / "meta")
    assert (rep / "important.txt").read_text() == "keep me"


@pytest.mark.parametrize("damage", ["truncate", "flip-grain", "flip-header"])
def test_damaged_delta_is_detected_and_nothing_else_changes(tmp_path, make_disk, damage):
    disk = make_disk(size_mib=8, seed=2)
    rep, meta = tmp_path / "rep", tmp_path / "meta"
    run(disk, rep, meta)
    change_blocks(disk, 0.25, seed=3)
    run(disk, rep, meta)
    delta = rep / "point-0002.vmdk"
    data = bytearray(delta.read_bytes())
    if damage == "truncate":
        delta.write_bytes(data[: len(data) - 70000])
    elif damage == "flip-grain":
        data[-1000] ^= 0x40
        delta.write_bytes(data)
    else:
        data[0] ^= 0xFF
        delta.write_bytes(data)
    checks = {c.point_id: c for c in verify_replica(rep)}
    assert checks[1].ok
    assert not checks[2].ok and checks[2].problems
    if damage != "flip-grain":
        before = folder_state(rep)
        change_blocks(disk, 0.1, seed=4)
        with pytest.raises(ReplicaCorruptError, match="restore point 2"):
            run(disk, rep, meta)
        assert folder_state(rep) == before


def test_leftovers_of_a_killed_run_are_removed_on_next_open(tmp_path, make_disk):
    disk = make_disk(size_mib=4)
    rep, meta = tmp_path / "rep", tmp_path / "meta"
    run(disk, rep, meta)
    (rep / "point-0002.vmdk.partial").write_bytes(b"KDMV half written")
    (rep / "point-0002.digests").write_bytes(b"junk")
    r = run(disk, rep, meta)
    assert r.point.point_id == 2
    assert not (rep / "point-0002.vmdk.partial").exists()
    assert all(c.ok for c in verify_replica(rep))


def test_one_writer_at_a_time(tmp_path, make_disk):
    disk = make_disk(size_mib=4)
    rep = tmp_path / "rep"
    run(disk, rep, tmp_path / "meta")
    with ReplicaChain.open_for_write(rep, disk_size=4 * MIB, block_size=MIB):
        with pytest.raises(ReplicaLockedError):
            ReplicaChain.open_for_write(rep, disk_size=4 * MIB, block_size=MIB)
        with pytest.raises(ReplicaLockedError):
            ReplicaChain.open_for_read(rep)


def test_export_writes_the_point_as_raw(tmp_path, make_disk, snapshot):
    disk = make_disk(size_mib=8, seed=12)
    rep, meta = tmp_path / "rep", tmp_path / "meta"
    run(disk, rep, meta)
    first = snapshot(disk, "p1")
    change_blocks(disk, 0.3, seed=13)
    run(disk, rep, meta)
    out = tmp_path / "export.raw"
    export_point(rep, 1, out)
    assert out.read_bytes() == first.read_bytes()
    with pytest.raises(Exception, match="exists"):
        export_point(rep, 2, out)


def test_manifest_lists_points_with_iso_dates(tmp_path, make_disk):
    disk = make_disk(size_mib=4)
    rep = tmp_path / "rep"
    run(disk, rep, tmp_path / "meta")
    data = json.loads((rep / "replica.json").read_text())
    assert data["points"][0]["created"].endswith("+00:00")
    assert np.dtype(type(data["disk_size"])) is not None
