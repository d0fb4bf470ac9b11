"""Golden vectors: the digest and frame formats stored in replicas and sent between movers.

Replicas written today must verify and decompress with every later build. Future optimisations
must not change these values: if one of these tests fails, the change breaks existing replicas.
The expected values are literals on purpose, not computed by the reference libraries.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from _fastblocks import digest, lz4block

MIB = 1024 * 1024


def patterned(size: int) -> bytes:
    """Deterministic non-repeating-looking bytes: (i * 31 + i // 256) mod 256."""
    i = np.arange(size, dtype=np.uint64)
    return ((i * 31 + (i >> 8)) & 0xFF).astype(np.uint8).tobytes()


GOLDEN_DIGESTS = [
    (b"", "99aa06d3014798d86001c324468d497f"),
    (b"abc", "06b05ab6733a618578af5f94892f3950"),
    (b"abc" * 1000, "14b47fe9925960701fa2f942314cd628"),
    (bytes(512), "3258ca92e0a00944b2987a9d949e807c"),
    (bytes(MIB), "b6ef17a3448492b6918780b90550bf34"),
    (patterned(MIB), "6f9c6cb486a848907b185274974b1fd6"),
    (patterned(MIB + 123), "72b6365f2f4300a0777179cec61b8922"),
]


@pytest.mark.parametrize(
    ("data", "expected"), GOLDEN_DIGESTS, ids=[str(len(d)) for d, _ in GOLDEN_DIGESTS]
)
def test_digest_golden(data: bytes, expected: str) -> None:
    assert digest.digest(data).hex() == expected
    if data:
        rows = digest.digest_blocks(data, len(data))
        assert bytes(rows[0]).hex() == expected
        digests, _ = digest.scan(data, len(data))
        assert bytes(digests[0]).hex() == expected


def test_digest_golden_blocks_of_a_buffer() -> None:
    # Two full 1 MiB blocks (patterned, zero) and a 123-byte patterned tail.
    tail = patterned(MIB + 123)[MIB:]
    buf = patterned(MIB) + bytes(MIB) + tail
    digests, zero = digest.scan(buf, MIB)
    assert [bytes(row).hex() for row in digests] == [
        "6f9c6cb486a848907b185274974b1fd6",
        "b6ef17a3448492b6918780b90550bf34",
        digest.digest(tail).hex(),
    ]
    assert zero.tolist() == [False, True, False]


# A stored frame: codec 0x00, length 11 as uint32 little-endian, the raw bytes.
STORED_FRAME = b"\x00\x0b\x00\x00\x00hello world"

# An LZ4 frame: codec 0x01, length 416 (0x01a0) little-endian, then one raw LZ4 block.
LZ4_TEXT = b"ReplicaDesk golden frame: block 0000 of disk-0.vmdk\n" * 8
LZ4_FRAME = bytes.fromhex(
    "01a0010000ff255265706c6963614465736b20676f6c64656e206672616d653a20626c6f636b2030303030"
    "206f66206469736b2d302e766d646b0a3400ff5550766d646b0a"
)


def test_stored_frame_golden() -> None:
    assert lz4block.decompress(STORED_FRAME) == b"hello world"


def test_lz4_frame_golden() -> None:
    assert lz4block.decompress(LZ4_FRAME) == LZ4_TEXT


def test_frame_header_layout() -> None:
    assert (lz4block.CODEC_STORED, lz4block.CODEC_LZ4, lz4block.FRAME_HEADER_SIZE) == (0, 1, 5)
    for data in (LZ4_TEXT, patterned(4096), b"x"):
        frame = lz4block.compress(data)
        codec, length = struct.unpack_from("<BI", frame)
        assert length == len(data)
        if codec == lz4block.CODEC_STORED:
            assert frame[5:] == data
        else:
            assert codec == lz4block.CODEC_LZ4
            assert len(frame) < 5 + len(data)


def test_incompressible_block_is_stored() -> None:
    data = b"x"  # LZ4 needs 2 bytes for 1 byte of literal
    assert lz4block.compress(data) == b"\x00\x01\x00\x00\x00x"
    assert lz4block.compress(b"") == b"\x00\x00\x00\x00\x00"


def test_golden_frames_decompress_into() -> None:
    out = bytearray(2 * 512)
    lengths = lz4block.decompress_into([LZ4_FRAME, STORED_FRAME], out, 512)
    assert lengths.tolist() == [416, 11]
    assert out[:416] == LZ4_TEXT
    assert out[512 : 512 + 11] == b"hello world"
