"""Replica metadata and the digest file format: detection of every way they can be wrong."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from core.diskgen import change_blocks
from core.engine import ReplicationRequest, replicate_disk
from core.errors import MetadataMismatchError
from core.replica import digestfile
from core.replica.digestfile import DigestFileError, DigestSet
from core.replica.metadata import DIGESTS_NAME
from tests.conftest import assert_identical


def sample(point: int = 3) -> DigestSet:
    rng = np.random.default_rng(1)
    digests = rng.integers(0, 256, size=(5, 16), dtype=np.uint8)
    return DigestSet(1 << 20, 5 * (1 << 20) - 512, point, uuid.UUID(int=7), digests)


def test_digest_file_golden_header():
    """The on-disk header is locked: future changes must not alter it."""
    data = digestfile.encode(sample())
    assert data[:8] == b"RDDIGEST"
    assert data[8:72].hex() == (
        "0100100000001000"  # version 1, digest size 16, block size 1 MiB
        "00fe4f0000000000"  # disk size (5 MiB - 512)
        "0500000000000000"  # block count
        "0300000000000000"  # point id
        "00000000000000000000000000000007"  # replica id
        "95cd17ee02f5d30561d9e04de3657b00"  # BLAKE2b-128 checksum
    )
    assert len(data) == 72 + 5 * 16
    assert digestfile.decode(data).digests.tobytes() == sample().digests.tobytes()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d[:40], "shorter"),
        (lambda d: b"XXXXXXXX" + d[8:], "magic"),
        (lambda d: d[:8] + b"\x09" + d[9:], "version"),
        (lambda d: d[:-1], "truncated"),
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "checksum"),
    ],
)
def test_damaged_digest_files_are_refused(mutate, message):
    with pytest.raises(DigestFileError, match=message):
        digestfile.decode(mutate(digestfile.encode(sample())))


def run(disk, rep, meta, **kw):  # type: ignore[no-untyped-def]
    return replicate_disk(ReplicationRequest(disk, str(rep), meta, **kw))


@pytest.mark.parametrize("problem", ["missing", "corrupt", "stale"])
def test_untrustworthy_metadata_is_rebuilt_from_the_replica(tmp_path, make_disk, snapshot, problem):
    disk = make_disk(size_mib=8, seed=21)
    rep, meta = tmp_path / "rep", tmp_path / "meta"
    run(disk, rep, meta)
    saved = (meta / DIGESTS_NAME).read_bytes()
    change_blocks(disk, 0.25, seed=22)
    run(disk, rep, meta)
    if problem == "missing":
        (meta / DIGESTS_NAME).unlink()
    elif problem == "corrupt":
        data = bytearray((meta / DIGESTS_NAME).read_bytes())
        data[-3] ^= 0x10
        (meta / DIGESTS_NAME).write_bytes(data)
    else:
        (meta / DIGESTS_NAME).write_bytes(saved)  # digests of point 1: a wrong incremental
    change_blocks(disk, 0.25, seed=23)
    state = snapshot(disk, "p3")
    r = run(disk, rep, meta)
    assert r.metadata_rebuilt
    assert any("slow path" in w for w in r.warnings)
    assert not r.full
    assert r.stats.written_bytes < 8 * (1 << 20)  # never a silent full copy
    assert_identical(rep / "point-0003.vmdk", state)
    # The rebuilt metadata is good again: the next run needs no rebuild.
    assert not run(disk, rep, meta).metadata_rebuilt


def test_metadata_of_another_replica_is_an_error_unless_rebuild_is_asked(tmp_path, make_disk):
    disk = make_disk(size_mib=4, seed=1)
    run(disk, tmp_path / "repA", tmp_path / "metaA")
    run(disk, tmp_path / "repB", tmp_path / "metaB")
    before = (tmp_path / "metaB" / DIGESTS_NAME).read_bytes()
    with pytest.raises(MetadataMismatchError, match="describes replica"):
        run(disk, tmp_path / "repA", tmp_path / "metaB")
    assert (tmp_path / "metaB" / DIGESTS_NAME).read_bytes() == before
    r = run(disk, tmp_path / "repA", tmp_path / "metaB", rebuild_metadata=True)
    assert r.metadata_rebuilt and r.point.point_id == 2
