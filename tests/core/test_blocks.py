"""The contract of core.blocks, the facade the data movers and the replica store code against."""

from __future__ import annotations

import dataclasses
import struct

import lz4.block
import numpy as np
import pytest
import xxhash

from core import blocks
from core.errors import ProtocolError

KIB = 1024
MIB = 1024 * KIB


def sample(size: int, seed: int = 0) -> bytes:
    """Half random, half repeated text, in 4 KiB pages."""
    rng = np.random.default_rng(seed)
    pages = []
    for index in range(-(-size // (4 * KIB))):
        if index % 2:
            pages.append(rng.integers(0, 256, 4 * KIB, dtype=np.uint8).tobytes())
        else:
            pages.append(((b"replica block %08d " % index) * 179)[: 4 * KIB])
    return b"".join(pages)[:size]


def test_constants() -> None:
    assert blocks.DIGEST_SIZE == 16
    assert (blocks.CODEC_STORED, blocks.CODEC_LZ4, blocks.FRAME_HEADER_SIZE) == (0x00, 0x01, 5)


@pytest.mark.parametrize(
    ("length", "block_size", "expected"),
    [
        (0, 512, 0),
        (1, 512, 1),
        (512, 512, 1),
        (513, 512, 2),
        (10 * MIB, MIB, 10),
        (10 * MIB + 1, MIB, 11),
    ],
)
def test_block_count(length: int, block_size: int, expected: int) -> None:
    assert blocks.block_count(length, block_size) == expected


@pytest.mark.parametrize(
    ("block_size", "message"),
    [(0, "positive"), (-512, "positive"), (1000, "multiple of 512"), (513, "multiple of 512")],
)
def test_bad_block_size_is_a_value_error(block_size: int, message: str) -> None:
    buf = bytes(4096)
    calls = [
        lambda: blocks.block_count(4096, block_size),
        lambda: blocks.scan(buf, block_size),
        lambda: blocks.digest_blocks(buf, block_size),
        lambda: blocks.zero_blocks(buf, block_size),
        lambda: blocks.compress_blocks(buf, block_size, np.array([0])),
        lambda: blocks.decompress_into([], bytearray(4096), block_size),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=message):
            call()


def test_block_size_must_be_an_integer() -> None:
    with pytest.raises(ValueError, match="integer"):
        blocks.scan(bytes(4096), 512.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        blocks.block_count(-1, 512)


def test_scan() -> None:
    buf = bytearray(sample(5 * MIB + 1000))
    buf[MIB : 2 * MIB] = bytes(MIB)
    buf[5 * MIB :] = bytes(1000)
    result = blocks.scan(buf, MIB)
    assert isinstance(result, blocks.ScanResult)
    assert result.digests.shape == (6, 16) and result.digests.dtype == np.uint8
    assert result.zero.shape == (6,) and result.zero.dtype == np.bool_
    assert result.zero.tolist() == [False, True, False, False, False, True]
    assert bytes(result.digests[1]) == blocks.zero_digest(MIB)
    assert bytes(result.digests[5]) == blocks.zero_digest(1000)
    assert (result.digests == blocks.digest_blocks(buf, MIB)).all()
    assert (result.zero == blocks.zero_blocks(buf, MIB)).all()
    for index in range(6):
        block = bytes(buf[index * MIB : (index + 1) * MIB])
        assert bytes(result.digests[index]) == xxhash.xxh3_128(block).digest()
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.zero = result.zero  # type: ignore[misc]


def test_scan_of_an_empty_buffer() -> None:
    result = blocks.scan(b"", MIB)
    assert result.digests.shape == (0, 16)
    assert result.zero.shape == (0,)


def test_zero_digest() -> None:
    assert blocks.zero_digest(0) == xxhash.xxh3_128(b"").digest()
    assert blocks.zero_digest(4 * MIB) == xxhash.xxh3_128(bytes(4 * MIB)).digest()
    assert blocks.zero_digest(4 * MIB) is blocks.zero_digest(4 * MIB)  # cached


def test_diff_digests() -> None:
    a = blocks.digest_blocks(sample(4 * MIB, seed=1), 256 * KIB)
    changed = bytearray(sample(4 * MIB, seed=1))
    changed[3 * 256 * KIB + 17] ^= 0xFF
    changed[-1] ^= 0xFF
    b = blocks.digest_blocks(changed, 256 * KIB)
    result = blocks.diff_digests(a, b)
    assert result.dtype == np.int64
    assert result.tolist() == [3, 15]
    with pytest.raises(ValueError, match="shape"):
        blocks.diff_digests(a, b[:-1])
    with pytest.raises(ValueError, match="uint8"):
        blocks.diff_digests(a.astype(np.int16), b)  # type: ignore[arg-type]
    # Non-contiguous views are fine.
    assert blocks.diff_digests(a[::2], b[::2]).tolist() == []


def test_compress_and_decompress_blocks() -> None:
    incompressible = np.random.default_rng(5).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    buf = sample(3 * MIB) + incompressible
    indices = np.array([3, 0, 2], dtype=np.int64)
    frames = blocks.compress_blocks(buf, MIB, indices)
    assert [frame[0] for frame in frames] == [blocks.CODEC_STORED, blocks.CODEC_LZ4, 1]
    assert [struct.unpack_from("<I", frame, 1)[0] for frame in frames] == [4096, MIB, MIB]
    out = bytearray(3 * MIB)
    lengths = blocks.decompress_into(frames, out, MIB)
    assert lengths.dtype == np.int64 and lengths.tolist() == [4096, MIB, MIB]
    assert out[:4096] == buf[3 * MIB :]
    assert out[MIB : 2 * MIB] == buf[:MIB]
    assert out[2 * MIB :] == buf[2 * MIB : 3 * MIB]
    # Any integer dtype works; a block may be asked for twice; frames equal `compress`'s.
    assert (
        blocks.compress_blocks(buf, MIB, np.array([2, 2], dtype=np.uint16))
        == [blocks.compress(buf[2 * MIB : 3 * MIB])] * 2
    )
    with pytest.raises(IndexError):
        blocks.compress_blocks(buf, MIB, np.array([4]))
    with pytest.raises(ValueError, match="integer"):
        blocks.compress_blocks(buf, MIB, np.array([0.0]))  # type: ignore[arg-type]


def test_compress_and_decompress_one_frame() -> None:
    data = sample(MIB)
    frame = blocks.compress(data)
    assert frame[0] == blocks.CODEC_LZ4
    assert lz4.block.decompress(frame[1:]) == data
    assert blocks.decompress(frame) == data
    assert blocks.decompress(memoryview(frame)) == data
    assert blocks.decompress(b"\x01" + lz4.block.compress(data)) == data
    random = np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8)
    stored = blocks.compress(random)
    assert stored[0] == blocks.CODEC_STORED and stored[5:] == random.tobytes()
    assert blocks.decompress(stored) == random.tobytes()


def corruptions() -> list[tuple[str, bytes, str]]:
    lz4_frame = blocks.compress(sample(64 * KIB))
    stored = blocks.compress(bytes(np.random.default_rng(4).integers(0, 256, 100, dtype=np.uint8)))
    assert (lz4_frame[0], stored[0]) == (blocks.CODEC_LZ4, blocks.CODEC_STORED)
    longer = struct.pack("<BI", 1, 64 * KIB + 1) + lz4_frame[5:]
    shorter = struct.pack("<BI", 1, 64 * KIB - 1) + lz4_frame[5:]
    return [
        ("unknown codec", b"\x7f" + lz4_frame[1:], "unknown codec 0x7f"),
        ("lz4 read as stored", b"\x00" + lz4_frame[1:], "length mismatch"),
        ("stored read as lz4", b"\x01" + stored[1:], "LZ4"),
        ("empty", b"", "truncated"),
        ("header cut", lz4_frame[:3], "truncated"),
        ("payload cut", lz4_frame[:-10], "LZ4 decode error"),
        ("stored cut", stored[:-1], "length mismatch"),
        ("length too big", longer, "length mismatch|decode"),
        ("length too small", shorter, "decode error"),
        ("huge length", struct.pack("<BI", 1, 0xFFFFFFFF) + lz4_frame[5:], "impossible"),
    ]


@pytest.mark.parametrize(
    ("case", "frame", "message"), corruptions(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_corrupted_frame_is_a_protocol_error(case: str, frame: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        blocks.decompress(frame)
    good = blocks.compress(b"ok" * 100)
    with pytest.raises(ProtocolError, match=f"frame 1: .*({message})"):
        blocks.decompress_into([good, frame, good], bytearray(3 * MIB), MIB)


def test_frame_longer_than_its_block_is_a_protocol_error() -> None:
    frame = blocks.compress(sample(4096))
    with pytest.raises(ProtocolError, match="more than the 2048 allowed"):
        blocks.decompress_into([frame], bytearray(4096), 2048)
    # The last frame may not run past the end of `out` either.
    with pytest.raises(ProtocolError, match="more than the 1024 allowed"):
        blocks.decompress_into([frame, frame], bytearray(4096 + 1024), 4096)


def test_decompress_into_needs_room_and_a_writable_buffer() -> None:
    frame = blocks.compress(b"x" * 512)
    with pytest.raises(ValueError, match="too small"):
        blocks.decompress_into([frame, frame, frame], bytearray(512), 512)
    with pytest.raises((BufferError, TypeError)):
        blocks.decompress_into([frame], bytes(512), 512)
    assert blocks.decompress_into([], bytearray(), 512).tolist() == []
