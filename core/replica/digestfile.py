"""The digest file: one 128-bit digest per block of a disk at one restore point.

Used on both sides of a replication: the source-side replica metadata (the digests of the latest
point, so a run without CBT finds changed blocks without reading the target) and the target-side
record of every kept point (so `disk verify` can check a point without the source).

Format (little-endian), locked by tests/core/replica/test_digestfile.py:

    offset size  field
    0      8     magic b"RDDIGEST"
    8      2     format version (1)
    10     2     digest size (16)
    12     4     block size in bytes
    16     8     disk size in bytes
    24     8     block count
    32     8     restore point id the digests describe
    40     16    replica id (UUID bytes)
    56     16    BLAKE2b-128 over bytes 0..55 and the digest array
    72     n*16  the digests (XXH3-128, canonical form), block order

A file whose length, magic, version or checksum is wrong is corrupt: the caller decides what to
do (rebuild from the replica, never guess).
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.fsutil import atomic_write

MAGIC = b"RDDIGEST"
VERSION = 1
DIGEST_SIZE = 16
_HEAD = struct.Struct("<8sHHIQQQ16s")
HEADER_SIZE = _HEAD.size + 16


class DigestFileError(ValueError):
    """A digest file that cannot be trusted; the message says why."""


@dataclass(frozen=True)
class DigestSet:
    """The digests of one disk at one restore point."""

    block_size: int
    disk_size: int
    point_id: int
    replica_id: uuid.UUID
    digests: np.ndarray  # (block_count, 16) uint8

    @property
    def block_count(self) -> int:
        return int(self.digests.shape[0])


def block_count(disk_size: int, block_size: int) -> int:
    return (disk_size + block_size - 1) // block_size


def zero_digests(disk_size: int, block_size: int) -> np.ndarray:
    """The digests of an all-zero disk: where a first run starts, and what a hole reads as."""
    from core import blocks

    count = block_count(disk_size, block_size)
    out = np.empty((count, DIGEST_SIZE), dtype=np.uint8)
    out[:] = np.frombuffer(blocks.zero_digest(block_size), dtype=np.uint8)
    tail = disk_size - (count - 1) * block_size
    if count and tail != block_size:
        out[-1] = np.frombuffer(blocks.zero_digest(tail), dtype=np.uint8)
    return out


def encode(ds: DigestSet) -> bytes:
    expected = block_count(ds.disk_size, ds.block_size)
    if ds.digests.shape != (expected, DIGEST_SIZE) or ds.digests.dtype != np.uint8:
        raise ValueError(f"digest array shape {ds.digests.shape} does not fit {expected} blocks")
    head = _HEAD.pack(
        MAGIC,
        VERSION,
        DIGEST_SIZE,
        ds.block_size,
        ds.disk_size,
        expected,
        ds.point_id,
        ds.replica_id.bytes,
    )
    body = np.ascontiguousarray(ds.digests).tobytes()
    checksum = hashlib.blake2b(head + body, digest_size=16).digest()
    return head + checksum + body


def decode(data: bytes) -> DigestSet:
    if len(data) < HEADER_SIZE:
        raise DigestFileError(f"only {len(data)} bytes, shorter than the {HEADER_SIZE}-byte header")
    magic, version, dsize, bsize, disk_size, count, point_id, rid = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise DigestFileError("not a digest file (bad magic)")
    if version != VERSION:
        raise DigestFileError(f"format version {version} is not supported (expected {VERSION})")
    if dsize != DIGEST_SIZE or bsize <= 0 or bsize % 512:
        raise DigestFileError(f"bad header (digest size {dsize}, block size {bsize})")
    if count != block_count(disk_size, bsize):
        raise DigestFileError(f"block count {count} does not fit a {disk_size}-byte disk")
    if len(data) != HEADER_SIZE + count * DIGEST_SIZE:
        raise DigestFileError(
            f"{len(data)} bytes, expected {HEADER_SIZE + count * DIGEST_SIZE} (truncated or padded)"
        )
    checksum = data[_HEAD.size : HEADER_SIZE]
    body = data[HEADER_SIZE:]
    if hashlib.blake2b(data[: _HEAD.size] + body, digest_size=16).digest() != checksum:
        raise DigestFileError("checksum mismatch (the file was damaged)")
    digests = np.frombuffer(body, dtype=np.uint8).reshape(count, DIGEST_SIZE).copy()
    return DigestSet(bsize, disk_size, point_id, uuid.UUID(bytes=rid), digests)


def write(path: Path, ds: DigestSet) -> None:
    atomic_write(path, encode(ds))


def read(path: Path) -> DigestSet:
    return decode(path.read_bytes())
