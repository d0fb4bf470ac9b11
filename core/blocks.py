"""Block digests, zero detection, digest diffs and block compression for the whole engine.

The facade between core (the data movers, the replica store and its metadata) and the compiled
hot path `_fastblocks`: this is the only module of core that imports it. A disk is cut into
fixed-size blocks (a positive multiple of 512 bytes; the last block may be short); each block has
a 16-byte XXH3-128 digest (canonical big-endian, equal to `xxhash.xxh3_128(block).digest()`) and
travels as a self-describing frame:

    byte 0      codec: CODEC_LZ4 (0x01) or CODEC_STORED (0x00, for blocks LZ4 cannot shrink)
    bytes 1..4  original length, uint32 little-endian
    bytes 5..   LZ4 block or raw bytes

These formats are stored in replicas and sent between movers; tests/fastblocks locks them. Batch
calls release the GIL and use every core. A malformed frame raises `core.errors.ProtocolError`;
a bad argument raises ValueError.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

# OpenMP threads sleep between parallel regions instead of spinning (libgomp's default spins).
# Each call here is one short region (a 4 MiB batch); on a loaded 2-core machine a spinning
# thread starves the one doing the work: a digests run measured 3.7 s spinning, 0.9 s passive
# (1.0 s either way on an idle machine). libgomp reads this when the extension loads, so it is
# set before the import; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from _fastblocks import digest as _digest
from _fastblocks import lz4block as _lz4
from core.errors import ProtocolError

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "CODEC_LZ4",
    "CODEC_STORED",
    "DIGEST_SIZE",
    "FRAME_HEADER_SIZE",
    "SECTOR_SIZE",
    "ScanResult",
    "block_count",
    "compress",
    "compress_blocks",
    "decompress",
    "decompress_into",
    "diff_digests",
    "digest_blocks",
    "scan",
    "zero_blocks",
    "zero_digest",
]

DIGEST_SIZE = 16
CODEC_STORED = 0x00
CODEC_LZ4 = 0x01
FRAME_HEADER_SIZE = 5
SECTOR_SIZE = 512
"""Block sizes must be a multiple of this (a disk sector)."""

# The compiled modules define the same constants; a mismatch means a stale build.
if (_digest.DIGEST_SIZE, _lz4.CODEC_STORED, _lz4.CODEC_LZ4, _lz4.FRAME_HEADER_SIZE) != (
    DIGEST_SIZE,
    CODEC_STORED,
    CODEC_LZ4,
    FRAME_HEADER_SIZE,
):
    raise ImportError("_fastblocks does not match core.blocks: rebuild it (pip install -e .)")


@dataclass(frozen=True)
class ScanResult:
    """One pass over a buffer of blocks: a digest and a zero flag per block."""

    digests: npt.NDArray[np.uint8]
    """Shape (n, DIGEST_SIZE), dtype uint8; row i is block i's digest."""
    zero: npt.NDArray[np.bool_]
    """Shape (n,), dtype bool; True where block i is all zero bytes."""


def _check_block_size(block_size: int) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, int | np.integer):
        raise ValueError(f"block_size must be an integer, got {block_size!r}")
    if block_size <= 0:
        raise ValueError(f"block_size must be positive, got {block_size}")
    if block_size % SECTOR_SIZE:
        raise ValueError(f"block_size must be a multiple of {SECTOR_SIZE}, got {block_size}")
    return int(block_size)


def block_count(length: int, block_size: int) -> int:
    """Number of blocks of `block_size` in `length` bytes, counting a short last block."""
    if length < 0:
        raise ValueError(f"length must not be negative, got {length}")
    return -(-length // _check_block_size(block_size))


def scan(buf: Buffer, block_size: int) -> ScanResult:
    """Digest and zero-test every block of `buf` in one parallel pass.

    Zero blocks are not hashed: they get `zero_digest` of their length.
    """
    digests, zero = _digest.scan(buf, _check_block_size(block_size))
    return ScanResult(digests=digests, zero=zero)


def digest_blocks(buf: Buffer, block_size: int) -> npt.NDArray[np.uint8]:
    """The (n, DIGEST_SIZE) uint8 digests of every block of `buf`."""
    return _digest.digest_blocks(buf, _check_block_size(block_size))


def zero_blocks(buf: Buffer, block_size: int) -> npt.NDArray[np.bool_]:
    """A (n,) bool array: True where the block of `buf` is all zero bytes."""
    return _digest.zero_blocks(buf, _check_block_size(block_size))


@functools.lru_cache(maxsize=32)
def zero_digest(length: int) -> bytes:
    """The digest of `length` zero bytes (what `scan` reports for a zero block)."""
    if length < 0:
        raise ValueError(f"length must not be negative, got {length}")
    return _digest.digest(bytes(length))


def _as_digests(name: str, digests: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    array = np.asarray(digests)
    if array.dtype != np.uint8 or array.ndim != 2 or array.shape[1] != DIGEST_SIZE:
        raise ValueError(
            f"{name} must be a (n, {DIGEST_SIZE}) uint8 array, got {array.dtype} {array.shape}"
        )
    return np.ascontiguousarray(array)


def diff_digests(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """Ascending int64 indices of the blocks whose digests differ between `a` and `b`."""
    left = _as_digests("a", a)
    right = _as_digests("b", b)
    if left.shape != right.shape:
        raise ValueError(f"digest arrays differ in shape: {left.shape} vs {right.shape}")
    return _digest.diff(left, right)


def compress_blocks(
    buf: Buffer, block_size: int, indices: npt.NDArray[np.integer[Any]]
) -> list[bytes]:
    """Frames for the blocks of `buf` at `indices`, compressed in parallel, in `indices` order.

    IndexError if an index names no block of `buf`.
    """
    wanted = np.asarray(indices)
    if wanted.ndim != 1 or (wanted.size and wanted.dtype.kind not in "iu"):
        raise ValueError(f"indices must be a 1-D integer array, got {wanted.dtype} {wanted.shape}")
    wanted = np.ascontiguousarray(wanted, dtype=np.int64)
    return _lz4.compress_blocks(buf, _check_block_size(block_size), wanted)


def decompress_into(
    frames: Sequence[Buffer], out: Buffer, block_size: int
) -> npt.NDArray[np.int64]:
    """Decode frame i into out[i*block_size:], in parallel; return the decoded lengths (int64).

    `out` is writable and holds at least (len(frames) - 1) * block_size bytes. A malformed frame,
    or one longer than block_size or than the room left in `out`, raises ProtocolError.
    """
    size = _check_block_size(block_size)
    try:
        return _lz4.decompress_into(frames, out, size)
    except _lz4.FrameError as error:
        raise ProtocolError(str(error)) from error


def compress(data: Buffer) -> bytes:
    """One frame holding `data`: LZ4, or stored if LZ4 does not make it smaller."""
    return _lz4.compress(data)


def decompress(frame: Buffer) -> bytes:
    """The original bytes of one frame; ProtocolError if the frame is malformed."""
    try:
        return _lz4.decompress(frame)
    except _lz4.FrameError as error:
        raise ProtocolError(str(error)) from error
