"""HttpDiskImage against a real simulator: a VM's disk read over the datastore HTTP interface
(Range GETs) is byte for byte the local disk, replicates into a replica qemu-img calls identical,
reads only CBT's allocated areas when told them, and refuses truncated, garbage and delta disks.

One simulator per module, with odd names (spaces, brackets, `#`, `&`, `+`, `%`, non-ASCII) in the
datacenter, datastore and VM; every other file a test makes is under tmp_path or in a folder of
its own on the datastore, which the simulator removes at stop.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from core.engine import ReplicationRequest, replicate_disk
from core.errors import (
    DiskFormatError,
    SourceTruncatedError,
    UsageError,
    VSphereTransferError,
)
from core.jobs.httpdisk import HttpDiskImage, RangeReader, sibling
from core.lab.content import flat_name, guest_writes, write_vm_disk
from core.lab.lab import datastore_file
from core.lab.simulator import (
    DatacenterSpec,
    DatastoreSpec,
    DiskSpec,
    Simulator,
    SimulatorSpec,
    VmSpec,
)
from core.vmdk.descriptor import Descriptor, Extent, flat_descriptor, render_descriptor
from core.vmdk.image import open_disk
from core.vsphere.connection import VSphereClient
from core.vsphere.inventory import read_inventory
from core.vsphere.transfer import DatastoreHttp
from tests.conftest import MIB, assert_identical
from tests.core.lab.conftest import launcher  # noqa: F401  (the session's cached build)

DC = "DC #1 & Ünï"
DS = "ds slow #2 & +%"
VM = "web [1] & co #2 +%"
DISK_MIB = 32

SPEC = SimulatorSpec(
    model="vpx",
    datacenters=(
        DatacenterSpec(
            DC,
            datastores=(DatastoreSpec(DS),),
            hosts=("esx-1",),
            vms=(VmSpec(VM, host="esx-1", disks=(DiskSpec(DISK_MIB * 1024),)),),
        ),
    ),
)


@dataclass
class Source:
    client: VSphereClient
    folder: Path  # the datastore's local folder
    descriptor: str  # "[ds] vm/vm.vmdk"
    local: Path  # the same descriptor on local disk
    areas: list[tuple[int, int]]  # where the guest wrote

    @property
    def flat(self) -> Path:
        return flat_name(self.local)

    def http(self) -> DatastoreHttp:
        return DatastoreHttp(self.client, DC, DS)


@pytest.fixture(scope="module")
def source(launcher: Path) -> Iterator[Source]:  # noqa: F811
    with (
        Simulator(SPEC, launcher=launcher) as sim,
        VSphereClient.connect(sim.host, sim.port, "u", "p", protocol="http") as client,
    ):
        inv = read_inventory(client)
        (vm,) = inv.vms_named(VM)
        (disk,) = vm.disks
        local = datastore_file(inv, disk.datastore, disk.file_name)
        # Seed 115: data in the first and last MiB and a run between, zeros (holes) elsewhere.
        areas = write_vm_disk(local, disk.capacity, fill=0.4, seed=115)
        assert len(areas) == 3 and areas[0][0] == 0 and sum(a[1] for a in areas) == 11 * MIB
        yield Source(client, sim.datastore(DS, DC).path, disk.file_name, local, areas)


class Counting:
    """A RangeReader that records every Range GET it passes on."""

    def __init__(self, inner: RangeReader) -> None:
        self.inner = inner
        self.calls: list[tuple[str, int, int]] = []

    def read_into(self, path: str, offset: int, buf: memoryview) -> int:
        self.calls.append((path, offset, len(buf)))
        return self.inner.read_into(path, offset, buf)

    def size(self, path: str) -> int:
        return self.inner.size(path)

    def bytes_read(self, suffix: str) -> int:
        return sum(n for path, _, n in self.calls if path.endswith(suffix))


def put_disk(source: Source, folder: str, descriptor: Descriptor | str, flat: bytes) -> str:
    """Write a descriptor and an extent into a folder of the datastore; its datastore path."""
    local = source.folder / folder
    local.mkdir(parents=True, exist_ok=True)
    text = descriptor if isinstance(descriptor, str) else render_descriptor(descriptor)
    (local / "d.vmdk").write_text(text)
    (local / "d-flat.vmdk").write_bytes(flat)
    return f"[{DS}] {folder}/d.vmdk"


def test_reads_are_the_local_bytes(source: Source) -> None:
    data = source.flat.read_bytes()
    size = len(data)
    assert size == DISK_MIB * MIB and "%" in source.descriptor and "[" in source.descriptor
    with source.http() as http:
        counting = Counting(http)
        image = HttpDiskImage(counting, source.descriptor, chunk=MIB)
        assert image.size == size
        assert str(image.path) == source.descriptor and image.descriptor.create_type == "vmfs"
        assert list(image.data_ranges()) == [(0, size)]
        ranges = [
            (0, 4096),  # aligned
            (12345, 777),  # unaligned, inside one chunk
            (MIB - 100, 200),  # across one chunk boundary
            (3 * MIB + 5, 5 * MIB + 3),  # across several
            (size - 512, 512),  # the last sector
            (size - 3, 3),
            (0, size),  # everything
        ]
        for offset, length in ranges:
            counting.calls.clear()
            buf = bytearray(length)
            image.readinto(offset, memoryview(buf))
            assert bytes(buf) == data[offset : offset + length], (offset, length)
            # One Range GET per chunk of at most a MiB, back to back, from the flat file (its
            # VMFS extent starts at 0, so file offsets are disk offsets).
            assert all(p.endswith("-flat.vmdk") and n <= MIB for p, _, n in counting.calls)
            assert len(counting.calls) == -(-length // MIB)
            pos = offset
            for _, o, n in counting.calls:
                assert o == pos
                pos += n
            assert pos == offset + length
        # The same bytes as the local reader gives, in a non-byte view too.
        with open_disk(source.local) as local:
            words = np.zeros(4096, dtype=np.uint32)
            image.readinto(8 * MIB - 8192, memoryview(words))
            assert words.tobytes() == local.read(8 * MIB - 8192, 16384)
        with pytest.raises(ValueError, match="outside the disk"):
            image.read(size - 10, 11)
        image.close()
        with pytest.raises(ValueError, match="after close"):
            image.read(0, 512)


def test_chunks_split_large_reads(source: Source) -> None:
    with source.http() as http:
        counting = Counting(http)
        with HttpDiskImage(counting, source.descriptor) as image:
            counting.calls.clear()
            image.read(MIB + 1, 20 * MIB)
        # 8 MiB per Range GET by default, back to back.
        assert [(o, n) for _, o, n in counting.calls] == [
            (MIB + 1, 8 * MIB),
            (9 * MIB + 1, 8 * MIB),
            (17 * MIB + 1, 4 * MIB),
        ]


def test_replicate_over_http_then_an_incremental_run(source: Source, tmp_path: Path) -> None:
    rep, meta = tmp_path / "rep", tmp_path / "meta"
    with source.http() as http, HttpDiskImage(http, source.descriptor) as image:
        result = replicate_disk(ReplicationRequest(source.descriptor, str(rep), meta, image=image))
    assert result.full and result.point.point_id == 1
    assert_identical(Path(result.point.path), source.flat)
    # The target describes the replica's origin by the datastore path.
    assert json.loads((rep / "replica.json").read_text())["source"] == source.descriptor

    # A guest write, then an incremental run that reads only CBT's changed areas over HTTP.
    before = source.flat.read_bytes()
    written = guest_writes(source.flat, 300 * 1024, np.random.default_rng(5))
    try:
        with source.http() as http:
            counting = Counting(http)
            with HttpDiskImage(counting, source.descriptor) as image:
                second = replicate_disk(
                    ReplicationRequest(
                        source.descriptor, str(rep), meta, image=image, changed_areas=written
                    )
                )
        assert not second.full
        assert_identical(Path(second.point.path), source.flat)
        blocks = {o // MIB for o, n in written} | {(o + n - 1) // MIB for o, n in written}
        assert 0 < counting.bytes_read("-flat.vmdk") <= len(blocks) * MIB
    finally:
        with open(source.flat, "r+b") as f:  # undo the writes, keeping the holes
            for offset, length in written:
                f.seek(offset)
                f.write(before[offset : offset + length])


def test_known_data_narrows_what_is_read(source: Source, tmp_path: Path) -> None:
    allocated = sum(n for _, n in source.areas)
    assert 0 < allocated < DISK_MIB * MIB // 2
    reads = {}
    for name, known in (("whole", None), ("known", source.areas)):
        with source.http() as http:
            counting = Counting(http)
            with HttpDiskImage(counting, source.descriptor, known_data=known) as image:
                if known is not None:
                    assert list(image.data_ranges()) == source.areas
                counting.calls.clear()
                result = replicate_disk(
                    ReplicationRequest(
                        source.descriptor, str(tmp_path / name), tmp_path / f"{name}-m", image=image
                    )
                )
        reads[name] = counting.bytes_read("-flat.vmdk")
        assert_identical(Path(result.point.path), source.flat)
    assert reads["whole"] == DISK_MIB * MIB
    # Lab content is written in whole MiB: reading the allocated areas reads their blocks only.
    assert reads["known"] == allocated


def test_known_data_is_merged_and_clipped(source: Source) -> None:
    with source.http() as http:
        image = HttpDiskImage(
            http,
            source.descriptor,
            known_data=[(5 * MIB, MIB), (0, 512), (5 * MIB + 10, 2 * MIB), (31 * MIB, 4 * MIB)],
        )
        assert list(image.data_ranges()) == [(0, 512), (5 * MIB, 2 * MIB + 10), (31 * MIB, MIB)]
        with pytest.raises(UsageError, match="negative"):
            HttpDiskImage(http, source.descriptor, known_data=[(-1, 10)])


def test_zero_extents_and_extent_offsets(source: Source) -> None:
    flat = os.urandom(3 * MIB)
    desc = Descriptor(
        "monolithicFlat",
        [
            Extent("RW", 2048, "FLAT", "d-flat.vmdk", 2048),  # the flat file's second MiB
            Extent("RW", 4096, "ZERO", None),
            Extent("RDONLY", 2048, "FLAT", "d-flat.vmdk", 0),
        ],
        0x1234,
    )
    path = put_disk(source, "zero ext & co", desc, flat)
    with source.http() as http, HttpDiskImage(http, path, chunk=300_000) as image:
        assert image.size == 4 * MIB
        assert list(image.data_ranges()) == [(0, MIB), (3 * MIB, MIB)]
        assert image.read(0, 4 * MIB) == flat[MIB : 2 * MIB] + bytes(2 * MIB) + flat[:MIB]
        assert image.read(MIB - 7, 14) == flat[2 * MIB - 7 : 2 * MIB] + bytes(7)


def test_truncated_extent_is_refused_at_open(source: Source) -> None:
    desc = flat_descriptor(2 * MIB, "d-flat.vmdk", 0xABC, "vmfs")
    path = put_disk(source, "short disk", desc, os.urandom(2 * MIB - 512))
    with source.http() as http, pytest.raises(SourceTruncatedError) as error:
        HttpDiskImage(http, path)
    assert f"[{DS}] short disk/d-flat.vmdk" in str(error.value)
    assert f"holds {2 * MIB - 512} bytes" in str(error.value)


def test_a_file_that_shrinks_after_open_is_an_error_not_zeros(source: Source) -> None:
    desc = flat_descriptor(2 * MIB, "d-flat.vmdk", 0xABC, "vmfs")
    path = put_disk(source, "shrinks", desc, os.urandom(2 * MIB))
    with source.http() as http, HttpDiskImage(http, path, chunk=MIB // 2) as image:
        os.truncate(source.folder / "shrinks" / "d-flat.vmdk", MIB + 4096)
        assert len(image.read(0, MIB)) == MIB
        with pytest.raises(VSphereTransferError) as error:
            image.read(MIB, MIB)
    message = str(error.value)
    assert f"[{DS}] shrinks/d-flat.vmdk at offset {MIB}" in message
    assert f"returned 4096 of {MIB // 2} bytes" in message


def test_missing_extent_and_garbage_descriptors_are_refused(source: Source) -> None:
    desc = flat_descriptor(MIB, "d-flat.vmdk", 0xABC, "vmfs")
    path = put_disk(source, "missing", desc, b"")
    (source.folder / "missing" / "d-flat.vmdk").unlink()
    garbage = source.folder / "garbage"
    garbage.mkdir()
    (garbage / "random.vmdk").write_bytes(os.urandom(4096))
    (garbage / "big.vmdk").write_bytes(b"# Disk DescriptorFile\n" + b"#" * (2 << 20))
    (garbage / "bad.vmdk").write_text('# Disk DescriptorFile\nCID=zz\nRW 10 FLAT "x" 0\n')
    (garbage / "empty.vmdk").write_bytes(b"")
    with source.http() as http:
        with pytest.raises(DiskFormatError, match=r"extent file .*missing/d-flat\.vmdk is missing"):
            HttpDiskImage(http, path)
        with pytest.raises(DiskFormatError, match="neither a text descriptor"):
            HttpDiskImage(http, f"[{DS}] garbage/random.vmdk")
        with pytest.raises(DiskFormatError, match="too big for a descriptor"):
            HttpDiskImage(http, f"[{DS}] garbage/big.vmdk")
        with pytest.raises(DiskFormatError, match="too big for a descriptor"):
            HttpDiskImage(http, f"[{DS}] garbage/random.vmdk", max_descriptor=1024)
        with pytest.raises(DiskFormatError, match=r"line 2 .*CID"):
            HttpDiskImage(http, f"[{DS}] garbage/bad.vmdk")
        with pytest.raises(DiskFormatError, match="empty file"):
            HttpDiskImage(http, f"[{DS}] garbage/empty.vmdk")
        # The flat extent itself is not a descriptor (and far bigger than one).
        with pytest.raises(DiskFormatError, match="too big for a descriptor"):
            HttpDiskImage(http, str(source.descriptor).replace(".vmdk", "-flat.vmdk"))


def test_delta_disks_are_refused_with_the_reason(source: Source, tmp_path: Path) -> None:
    folder = source.folder / "deltas"
    folder.mkdir()
    # A hosted sparse (KDMV) disk, as qemu-img (and VMware Workstation) write it.
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "subformat=monolithicSparse",
            str(folder / "kdmv.vmdk"),
            "4M",
        ],
        check=True,
    )
    # An ESXi snapshot delta: a vmfsSparse descriptor naming its parent.
    base = render_descriptor(flat_descriptor(MIB, "base-flat.vmdk", 0x11, "vmfs"))
    (folder / "base.vmdk").write_text(base)
    (folder / "base-flat.vmdk").write_bytes(bytes(MIB))
    delta = render_descriptor(
        Descriptor(
            "vmfsSparse",
            [Extent("RW", 2048, "VMFSSPARSE", "base-000001-delta.vmdk")],
            0x22,
            parent_cid=0x11,
            parent_hint="base.vmdk",
        )
    )
    (folder / "base-000001.vmdk").write_text(delta)
    # A descriptor whose only extent is sparse, without a parent (a split sparse disk).
    split = render_descriptor(
        Descriptor("twoGbMaxExtentSparse", [Extent("RW", 2048, "SPARSE", "s-s001.vmdk")], 0x33)
    )
    (folder / "split.vmdk").write_text(split)
    reason = "Network mode reads flat disks only; a snapshot's delta disks are read in Direct"
    with source.http() as http:
        for name, what in (
            ("kdmv.vmdk", "a sparse extent \\(KDMV\\)"),
            ("base-000001.vmdk", "a delta disk \\(parent 'base.vmdk'\\)"),
            ("split.vmdk", "SPARSE extent 's-s001.vmdk'"),
        ):
            with pytest.raises(DiskFormatError, match=f"{what}: {reason}"):
                HttpDiskImage(http, f"[{DS}] deltas/{name}")
        # The parent itself is flat and reads.
        with HttpDiskImage(http, f"[{DS}] deltas/base.vmdk") as image:
            assert image.read(0, MIB) == bytes(MIB)


def test_extent_names_are_resolved_in_the_descriptor_folder() -> None:
    assert sibling("[ds 1] vm/vm.vmdk", "vm-flat.vmdk") == "[ds 1] vm/vm-flat.vmdk"
    assert (
        sibling("[ds 1] vm/vm.vmdk", "/vmfs/volumes/5f1e/vm/x-flat.vmdk") == "[ds 1] vm/x-flat.vmdk"
    )
    assert sibling("[ds 1] a/b/vm.vmdk", "../c/x.vmdk") == "[ds 1] a/c/x.vmdk"
    assert sibling("[ds 1] vm/vm.vmdk", "[ds 1] other/x.vmdk") == "[ds 1] other/x.vmdk"
    assert sibling("vm/vm.vmdk", "x.vmdk") == "vm/x.vmdk"
    with pytest.raises(DiskFormatError, match="outside the datastore"):
        sibling("[ds] vm/vm.vmdk", "../../etc/passwd")
    with pytest.raises(DiskFormatError, match="another datastore"):
        sibling("[ds] vm/vm.vmdk", "[ds2] vm/x-flat.vmdk")
