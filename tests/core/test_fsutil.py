"""core.fsutil: DirectWriter on a real ext4/xfs file and on a real tmpfs (no O_DIRECT there)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from core.fsutil import DIRECT_ALIGN, DirectWriter, aligned_buffer, punch_hole

MIB = 1 << 20


def _write_and_read(path: Path, pieces: list[tuple[int, memoryview | bytes]]) -> bytes:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    writer = DirectWriter(path, fd)
    try:
        for offset, data in pieces:
            writer.pwrite(data, offset)
    finally:
        writer.close()
    os.fsync(fd)
    os.close(fd)
    return path.read_bytes()


def _random(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _writes(buf_offset: int) -> tuple[list[tuple[int, memoryview | bytes]], bytes]:
    """Aligned and misaligned memory, offsets and lengths, with the content they must produce."""
    data = _random(3 * MIB + 777, 1)
    aligned = aligned_buffer(2 * MIB)
    aligned[:MIB] = data[:MIB]
    pieces: list[tuple[int, memoryview | bytes]] = [
        (0, memoryview(aligned)[:MIB]),  # aligned memory: straight through O_DIRECT
        (MIB, data[MIB : 2 * MIB]),  # bytes at an arbitrary address: staged
        (2 * MIB + buf_offset, data[2 * MIB + buf_offset : 3 * MIB + 777]),  # odd offset / tail
    ]
    expected = bytearray(3 * MIB + 777)
    for offset, piece in pieces:
        expected[offset : offset + len(piece)] = bytes(piece)
    return pieces, bytes(expected)


@pytest.mark.parametrize("buf_offset", [0, 512, 100])
def test_direct_writer_writes_exactly_what_it_is_given(tmp_path: Path, buf_offset: int) -> None:
    pieces, expected = _writes(buf_offset)
    probe = tmp_path / "probe"
    probe.touch()
    fd = os.open(probe, os.O_WRONLY)
    assert DirectWriter(probe, fd).direct, "tmp_path is expected to allow O_DIRECT (ext4/xfs)"
    os.close(fd)
    assert _write_and_read(tmp_path / "disk", pieces) == expected


def test_direct_writer_falls_back_on_tmpfs(small_fs: Path) -> None:
    pieces, expected = _writes(100)
    path = small_fs / "disk"
    # Older kernels refuse O_DIRECT on tmpfs (EINVAL), 6.6+ accept it: both must write right.
    assert _write_and_read(path, pieces) == expected


def test_aligned_buffer_is_page_aligned_and_zeroed() -> None:
    buf = aligned_buffer(3 * DIRECT_ALIGN + 1)
    view = np.frombuffer(buf, dtype=np.uint8)
    assert view.ctypes.data % DIRECT_ALIGN == 0
    assert not view.any()


def test_punch_hole_reads_as_zeros(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"\xff" * (2 * MIB))
    fd = os.open(path, os.O_RDWR)
    punch_hole(fd, MIB // 2, MIB)
    os.close(fd)
    data = path.read_bytes()
    assert data[: MIB // 2] == b"\xff" * (MIB // 2)
    assert data[MIB // 2 : MIB // 2 + MIB] == bytes(MIB)
    assert data[MIB // 2 + MIB :] == b"\xff" * (MIB // 2)
