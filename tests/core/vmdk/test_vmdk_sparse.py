"""KDMV hosted sparse files: SparseWriter output judged by qemu-img, SparseExtent's checks."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from core.errors import ChainError, DiskFormatError
from core.vmdk import (
    GRAIN_SIZE,
    Descriptor,
    Extent,
    SparseExtent,
    SparseWriter,
    flat_descriptor,
    new_cid,
    open_disk,
    render_descriptor,
)
from core.vmdk.descriptor import NO_PARENT_CID

MiB = 1 << 20


def sparse_descriptor(
    path: Path, capacity: int, cid: int, parent_cid: int = NO_PARENT_CID, hint: str | None = None
) -> Descriptor:
    return Descriptor(
        "monolithicSparse",
        [Extent("RW", capacity // 512, "SPARSE", path.name)],
        cid,
        parent_cid,
        hint,
        ddb={"ddb.adapterType": "lsilogic", "ddb.virtualHWVersion": "4"},
    )


def new_writer(path: Path, capacity: int, **kw: object) -> SparseWriter:
    return SparseWriter(path, capacity, sparse_descriptor(path, capacity, new_cid(), **kw))


def test_empty_file_matches_qemu_byte_for_byte_outside_the_descriptor(tmp_path, qemu):
    ref = qemu.create(tmp_path / "ref.vmdk", 100 * MiB)
    ours = tmp_path / "ours.vmdk"
    new_writer(ours, 100 * MiB).close()
    a, b = ref.read_bytes(), ours.read_bytes()
    assert len(a) == len(b) == 65536
    assert a[:512] == b[:512], "header differs from qemu-img's"
    assert a[21 * 512 :] == b[21 * 512 :], "grain directories/tables differ from qemu-img's"
    assert qemu.check(ours)["check-errors"] == 0


def test_written_grains_read_back_in_qemu(tmp_path, qemu, rng, reads_like):
    capacity = 12 * MiB
    expected = bytearray(capacity)
    path = tmp_path / "w.vmdk"
    with new_writer(path, capacity) as writer:
        for offset, length in [(5 * MiB, 3 * GRAIN_SIZE), (0, GRAIN_SIZE), (11 * MiB, MiB)]:
            data = rng.integers(0, 256, length, dtype=np.uint8)
            writer.write(offset, data)
            expected[offset : offset + length] = data.tobytes()
        writer.write(2 * MiB, bytes(GRAIN_SIZE))  # an all-zero grain, stored
        assert writer.bytes_written == 3 * GRAIN_SIZE + GRAIN_SIZE + MiB + GRAIN_SIZE
    raw = tmp_path / "expected.raw"
    raw.write_bytes(expected)
    check = qemu.check(path)
    assert check["check-errors"] == 0 and not check.get("corruptions")
    info = qemu.info(path)
    assert info["virtual-size"] == capacity and info["format"] == "vmdk"
    assert qemu.same(path, raw)
    # Grains were appended in call order after the 128-sector overhead.
    extent = SparseExtent.open(path)
    try:
        assert extent.grain_map[80] == 128 and extent.grain_map[0] == 128 + 3 * 128
        assert extent.descriptor is not None and extent.descriptor.capacity == capacity
        out = bytearray(GRAIN_SIZE)
        extent.read_grain(81, memoryview(out))
        assert out == expected[81 * GRAIN_SIZE : 82 * GRAIN_SIZE]
        extent.read_grain(1, memoryview(out))
        assert out == bytes(GRAIN_SIZE)
    finally:
        extent.close()
    with open_disk(path) as disk:
        reads_like(disk, bytes(expected))
        assert list(disk.data_ranges()) == [
            (0, GRAIN_SIZE),
            (2 * MiB, GRAIN_SIZE),
            (5 * MiB, 3 * GRAIN_SIZE),
            (11 * MiB, MiB),
        ]


def test_capacity_not_whole_grains(tmp_path, qemu, rng, reads_like):
    capacity = 3 * MiB + 7 * 512
    tail = capacity - 3 * MiB
    data = rng.integers(1, 256, GRAIN_SIZE + tail, dtype=np.uint8).tobytes()
    path = tmp_path / "odd.vmdk"
    with new_writer(path, capacity) as writer:
        writer.write(3 * MiB - GRAIN_SIZE, data)
    expected = bytes(3 * MiB - GRAIN_SIZE) + data
    raw = tmp_path / "odd.raw"
    raw.write_bytes(expected)
    assert qemu.check(path)["check-errors"] == 0
    assert qemu.info(path)["virtual-size"] == capacity
    assert qemu.same(path, raw)
    with open_disk(path) as disk:
        reads_like(disk, expected)


def test_three_level_chain_flat_kdmv_kdmv(tmp_path, qemu, rng, reads_like):
    """Flat base (ours), child and grandchild KDMV (ours): overriding, fall-through, zeroed."""
    capacity = 8 * MiB
    G = GRAIN_SIZE
    base_data = rng.integers(1, 256, capacity, dtype=np.uint8).tobytes()
    base_cid = new_cid()
    (tmp_path / "base-flat.vmdk").write_bytes(base_data)
    (tmp_path / "base.vmdk").write_text(
        render_descriptor(flat_descriptor(capacity, "base-flat.vmdk", base_cid))
    )
    expected = bytearray(base_data)

    child = tmp_path / "child.vmdk"
    child_cid = new_cid()
    with SparseWriter(
        child, capacity, sparse_descriptor(child, capacity, child_cid, base_cid, "base.vmdk")
    ) as writer:
        block = rng.integers(0, 256, 4 * G, dtype=np.uint8).tobytes()
        writer.write(10 * G, block)  # overrides the base
        expected[10 * G : 14 * G] = block
        writer.write(20 * G, bytes(G))  # an all-zero grain overrides too
        expected[20 * G : 21 * G] = bytes(G)
        writer.write_zeros(30 * G, 3 * G)  # zeroed grains, no data
        expected[30 * G : 33 * G] = bytes(3 * G)
        assert writer.bytes_written == 5 * G

    sub = tmp_path / "sub" / "grandchild.vmdk"
    sub.parent.mkdir()
    with SparseWriter(
        sub, capacity, sparse_descriptor(sub, capacity, new_cid(), child_cid, "../child.vmdk")
    ) as writer:
        writer.write_zeros(11 * G, G)  # zeroes the child's data
        expected[11 * G : 12 * G] = bytes(G)
        block = rng.integers(0, 256, 2 * G, dtype=np.uint8).tobytes()
        writer.write(31 * G, block)  # data over the child's zeroed grains
        expected[31 * G : 33 * G] = block
        writer.write(capacity - G, b"\x01" * G)
        expected[capacity - G :] = b"\x01" * G

    raw = tmp_path / "expected.raw"
    raw.write_bytes(expected)
    for image in (child, sub):
        assert qemu.check(image)["check-errors"] == 0
    assert qemu.same(sub, raw)
    chain = qemu.info(sub, chain=True)
    assert [Path(entry["filename"]).name for entry in chain] == [
        "grandchild.vmdk",
        "child.vmdk",
        "base.vmdk",
    ]
    assert all(entry["virtual-size"] == capacity for entry in chain)
    with open_disk(sub) as disk:
        reads_like(disk, bytes(expected))
        assert [image.path.name for image in disk.chain()] == [
            "grandchild.vmdk",
            "child.vmdk",
            "base.vmdk",
        ]
    with SparseExtent.open(sub) as extent:
        assert extent.has_zeroed_grains and extent.grain_map[11] == 1
    header = sub.read_bytes()[:12]
    assert struct.unpack("<4sII", header) == (b"KDMV", 2, 7)


def test_writer_refuses_illegal_writes(tmp_path):
    path = tmp_path / "w.vmdk"
    writer = new_writer(path, 2 * MiB)
    with pytest.raises(ValueError, match="multiple of the grain"):
        writer.write(512, bytes(GRAIN_SIZE))
    with pytest.raises(ValueError, match="whole grains"):
        writer.write(0, bytes(4096))
    with pytest.raises(ValueError, match="past the capacity"):
        writer.write(2 * MiB, bytes(GRAIN_SIZE))
    writer.write(0, bytes(2 * GRAIN_SIZE))
    with pytest.raises(ValueError, match="grain 1 is written twice"):
        writer.write(GRAIN_SIZE, bytes(GRAIN_SIZE))
    with pytest.raises(ValueError, match="twice"):
        writer.write_zeros(0, GRAIN_SIZE)
    with pytest.raises(FileExistsError):
        new_writer(path, 2 * MiB)
    writer.abort()
    assert not path.exists()
    with pytest.raises(ValueError, match="describes"):
        SparseWriter(path, 4 * MiB, sparse_descriptor(path, 2 * MiB, 1))
    with pytest.raises(ValueError, match="multiple of 512"):
        SparseWriter(path, 1000, sparse_descriptor(path, 1000, 1))


def test_unfinished_file_is_not_readable(tmp_path):
    path = tmp_path / "w.vmdk"
    with pytest.raises(RuntimeError), new_writer(path, 2 * MiB) as writer:
        writer.write(0, bytes(GRAIN_SIZE))
        raise RuntimeError("crash")
    assert not path.exists()
    writer = new_writer(path, 2 * MiB)
    writer.write(0, b"\x07" * GRAIN_SIZE)
    with pytest.raises(DiskFormatError, match="magic"):
        SparseExtent.open(path)
    writer.close()
    with SparseExtent.open(path) as extent:
        assert extent.grain_map[0] == 128


# --- reading KDMV files written by qemu, and refusing damaged ones ------------------------------


@pytest.fixture
def qemu_sparse(tmp_path, qemu):
    """A 16 MiB qemu-written monolithicSparse file with data in 3 places, and its raw copy."""
    path = qemu.create(tmp_path / "q.vmdk", 16 * MiB)
    qemu.io(path, "write -P 0xab 1M 64k", "write -P 0x5c 7M 300k", "write -P 0x01 15M 1M")
    return path, qemu.to_raw(path, tmp_path / "q.raw")


def test_reads_qemu_sparse(qemu_sparse, reads_like):
    path, raw = qemu_sparse
    with SparseExtent.open(path) as extent:
        assert extent.capacity == 16 * MiB and extent.grain_size == GRAIN_SIZE
        assert not extent.grain_map.flags.writeable
        assert np.count_nonzero(extent.grain_map) == 1 + 5 + 16
    with open_disk(path) as disk:
        reads_like(disk, raw.read_bytes())


def cut(path: Path, size: int) -> None:
    os.truncate(path, size)


def test_truncated_in_grain_tables(qemu_sparse):
    path, _ = qemu_sparse
    cut(path, 30 * 512)
    with pytest.raises(DiskFormatError, match="truncated") as caught:
        SparseExtent.open(path)
    assert str(path) in str(caught.value)


def test_truncated_in_grains(qemu_sparse):
    path, _ = qemu_sparse
    cut(path, path.stat().st_size - 4096)
    with pytest.raises(DiskFormatError, match=r"grain \d+ at sector \d+ lies beyond the end"):
        open_disk(path)


def patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(data)


@pytest.mark.parametrize(
    ("offset", "data", "why"),
    [
        (0, b"KDMW", "bad magic"),
        (4, struct.pack("<I", 9), "version 9"),
        (20, struct.pack("<Q", 100), "grain size of 100 sectors"),
        (20, struct.pack("<Q", 4), "grain size of 4 sectors"),
        (44, struct.pack("<I", 4096), "4096 entries per grain table"),
        (56, struct.pack("<Q", 1 << 30), "grain directory at sector"),
        (64, struct.pack("<Q", 1 << 20), "metadata"),
        (73, b"\r\n\n\n", "newline-detection"),
        (8, struct.pack("<I", 3 | 1 << 16), "compressed"),
        (12, struct.pack("<Q", 1 << 50), "capacity"),
        (512, b"garbage\x01\x02 line\n", "line 1"),
    ],
)
def test_corrupted_header(qemu_sparse, offset, data, why):
    path, _ = qemu_sparse
    patch(path, offset, data)
    with pytest.raises(DiskFormatError, match=why) as caught:
        SparseExtent.open(path)
    assert str(path) in str(caught.value)
    with pytest.raises(DiskFormatError):
        open_disk(path)


def test_corrupted_grain_table(qemu_sparse):
    path, _ = qemu_sparse
    blob = path.read_bytes()
    (gd_sector,) = struct.unpack_from("<Q", blob, 56)
    (gt_sector,) = struct.unpack_from("<I", blob, gd_sector * 512)
    gt_offset = gt_sector * 512
    assert struct.unpack_from("<I", blob, gt_offset + 16 * 4)[0] > 1
    patch(path, gt_offset + 16 * 4, struct.pack("<I", 3))
    with pytest.raises(DiskFormatError, match="grain 16 at sector 3 lies inside the metadata"):
        SparseExtent.open(path)
    patch(path, gt_offset + 16 * 4, struct.pack("<I", 1))
    with pytest.raises(DiskFormatError, match="no zeroed-grain flag"):
        SparseExtent.open(path)


def test_opening_a_4gib_sparse_reads_no_grains(tmp_path, qemu):
    path = qemu.create(tmp_path / "big.vmdk", 4 << 30)
    qemu.io(path, "write -P 0x33 0 24M", "write -P 0x44 3G 8M")

    def rchar() -> int:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
        raise AssertionError("no rchar")

    before = rchar()
    with open_disk(path) as disk:
        read = rchar() - before
        assert disk.size == 4 << 30
        assert read < 1 * MiB, f"opening read {read} bytes"
        assert list(disk.data_ranges()) == [(0, 24 * MiB), (3 << 30, 8 * MiB)]
        assert disk.read(3 << 30, 4) == b"\x44" * 4
        assert disk.read((3 << 30) - 2, 4) == b"\0\0\x44\x44"


def test_loop_of_two_kdmv_files(tmp_path):
    a, b = tmp_path / "a.vmdk", tmp_path / "b.vmdk"
    cid_a, cid_b = new_cid(), new_cid()
    SparseWriter(a, MiB, sparse_descriptor(a, MiB, cid_a, cid_b, "b.vmdk")).close()
    SparseWriter(b, MiB, sparse_descriptor(b, MiB, cid_b, cid_a, "a.vmdk")).close()
    with pytest.raises(ChainError, match="loops back"):
        open_disk(a)
