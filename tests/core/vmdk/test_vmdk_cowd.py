"""ESXi vmfsSparse (COWD) deltas: files laid out as ESXi writes them, judged by qemu-img."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from core.errors import DiskFormatError
from core.vmdk import Descriptor, Extent, flat_descriptor, new_cid, open_disk, render_descriptor
from core.vmdk.cowd import CowdExtent

MiB = 1 << 20
GT_ENTRIES = 4096


def write_cowd(path: Path, capacity: int, writes: list[tuple[int, bytes]]) -> None:
    """A COWD file: 2048-byte header, GD at sector 4, tables as needed, 1-sector grains."""
    sectors = capacity // 512
    gd_entries = -(-sectors // GT_ENTRIES)
    grains: dict[int, bytes] = {}
    for offset, data in writes:
        for i in range(0, len(data), 512):
            grains[offset // 512 + i // 512] = data[i : i + 512]
    tables = sorted({grain // GT_ENTRIES for grain in grains})
    gd_sectors = -(-gd_entries * 4 // 512)
    next_sector = 4 + gd_sectors
    gd = [0] * gd_entries
    table_data: dict[int, list[int]] = {}
    for t in tables:
        gd[t] = next_sector
        table_data[t] = [0] * GT_ENTRIES
        next_sector += GT_ENTRIES * 4 // 512
    body = bytearray()
    grain_start = next_sector
    for grain in sorted(grains, reverse=True):  # not in disk order, as a guest writes
        table_data[grain // GT_ENTRIES][grain % GT_ENTRIES] = next_sector
        body += grains[grain]
        next_sector += 1
    header = struct.pack("<4sIIIIIII", b"COWD", 1, 3, sectors, 1, 4, gd_entries, next_sector)
    blob = bytearray(header.ljust(2048, b"\0"))
    blob += struct.pack(f"<{gd_entries}I", *gd).ljust(gd_sectors * 512, b"\0")
    for t in tables:
        blob += struct.pack(f"<{GT_ENTRIES}I", *table_data[t])
    assert len(blob) == grain_start * 512
    path.write_bytes(bytes(blob + body))


def delta_descriptor(name: str, capacity: int, cid: int, parent_cid: int, hint: str) -> str:
    extent = Extent("RW", capacity // 512, "VMFSSPARSE", f"{name}-delta.vmdk")
    return render_descriptor(Descriptor("vmfsSparse", [extent], cid, parent_cid, hint))


def test_vmfs_chain_with_two_cowd_deltas(tmp_path, qemu, rng, reads_like):
    capacity = 12 * MiB + 1024  # not whole grain tables (2 MiB each)
    base_data = rng.integers(1, 256, capacity, dtype=np.uint8).tobytes()
    base_cid, child_cid = new_cid(), new_cid()
    (tmp_path / "vm-flat.vmdk").write_bytes(base_data)
    (tmp_path / "vm.vmdk").write_text(
        render_descriptor(flat_descriptor(capacity, "vm-flat.vmdk", base_cid, "vmfs"))
    )
    expected = bytearray(base_data)
    child_writes = [
        (MiB, b"\x11" * 8192),
        (5 * MiB - 512, bytes(4096)),
        (capacity - 512, b"\xaa" * 512),
    ]
    grand_writes = [(MiB + 4096, b"\x22" * 1024), (9 * MiB, b"\x33" * 3 * MiB)]
    write_cowd(tmp_path / "vm-000001-delta.vmdk", capacity, child_writes)
    (tmp_path / "vm-000001.vmdk").write_text(
        delta_descriptor("vm-000001", capacity, child_cid, base_cid, "vm.vmdk")
    )
    write_cowd(tmp_path / "vm-000002-delta.vmdk", capacity, grand_writes)
    top = tmp_path / "vm-000002.vmdk"
    top.write_text(delta_descriptor("vm-000002", capacity, new_cid(), child_cid, "vm-000001.vmdk"))
    for offset, data in child_writes + grand_writes:
        expected[offset : offset + len(data)] = data
    raw = tmp_path / "expected.raw"
    raw.write_bytes(expected)
    assert qemu.same(top, raw)
    assert len(qemu.info(top, chain=True)) == 3
    with open_disk(top) as disk:
        reads_like(disk, bytes(expected))
        assert [image.descriptor.create_type for image in disk.chain()] == [
            "vmfsSparse",
            "vmfsSparse",
            "vmfs",
        ]
    with CowdExtent(tmp_path / "vm-000002-delta.vmdk") as cowd:
        assert list(cowd.allocated_runs()) == [(2056, 2058), (9 * 2048, 12 * 2048)]


def test_cowd_damage_is_detected(tmp_path):
    path = tmp_path / "d-delta.vmdk"
    write_cowd(path, 4 * MiB, [(MiB, b"\x01" * 4096)])
    size = path.stat().st_size
    os.truncate(path, size - 512)
    with pytest.raises(DiskFormatError, match=r"grain 2048 at sector \d+ .* truncated"):
        CowdExtent(path)
    os.truncate(path, 3000)
    with pytest.raises(DiskFormatError, match="grain table 0"):
        CowdExtent(path)
    path.write_bytes(b"COWD" + struct.pack("<I", 2) + bytes(4000))
    with pytest.raises(DiskFormatError, match="version 2"):
        CowdExtent(path)
    with pytest.raises(DiskFormatError, match="open the descriptor"):
        open_disk(path)
