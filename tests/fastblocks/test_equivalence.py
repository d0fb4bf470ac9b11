"""Each fast path against a slow reference: xxhash.xxh3_128, lz4.block and numpy."""

from __future__ import annotations

import lz4.block
import numpy as np
import pytest
import xxhash

from _fastblocks import digest, lz4block

from .conftest import KIB, MIB, realistic

# (block size, buffer length): exact multiples, odd tails, a buffer shorter than one block, empty.
SHAPES = [
    (256 * KIB, 4 * MIB),
    (256 * KIB, 3 * MIB + 1),
    (512 * KIB, 5 * MIB + 4095),
    (1 * MIB, 6 * MIB + 777),
    (4 * MIB, 9 * MIB + 13),
    (4 * MIB, 1000),
    (1 * MIB, 0),
    (512, 64 * KIB + 100),
    (100, 1000 + 7),  # not a sector multiple: the extension takes any positive size
    (1, 33),
]


def blocks_of(buf: bytes, block_size: int) -> list[bytes]:
    return [buf[i : i + block_size] for i in range(0, len(buf), block_size)]


def random_bytes(size: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


@pytest.fixture(params=["random", "realistic"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make(kind: str, size: int, seed: int) -> bytes:
    return random_bytes(size, seed) if kind == "random" else realistic(size, seed)


@pytest.mark.parametrize(("block_size", "length"), SHAPES)
def test_digests_match_xxh3_128(kind: str, block_size: int, length: int) -> None:
    buf = make(kind, length, seed=length)
    expected = [xxhash.xxh3_128(block).digest() for block in blocks_of(buf, block_size)]
    rows = digest.digest_blocks(buf, block_size)
    assert rows.shape == (len(expected), 16)
    assert rows.dtype == np.uint8
    assert [bytes(row) for row in rows] == expected
    scanned, zero = digest.scan(buf, block_size)
    assert [bytes(row) for row in scanned] == expected
    assert zero.dtype == np.bool_
    assert zero.tolist() == [not any(block) for block in blocks_of(buf, block_size)]


@pytest.mark.parametrize("block_size", [512, 4096, 64 * KIB])
def test_scan_zero_blocks_get_the_zero_digest(block_size: int) -> None:
    buf = bytearray(random_bytes(10 * block_size + 100, seed=block_size))
    for index in (0, 3, 4, 9):
        buf[index * block_size : (index + 1) * block_size] = bytes(block_size)
    buf[10 * block_size :] = bytes(100)  # a zero short tail
    digests, zero = digest.scan(buf, block_size)
    assert np.flatnonzero(zero).tolist() == [0, 3, 4, 9, 10]
    for index in (0, 3, 4, 9):
        assert bytes(digests[index]) == xxhash.xxh3_128(bytes(block_size)).digest()
    assert bytes(digests[10]) == xxhash.xxh3_128(bytes(100)).digest()
    assert (digests == digest.digest_blocks(buf, block_size)).all()


@pytest.mark.parametrize("block_size", [8, 64, 100, 1000, 4096])
def test_zero_detection_matches_numpy(block_size: int) -> None:
    # One non-zero byte at every position class the word loops treat differently: first byte,
    # inside the 64-byte steps, the 8-byte steps, the byte tail, last byte.
    n = 3 * block_size + block_size // 2 + 3
    positions = sorted({0, 1, 7, 8, 63, 64, 65, block_size - 1, block_size + 70, n - 1} - {n})
    for position in positions:
        if position >= n:
            continue
        arr = np.zeros(n, dtype=np.uint8)
        arr[position] = 0x80
        expected = np.array(
            [not block.any() for block in np.split(arr, range(block_size, n, block_size))]
        )
        assert (digest.zero_blocks(arr, block_size) == expected).all(), position
        assert (digest.scan(arr, block_size)[1] == expected).all(), position


def test_zero_detection_on_realistic_data_matches_numpy(data_8m: bytes) -> None:
    arr = np.frombuffer(data_8m, dtype=np.uint8)
    for block_size in (4 * KIB, 64 * KIB, 512 * KIB):
        expected = np.array(
            [not block.any() for block in np.split(arr, range(block_size, arr.size, block_size))]
        )
        assert expected.any() and not expected.all()
        assert (digest.zero_blocks(arr, block_size) == expected).all()


def test_buffer_kinds_give_the_same_digests(data_8m: bytes) -> None:
    expected = digest.digest_blocks(data_8m, MIB)
    for buf in (
        bytearray(data_8m),
        memoryview(data_8m),
        np.frombuffer(data_8m, dtype=np.uint8),
        memoryview(bytearray(data_8m))[: len(data_8m)],
    ):
        assert (digest.digest_blocks(buf, MIB) == expected).all()


def test_non_contiguous_buffer_is_refused() -> None:
    with pytest.raises((BufferError, TypeError, ValueError)):
        digest.digest_blocks(np.zeros(4096, dtype=np.uint8)[::2], 512)


def test_block_size_must_be_positive() -> None:
    for function in (digest.digest_blocks, digest.zero_blocks, digest.scan):
        with pytest.raises(ValueError, match="block_size"):
            function(b"abc", 0)


def test_diff_matches_numpy() -> None:
    rng = np.random.default_rng(7)
    a = rng.integers(0, 256, (5000, 16), dtype=np.uint8)
    b = a.copy()
    changed = rng.choice(5000, 321, replace=False)
    b[changed, rng.integers(0, 16, 321)] ^= 0x01
    expected = np.flatnonzero((a != b).any(axis=1))
    result = digest.diff(a, b)
    assert result.dtype == np.int64
    assert result.tolist() == expected.tolist() == sorted(changed.tolist())
    assert digest.diff(a, a).size == 0
    assert digest.diff(a[:0], b[:0]).size == 0


def test_diff_refuses_different_shapes() -> None:
    a = np.zeros((4, 16), dtype=np.uint8)
    with pytest.raises(ValueError, match="shape"):
        digest.diff(a, np.zeros((5, 16), dtype=np.uint8))
    with pytest.raises(ValueError):
        digest.diff(np.zeros((4, 8), dtype=np.uint8), np.zeros((4, 8), dtype=np.uint8))


@pytest.mark.parametrize(("block_size", "length"), SHAPES)
def test_frames_match_lz4_block(kind: str, block_size: int, length: int) -> None:
    buf = make(kind, length, seed=length + 1)
    blocks = blocks_of(buf, block_size)
    indices = np.arange(len(blocks), dtype=np.int64)[::-1].copy()  # any order, here reversed
    frames = lz4block.compress_blocks(buf, block_size, indices)
    assert len(frames) == len(blocks)
    for index, frame in zip(indices, frames, strict=True):
        block = blocks[index]
        assert frame[1:5] == len(block).to_bytes(4, "little")
        if frame[0] == lz4block.CODEC_LZ4:
            assert lz4.block.decompress(frame[1:]) == block
            assert len(frame) - 5 < len(block)
        else:
            assert frame[0] == lz4block.CODEC_STORED
            assert frame[5:] == block
        assert lz4block.decompress(frame) == block
        assert lz4block.compress(block) == frame
        # And the other way: python-lz4's output is a valid frame.
        assert lz4block.decompress(b"\x01" + lz4.block.compress(block)) == block

    out = bytearray(len(blocks) * block_size)
    lengths = lz4block.decompress_into(frames, out, block_size)
    assert lengths.dtype == np.int64
    assert lengths.tolist() == [len(blocks[i]) for i in indices]
    for slot, index in enumerate(indices):
        start = slot * block_size
        assert out[start : start + len(blocks[index])] == blocks[index]
    if length % block_size == 0:
        # In block order the frames fill a buffer of exactly the original length.
        exact = bytearray(length)
        lz4block.decompress_into(frames[::-1], exact, block_size)
        assert exact == buf


def test_realistic_data_is_about_half_compressible(data_8m: bytes) -> None:
    frames = lz4block.compress_blocks(data_8m, MIB, np.arange(9, dtype=np.int64))
    assert 0.2 < sum(map(len, frames)) / len(data_8m) < 0.7
    assert {frame[0] for frame in frames[:8]} == {lz4block.CODEC_LZ4}


def test_decompress_into_leaves_the_rest_of_a_block_alone() -> None:
    frames = [lz4block.compress(b"a" * 100), lz4block.compress(b"b" * 512)]
    out = bytearray(b"\xee" * 1024)
    assert lz4block.decompress_into(frames, out, 512).tolist() == [100, 512]
    assert out == b"a" * 100 + b"\xee" * 412 + b"b" * 512
    out_np = np.full(1024, 0xEE, dtype=np.uint8)
    lz4block.decompress_into(frames, out_np, 512)
    assert out_np.tobytes() == bytes(out)


def test_compress_blocks_selects_and_checks_indices(data_8m: bytes) -> None:
    frames = lz4block.compress_blocks(data_8m, MIB, np.array([8, 0, 8], dtype=np.int64))
    assert [lz4block.decompress(f) for f in frames] == [
        data_8m[8 * MIB :],
        data_8m[:MIB],
        data_8m[8 * MIB :],
    ]
    assert lz4block.compress_blocks(data_8m, MIB, np.array([], dtype=np.int64)) == []
    for bad in (9, -1):
        with pytest.raises(IndexError, match="out of range"):
            lz4block.compress_blocks(data_8m, MIB, np.array([0, bad], dtype=np.int64))
