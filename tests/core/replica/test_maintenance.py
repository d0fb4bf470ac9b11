"""Retention held back and undo of a run's point, here and through a real mover service."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.diskgen import change_blocks
from core.engine import RemoteSpec, ReplicationRequest, maintain_replica, replicate_disk
from core.errors import RemoteError, ReplicaError
from core.replica.chain import MAX_POINTS, ReplicaChain
from core.replica.verify import verify_replica
from tests.conftest import assert_identical


def ids(folder: Path) -> list[int]:
    with ReplicaChain.open_for_read(folder) as chain:
        return [p.id for p in chain.points]


def test_drop_then_retain_keep_every_listed_point_correct(tmp_path, make_disk, snapshot):
    disk = make_disk(size_mib=8, seed=41)
    rep, meta = tmp_path / "rep", tmp_path / "meta"
    states = {}
    for i in range(1, 5):
        if i > 1:
            change_blocks(disk, 0.2, seed=40 + i)
        r = replicate_disk(ReplicationRequest(disk, str(rep), meta, keep=MAX_POINTS))
        states[r.point.point_id] = snapshot(disk, f"p{i}")
    assert ids(rep) == [1, 2, 3, 4]
    with pytest.raises(ReplicaError, match="restore point 3 is not the newest"):
        maintain_replica(str(rep), None, {"op": "drop", "point": 3})
    maintain_replica(str(rep), None, {"op": "drop", "point": 4})
    assert ids(rep) == [1, 2, 3]
    assert not (rep / "point-0004.vmdk").exists()
    assert maintain_replica(str(rep), None, {"op": "retain", "keep": 2}) == {"merged": [1]}
    assert ids(rep) == [2, 3]
    for pid in (2, 3):
        assert_identical(rep / f"point-{pid:04d}.vmdk", states[pid])
    assert all(c.ok for c in verify_replica(rep))
    # The next run (its metadata names the dropped point) rebuilds digests and is right.
    change_blocks(disk, 0.1, seed=49)
    r = replicate_disk(ReplicationRequest(disk, str(rep), meta, keep=MAX_POINTS))
    assert r.metadata_rebuilt and r.point.point_id == 5
    assert_identical(rep / "point-0005.vmdk", disk)


def test_dropping_the_only_point_empties_the_replica(tmp_path, make_disk):
    disk = make_disk(size_mib=4, seed=42)
    rep = tmp_path / "rep"
    replicate_disk(ReplicationRequest(disk, str(rep), tmp_path / "meta"))
    maintain_replica(str(rep), None, {"op": "drop", "point": 1})
    assert ids(rep) == []
    assert sorted(p.name for p in rep.iterdir() if p.name != ".lock") == ["replica.json"]


def test_upkeep_through_the_mover_service(tmp_path, make_disk, mover, certs):
    disk = make_disk(size_mib=4, seed=43)
    spec = RemoteSpec("127.0.0.1", mover.port, certs.client)
    meta = tmp_path / "meta"
    for i in range(3):
        if i:
            change_blocks(disk, 0.2, seed=43 + i)
        replicate_disk(ReplicationRequest(disk, "vm/disk-2000", meta, keep=MAX_POINTS, target=spec))
    rep = mover.root / "vm" / "disk-2000"
    assert maintain_replica("vm/disk-2000", spec, {"op": "drop", "point": 3}) == {}
    assert maintain_replica("vm/disk-2000", spec, {"op": "retain", "keep": 1}) == {"merged": [1]}
    assert ids(rep) == [2]
    for bad, message in (
        ({"op": "retain", "keep": 0}, "must be 1 to 28"),
        ({"op": "shred"}, "unknown upkeep operation"),
        ({"op": "drop", "point": 7}, "is not the newest"),
    ):
        with pytest.raises(RemoteError, match=message):
            maintain_replica("vm/disk-2000", spec, bad)
    with pytest.raises(RemoteError, match="not a path inside this mover's root"):
        maintain_replica("/etc", spec, {"op": "retain", "keep": 1})
    assert ids(rep) == [2]
