"""Seeding a replica chain from a disk already at the target (replica mapping): the seed reads
like the disk, the next run sends only the blocks that differ, the seeded disk is never written;
a seed left by a failed attempt is replaced, a folder holding real points is refused; through a
real mover service only disks inside its root are read."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from core.diskgen import change_blocks
from core.engine import RemoteSpec, ReplicationRequest, maintain_replica, replicate_disk
from core.errors import RemoteError, ReplicaError
from core.mover.process import MoverServiceProcess
from core.replica.chain import MAX_POINTS, ReplicaChain
from core.replica.seed import is_seed, seed_chain
from core.replica.verify import verify_replica
from tests.conftest import Certs, assert_identical

MIB = 1 << 20
MakeDisk = Callable[..., Path]
Snapshot = Callable[[Path, str], Path]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_seeded_chain_sends_only_the_differing_blocks(
    tmp_path: Path, make_disk: MakeDisk, snapshot: Snapshot
) -> None:
    source = make_disk("source.img", size_mib=32, seed=61)
    # The copy at the DR site: the source as it was, then the source moved on (2 of 32 blocks).
    at_target = snapshot(source, "restored")
    before = sha(at_target)
    change_blocks(source, 2 / 32, seed=62)
    rep, meta = tmp_path / "rep", tmp_path / "meta"

    answer = maintain_replica(
        str(rep), None, {"op": "seed", "disk": str(at_target), "block_size": MIB}
    )
    assert answer["point"] == 1 and 0 < answer["written"] <= 32 * MIB
    assert_identical(rep / "point-0001.vmdk", at_target)
    with ReplicaChain.open_for_read(rep) as chain:
        assert is_seed(chain.manifest.points[0].source)

    r = replicate_disk(ReplicationRequest(source, str(rep), meta, keep=MAX_POINTS))
    assert r.metadata_rebuilt and not r.full and r.point.point_id == 2
    assert r.stats.changed_bytes == 2 * MIB  # a full copy would have sent the disk's data
    assert r.stats.transferred_bytes <= 2 * MIB
    assert_identical(rep / "point-0002.vmdk", source)
    assert all(c.ok for c in verify_replica(rep))
    assert sha(at_target) == before  # the mapped disk is only read


def test_a_left_seed_is_replaced_and_real_points_are_refused(
    tmp_path: Path, make_disk: MakeDisk
) -> None:
    first = make_disk("first.img", size_mib=8, seed=63)
    other = make_disk("other.img", size_mib=12, seed=64)
    rep = tmp_path / "rep"
    seed_chain(rep, first, MIB)
    # A failed first run left its seed: the next attempt seeds again (here a resized disk).
    point = seed_chain(rep, other, MIB)
    assert point.id == 1
    assert_identical(rep / "point-0001.vmdk", other)

    real = tmp_path / "real"
    replicate_disk(ReplicationRequest(first, str(real), tmp_path / "meta"))
    kept = sha(real / "base-flat.vmdk")
    with pytest.raises(ReplicaError, match=r"already holds 1 restore point\(s\) of another"):
        seed_chain(real, other, MIB)
    assert sha(real / "base-flat.vmdk") == kept

    broken = tmp_path / "broken.vmdk"
    broken.write_text("# Disk DescriptorFile\nnot a disk\n")
    with pytest.raises(ReplicaError, match="the disk to seed from cannot be read"):
        seed_chain(tmp_path / "rep3", broken, MIB)


def test_seeding_through_the_mover_service(
    tmp_path: Path, make_disk: MakeDisk, mover: MoverServiceProcess, certs: Certs
) -> None:
    spec = RemoteSpec("127.0.0.1", mover.port, certs.client)
    source = make_disk("source.img", size_mib=8, seed=65)
    restored = mover.root / "restored-vm" / "disk.img"
    restored.parent.mkdir(parents=True)
    shutil.copyfile(source, restored)
    change_blocks(source, 1 / 8, seed=66)

    with pytest.raises(RemoteError, match="is not a path inside this mover's root"):
        maintain_replica(
            "vm/disk-2000", spec, {"op": "seed", "disk": str(source), "block_size": MIB}
        )
    answer = maintain_replica(
        "vm/disk-2000", spec, {"op": "seed", "disk": "restored-vm/disk.img", "block_size": MIB}
    )
    assert answer["point"] == 1
    r = replicate_disk(
        ReplicationRequest(source, "vm/disk-2000", tmp_path / "meta", keep=MAX_POINTS, target=spec)
    )
    assert r.metadata_rebuilt and r.stats.changed_bytes == MIB
    assert_identical(mover.root / "vm" / "disk-2000" / "point-0002.vmdk", source)
