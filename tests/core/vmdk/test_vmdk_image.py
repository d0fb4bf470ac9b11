"""open_disk over every source layout, each read compared with what qemu-img makes of it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from core.errors import ChainError, DiskFormatError, SourceTruncatedError, UsageError
from core.vmdk import (
    GRAIN_SIZE,
    Descriptor,
    Extent,
    RawImage,
    SparseWriter,
    VmdkImage,
    flat_descriptor,
    new_cid,
    open_disk,
    render_descriptor,
)

MiB = 1 << 20


def file_data_ranges(path: Path) -> list[tuple[int, int]]:
    with RawImage(path) as raw:
        return list(raw.data_ranges())


def assert_same_sparse(disk, raw: Path, rng: np.random.Generator, samples: int = 50) -> None:
    """Compare a large disk with qemu's raw conversion without reading it all: every range
    either side says holds data, plus random samples elsewhere."""
    assert disk.size == raw.stat().st_size
    ranges = sorted(list(disk.data_ranges()) + file_data_ranges(raw))
    with open(raw, "rb") as file:
        for offset, length in ranges:
            for pos in range(offset, offset + length, 4 * MiB):
                n = min(4 * MiB, offset + length - pos)
                file.seek(pos)
                assert disk.read(pos, n) == file.read(n), pos
        for pos in rng.integers(0, disk.size - 4096, samples).tolist():
            file.seek(pos)
            assert disk.read(pos, 4096) == file.read(4096), pos


# --- raw ------------------------------------------------------------------------------------


def test_raw_image_with_holes(tmp_path, reads_like):
    path = tmp_path / "disk.img"
    with open(path, "wb") as file:
        file.truncate(8 * MiB)
        file.seek(3 * MiB)
        file.write(b"\xee" * 8192)
    expected = bytearray(8 * MiB)
    expected[3 * MiB : 3 * MiB + 8192] = b"\xee" * 8192
    with open_disk(path) as disk:
        assert isinstance(disk, RawImage)
        reads_like(disk, bytes(expected))
        ranges = list(disk.data_ranges())
        assert sum(length for _, length in ranges) < MiB  # holes are skipped
        with pytest.raises(ValueError, match="outside the disk"):
            disk.read(8 * MiB - 10, 11)
        words = np.zeros(1024, dtype=np.uint64)  # a typed buffer is read as bytes
        disk.readinto(3 * MiB, memoryview(words))
        assert words[0] == 0xEEEEEEEEEEEEEEEE
        with pytest.raises(ValueError, match="writable"):
            disk.readinto(0, memoryview(bytes(10)))


def test_raw_size_must_be_whole_sectors(tmp_path):
    path = tmp_path / "odd.img"
    path.write_bytes(b"x" * 1000)
    with pytest.raises(DiskFormatError, match="not whole sectors"):
        open_disk(path)
    named = tmp_path / "data.vmdk"
    named.write_bytes(bytes(4096))
    with open_disk(named, "raw") as disk:
        assert disk.size == 4096
    with pytest.raises(UsageError):
        open_disk(named, "qcow2")


# --- flat -----------------------------------------------------------------------------------


def test_qemu_monolithic_flat(tmp_path, qemu, reads_like):
    path = qemu.create(tmp_path / "f.vmdk", 6 * MiB, "monolithicFlat")
    qemu.io(path, "write -P 0xab 1M 64k", "write -P 0x17 4095k 2k")
    raw = qemu.to_raw(path, tmp_path / "f.raw")
    with open_disk(path) as disk:
        assert isinstance(disk, VmdkImage) and disk.descriptor.create_type == "monolithicFlat"
        reads_like(disk, raw.read_bytes())


def test_vmfs_with_several_extents_and_offsets(tmp_path, qemu, rng, reads_like):
    a = rng.integers(0, 256, 2 * MiB, dtype=np.uint8).tobytes()
    b = rng.integers(0, 256, 3 * MiB, dtype=np.uint8).tobytes()
    (tmp_path / "vm-flat.vmdk").write_bytes(a)
    (tmp_path / "more.bin").write_bytes(b)
    extents = [
        Extent("RW", 2 * MiB // 512, "VMFS", "vm-flat.vmdk"),
        Extent("RW", 2 * MiB // 512, "FLAT", "more.bin", 2048),
        Extent("RW", 100, "FLAT", "vm-flat.vmdk", 1),
    ]
    path = tmp_path / "vm.vmdk"
    path.write_text(render_descriptor(Descriptor("vmfs", extents, new_cid())))
    expected = a + b[MiB : 3 * MiB] + a[512 : 512 + 100 * 512]
    raw = qemu.to_raw(path, tmp_path / "vm.raw")
    assert raw.read_bytes() == expected
    with open_disk(path) as disk:
        reads_like(disk, expected)

    # qemu-img 7.2 skips extent lines without a file name, so it cannot judge a ZERO extent
    # (it reads the disk 1 MiB shorter); VMware's format reads it as zeros.
    extents.insert(1, Extent("RW", MiB // 512, "ZERO", None))
    path.write_text(render_descriptor(Descriptor("vmfs", extents, new_cid())))
    assert qemu.info(path)["virtual-size"] == len(expected)
    with open_disk(path) as disk:
        assert [r for r in disk.data_ranges() if r[0] < 3 * MiB] == [(0, 2 * MiB)]
        reads_like(disk, a + bytes(MiB) + expected[2 * MiB :])


def test_blank_line_before_extent_is_read_once(tmp_path, reads_like):
    (tmp_path / "x-flat.vmdk").write_bytes(b"\x42" * MiB)
    path = tmp_path / "x.vmdk"
    path.write_text(
        '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="vmfs"\n'
        '\nRW 2048 VMFS "x-flat.vmdk"\n\n#DDB\n'
    )
    with open_disk(path) as disk:
        reads_like(disk, b"\x42" * MiB)
    # A descriptor whose first comment line was left out is still recognised by its name.
    path.write_text('CID=1\ncreateType="vmfs"\nRW 2048 VMFS "x-flat.vmdk"\n')
    with open_disk(path) as disk:
        assert disk.size == MiB


def test_descriptor_rewritten_in_place_by_qemu(tmp_path, reads_like):
    """qemu rewrites a descriptor (new CID) with a NUL terminator and keeps the old tail."""
    (tmp_path / "x-flat.vmdk").write_bytes(b"\x42" * MiB)
    text = render_descriptor(flat_descriptor(MiB, "x-flat.vmdk", 0xABC))
    path = tmp_path / "x.vmdk"
    path.write_bytes(text.encode() + b"\0" + b'"2147483647"\n')
    with open_disk(path) as disk:
        assert isinstance(disk, VmdkImage) and disk.cid == 0xABC
        reads_like(disk, b"\x42" * MiB)


def test_truncated_flat_extent(tmp_path, qemu):
    path = qemu.create(tmp_path / "t.vmdk", 4 * MiB, "monolithicFlat")
    extent = tmp_path / "t-flat.vmdk"
    os.truncate(extent, 3 * MiB)
    with pytest.raises(SourceTruncatedError) as caught:
        open_disk(path)
    message = str(caught.value)
    assert str(extent) in message and str(3 * MiB) in message and str(4 * MiB) in message


def test_missing_extent_file(tmp_path, qemu):
    path = qemu.create(tmp_path / "m.vmdk", MiB, "monolithicFlat")
    (tmp_path / "m-flat.vmdk").unlink()
    with pytest.raises(DiskFormatError, match=r"m-flat\.vmdk is missing"):
        open_disk(path)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "empty file"),
        (b"\x00\x01\x02\x03" * 256, "neither a text descriptor nor a KDMV"),
        (b"\xff\xfe# Disk DescriptorFile\nversion=1\n", "UTF-8"),
        (b'# Disk DescriptorFile\nCID=1\nRW 1 FLAT "x" 0\n', "no createType"),
    ],
)
def test_vmdk_that_is_not_a_disk(tmp_path, content, why):
    path = tmp_path / "bad.vmdk"
    path.write_bytes(content)
    with pytest.raises(DiskFormatError, match=why) as caught:
        open_disk(path)
    assert str(path) in str(caught.value)


# --- sparse chains --------------------------------------------------------------------------


def test_qemu_sparse_chain_of_three(tmp_path, qemu, rng, reads_like):
    size = 20 * MiB
    base = qemu.create(tmp_path / "base.vmdk", size)
    qemu.io(base, "write -P 0xab 1M 64k", "write -P 0x11 2M 3M", "write -P 0x12 19M 1M")
    mid = qemu.create(tmp_path / "mid.vmdk", size, backing=base)
    # Partial grains make qemu copy the rest of the grain from the parent (COW).
    qemu.io(mid, "write -P 0xcd 1M 4k", "write -P 0x21 3M 100k", "write -z 19M 64k")
    top = qemu.create(tmp_path / "top.vmdk", size, backing=mid)
    qemu.io(top, "write -P 0xef 1052k 8k", "write -P 0x31 10M 1M", "write -P 0x32 3100k 1k")
    raw = qemu.to_raw(top, tmp_path / "top.raw")
    expected = raw.read_bytes()
    with open_disk(top) as disk:
        assert [image.path.name for image in disk.chain()] == [
            "top.vmdk",
            "mid.vmdk",
            "base.vmdk",
        ]
        reads_like(disk, expected)
        for offset, length in zip(
            rng.integers(0, size - 300_000, 200).tolist(),
            rng.integers(1, 300_000, 200).tolist(),
            strict=True,
        ):
            assert disk.read(offset, length) == expected[offset : offset + length]


def test_split_sparse_child_of_flat_parent(tmp_path, qemu, rng):
    """twoGbMaxExtentSparse (text descriptor, SPARSE extents, a parent) over a flat base."""
    size = 3 << 30
    base_cid = new_cid()
    with open(tmp_path / "base-flat.vmdk", "wb") as file:
        file.truncate(size)
        for pos in (0, (2 << 30) - MiB, size - MiB):
            file.seek(pos)
            file.write(rng.integers(1, 256, MiB, dtype=np.uint8).tobytes())
    (tmp_path / "base.vmdk").write_text(
        render_descriptor(flat_descriptor(size, "base-flat.vmdk", base_cid))
    )
    child = qemu.create(tmp_path / "c.vmdk", size, "twoGbMaxExtentSparse", tmp_path / "base.vmdk")
    # Across the boundary between the two extent files; over base data; in a base hole.
    qemu.io(child, "write -P 0x61 2047M 2M", "write -P 0x62 0 8k", "write -P 0x63 1G 64k")
    raw = qemu.to_raw(child, tmp_path / "c.raw")
    with open_disk(child) as disk:
        assert disk.descriptor.create_type == "twoGbMaxExtentSparse"
        assert disk.parent is not None and disk.parent.cid == base_cid
        assert_same_sparse(disk, raw, rng)
        boundary = 2 << 30
        assert disk.read(boundary - 3, 6) == b"\x61" * 6
        assert disk.read(boundary + MiB - 2, 4) == b"\x61\x61" + raw_at(raw, boundary + MiB, 2)


def raw_at(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as file:
        file.seek(offset)
        return file.read(length)


def write_child(path: Path, size: int, parent_cid: int, hint: str | None) -> None:
    d = Descriptor(
        "monolithicSparse",
        [Extent("RW", size // 512, "SPARSE", path.name)],
        new_cid(),
        parent_cid,
        hint,
    )
    with SparseWriter(path, size, d) as writer:
        writer.write(0, b"\x01" * GRAIN_SIZE)


def test_wrong_parent_cid(tmp_path, qemu):
    base = qemu.create(tmp_path / "base.vmdk", 2 * MiB)
    qemu.io(base, "write -P 0x05 1M 64k")
    with open_disk(base) as disk:
        assert isinstance(disk, VmdkImage)
        cid = disk.cid
    child = tmp_path / "child.vmdk"
    write_child(child, 2 * MiB, cid ^ 1, "base.vmdk")
    with pytest.raises(ChainError, match=f"parentCID {cid ^ 1:08x} does not match CID {cid:08x}"):
        open_disk(child)
    # qemu refuses it too, on the first read that falls through to the parent's data.
    proc = qemu.run("qemu-img", "convert", "-O", "raw", child, tmp_path / "x", check=False)
    assert proc.returncode != 0 and "Invalid argument" in proc.stderr


def test_missing_or_unusable_parent(tmp_path):
    child = tmp_path / "child.vmdk"
    write_child(child, 2 * MiB, 0x1234, "gone.vmdk")
    with pytest.raises(ChainError, match=r"parent 'gone\.vmdk' not found"):
        open_disk(child)
    child.unlink()
    write_child(child, 2 * MiB, 0x1234, None)
    with pytest.raises(ChainError, match="no parentFileNameHint"):
        open_disk(child)
    child.unlink()
    (tmp_path / "raw.img").write_bytes(bytes(2 * MiB))
    write_child(child, 2 * MiB, 0x1234, "raw.img")
    with pytest.raises(ChainError, match="is not a VMDK"):
        open_disk(child)


def test_absolute_esxi_parent_hint_found_beside_the_child(tmp_path, reads_like):
    base_cid = new_cid()
    (tmp_path / "base-flat.vmdk").write_bytes(b"\x09" * 2 * MiB)
    (tmp_path / "base.vmdk").write_text(
        render_descriptor(flat_descriptor(2 * MiB, "base-flat.vmdk", base_cid, "vmfs"))
    )
    child = tmp_path / "child.vmdk"
    write_child(child, 2 * MiB, base_cid, "/vmfs/volumes/datastore1/vm/base.vmdk")
    with open_disk(child) as disk:
        reads_like(disk, b"\x01" * GRAIN_SIZE + b"\x09" * (2 * MiB - GRAIN_SIZE))
