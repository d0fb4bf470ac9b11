"""Hosted sparse extents (`KDMV`, VMware "Virtual Disk Format 5.0"): writing and reading.

A KDMV file is a 512-byte header, an embedded text descriptor (sector 1, 20 sectors), a
redundant grain directory and its grain tables, the grain directory and its grain tables, then
64 KiB grains in the order they were written. A grain table entry (GTE) is 0 for a grain never
written (it reads through to the parent disk), 1 for a zeroed grain (when header flag bit 2 is
set: reads as zeros, overriding the parent) or the grain's sector offset in the file.

`SparseWriter` is how the replica side writes restore-point deltas that VMware and qemu-img can
open; `SparseExtent` is how `core.vmdk.image` reads them (and those written by VMware or
qemu-img). The reader loads the grain map once at open and never reads grains there, and it
checks every offset it will later use against the file's size, so a truncated or corrupted file
fails at open with a `DiskFormatError` instead of returning garbage later.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

import numpy as np
import numpy.typing as npt

from core.errors import DiskFormatError, SourceTruncatedError, TargetFullError
from core.fsutil import DirectWriter, is_enospc, pwrite_all
from core.vmdk.descriptor import SECTOR, Descriptor, parse_descriptor, render_descriptor

if TYPE_CHECKING:
    from typing_extensions import Buffer

GRAIN_SIZE = 65536
GRAIN_SECTORS = GRAIN_SIZE // SECTOR
GTES_PER_GT = 512
DESCRIPTOR_OFFSET = 1
DESCRIPTOR_SECTORS = 20

MAGIC = b"KDMV"
FLAG_NL_DETECT = 1 << 0
FLAG_RGD = 1 << 1
FLAG_ZERO_GRAIN = 1 << 2
FLAG_COMPRESSED = 1 << 16
FLAG_MARKERS = 1 << 17
GD_AT_END = 0xFFFFFFFFFFFFFFFF
NEWLINE_BYTES = b"\n \r\n"
GTE_ZEROED = 1

# magic, version, flags, capacity, grainSize, descriptorOffset, descriptorSize, numGTEsPerGT,
# rgdOffset, gdOffset, overHead, uncleanShutdown, the four newline-detection bytes,
# compressAlgorithm; the rest of the 512-byte sector is padding.
_HEADER = struct.Struct("<4sIIQQQQIQQQB4sH")
assert _HEADER.size == 79

_MAX_CAPACITY_SECTORS = 1 << 40
_MAX_GRAIN_SECTORS = 1 << 17
_MAX_DESCRIPTOR_SECTORS = 2048

GrainMap = npt.NDArray[np.uint32]


class GrainedExtent(Protocol):
    """What `core.vmdk.image` needs of a grain-mapped extent (KDMV here, COWD in `cowd`).

    `entries(first, end)` are the grain table entries of grains [first, end) with the KDMV
    meaning (0 unallocated, 1 zeroed, else the grain's sector in the file); `allocated_runs`
    yields (first grain, end grain) of the runs holding data, in order.
    """

    path: Path
    fd: int
    file_size: int
    capacity: int
    grain_size: int

    def entries(self, first: int, end: int) -> GrainMap: ...

    def allocated_runs(self) -> Iterator[tuple[int, int]]: ...

    def close(self) -> None: ...


def runs_of(mask: npt.NDArray[np.bool_], base: int = 0) -> Iterator[tuple[int, int]]:
    """(first, end) index runs where `mask` is true, shifted by `base`."""
    edges = np.flatnonzero(np.diff(mask.astype(np.int8), prepend=0, append=0)).tolist()
    for first, end in zip(edges[::2], edges[1::2], strict=True):
        yield base + first, base + end


class _Layout:
    """Where the metadata of a new KDMV file goes, exactly as qemu-img and VMware place it."""

    def __init__(self, capacity_sectors: int) -> None:
        self.grains = -(-capacity_sectors // GRAIN_SECTORS)
        self.gt_count = max(1, -(-self.grains // GTES_PER_GT))
        self.gt_sectors = GTES_PER_GT * 4 // SECTOR
        self.gd_sectors = -(-self.gt_count * 4 // SECTOR)
        self.rgd_offset = DESCRIPTOR_OFFSET + DESCRIPTOR_SECTORS
        self.rgt_offset = self.rgd_offset + self.gd_sectors
        self.gd_offset = self.rgt_offset + self.gt_count * self.gt_sectors
        self.gt_offset = self.gd_offset + self.gd_sectors
        end = self.gt_offset + self.gt_count * self.gt_sectors
        self.overhead = -(-end // GRAIN_SECTORS) * GRAIN_SECTORS


def _as_bytes_view(data: Buffer) -> memoryview:
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


class SparseWriter:
    """Writes a new monolithicSparse KDMV file with an embedded descriptor.

    Field for field what `qemu-img create -f vmdk -o subformat=monolithicSparse` writes (version 1,
    flags 3, 64 KiB grains, descriptor at sector 1 for 20 sectors, redundant GD + GTs, GD + GTs,
    grains after the overhead). When zeroed grains were recorded, the header carries the
    zeroed-grain flag and version 2, as `-o zeroed_grain=on` writes it. The header is written last,
    after everything else is on disk, so a crash before `close` leaves a file no reader accepts.
    """

    def __init__(self, path: Path, capacity: int, descriptor: Descriptor) -> None:
        if capacity <= 0 or capacity % SECTOR:
            raise ValueError(f"capacity {capacity} is not a positive multiple of {SECTOR}")
        if descriptor.capacity != capacity:
            raise ValueError(
                f"the descriptor describes {descriptor.capacity} bytes, the file {capacity}"
            )
        text = render_descriptor(descriptor).encode()
        if len(text) >= DESCRIPTOR_SECTORS * SECTOR:
            raise ValueError(f"the descriptor ({len(text)} bytes) does not fit in 20 sectors")
        self.path = Path(path)
        self.capacity = capacity
        self.bytes_written = 0
        self._descriptor_bytes = text
        self._layout = _Layout(capacity // SECTOR)
        self._gtes = np.zeros(self._layout.gt_count * GTES_PER_GT, dtype="<u4")
        self._next_sector = self._layout.overhead
        self._zeroed = False
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        # Grains start at whole-grain offsets (the overhead is whole grains), so they can bypass
        # the page cache; the metadata written at close goes through `_fd`.
        self._data = DirectWriter(self.path, self._fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _grains(self, offset: int, length: int) -> tuple[int, int]:
        """The grain range [first, end) of a write; ValueError unless it is a legal one."""
        if self._fd is None:
            raise ValueError(f"{self.path}: the writer is closed")
        if offset < 0 or offset % GRAIN_SIZE:
            raise ValueError(f"offset {offset} is not a multiple of the grain size {GRAIN_SIZE}")
        end = offset + length
        if end > self.capacity:
            raise ValueError(f"write [{offset}, {end}) goes past the capacity {self.capacity}")
        if length % GRAIN_SIZE and end != self.capacity:
            raise ValueError(f"length {length} is not whole grains and does not end the disk")
        first = offset // GRAIN_SIZE
        last = -(-end // GRAIN_SIZE)
        taken = np.flatnonzero(self._gtes[first:last])
        if taken.size:
            raise ValueError(f"grain {first + int(taken[0])} is written twice")
        return first, last

    def write(self, offset: int, data: Buffer) -> None:
        """Append the grains of `data` (grain-aligned) to the file and map them at `offset`."""
        view = _as_bytes_view(data)
        first, last = self._grains(offset, view.nbytes)
        if first == last:
            return
        count = last - first
        if self._next_sector + count * GRAIN_SECTORS > 0xFFFFFFFF:
            raise ValueError(f"{self.path}: a hosted sparse file cannot grow past 2 TiB")
        assert self._fd is not None
        try:
            self._data.pwrite(view, self._next_sector * SECTOR)
        except OSError as error:
            if is_enospc(error):
                raise TargetFullError(self.path) from error
            raise
        self._gtes[first:last] = np.arange(
            self._next_sector, self._next_sector + count * GRAIN_SECTORS, GRAIN_SECTORS
        )
        self._next_sector += count * GRAIN_SECTORS
        self.bytes_written += view.nbytes

    def write_zeros(self, offset: int, length: int) -> None:
        """Mark grains zeroed (GTE 1): they read as zeros and hide the parent's data."""
        first, last = self._grains(offset, length)
        if first == last:
            return
        self._gtes[first:last] = GTE_ZEROED
        self._zeroed = True

    def _header(self) -> bytes:
        lay = self._layout
        flags = FLAG_NL_DETECT | FLAG_RGD | (FLAG_ZERO_GRAIN if self._zeroed else 0)
        header = _HEADER.pack(
            MAGIC,
            2 if self._zeroed else 1,
            flags,
            self.capacity // SECTOR,
            GRAIN_SECTORS,
            DESCRIPTOR_OFFSET,
            DESCRIPTOR_SECTORS,
            GTES_PER_GT,
            lay.rgd_offset,
            lay.gd_offset,
            lay.overhead,
            0,
            NEWLINE_BYTES,
            0,
        )
        return header.ljust(SECTOR, b"\0")

    def close(self) -> None:
        """Write the descriptor, both grain directories and tables, then the header; fsync."""
        if self._fd is None:
            return
        fd = self._fd
        self._data.close()
        lay = self._layout
        tables = self._gtes.tobytes()
        try:
            pwrite_all(fd, self._descriptor_bytes, DESCRIPTOR_OFFSET * SECTOR)
            for gd_offset, gt_offset in (
                (lay.rgd_offset, lay.rgt_offset),
                (lay.gd_offset, lay.gt_offset),
            ):
                gd = np.arange(
                    gt_offset,
                    gt_offset + lay.gt_count * lay.gt_sectors,
                    lay.gt_sectors,
                    dtype="<u4",
                )
                pwrite_all(fd, gd.tobytes(), gd_offset * SECTOR)
                pwrite_all(fd, tables, gt_offset * SECTOR)
            # The last grain may be partial: the file still ends at a whole grain, as qemu's do.
            os.ftruncate(fd, self._next_sector * SECTOR)
            os.fsync(fd)
            pwrite_all(fd, self._header(), 0)
            os.fsync(fd)
        except OSError as error:
            if is_enospc(error):
                raise TargetFullError(self.path) from error
            raise
        finally:
            self._fd = None
            os.close(fd)

    def abort(self) -> None:
        """Give up: close and delete the unfinished file."""
        self._data.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.path.unlink(missing_ok=True)


class SparseExtent:
    """A KDMV file opened for reading: its header checked, its grain map in memory.

    `grain_map[i]` is 0 for an unallocated grain (falls through to the parent), 1 for a zeroed
    grain (only when `has_zeroed_grains`), else the grain's sector offset in the file. The map is
    read-only. `fd` stays open until `close`, for `core.vmdk.image` to read grains with preadv.
    """

    def __init__(
        self,
        path: Path,
        fd: int,
        file_size: int,
        capacity: int,
        grain_size: int,
        has_zeroed_grains: bool,
        grain_map: GrainMap,
        descriptor: Descriptor | None,
    ) -> None:
        self.path = path
        self.fd = fd
        self.file_size = file_size
        self.capacity = capacity
        self.grain_size = grain_size
        self.has_zeroed_grains = has_zeroed_grains
        self.grain_map = grain_map
        self.descriptor = descriptor

    @classmethod
    def open(cls, path: Path) -> SparseExtent:
        path = Path(path)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return cls._load(path, fd)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def _load(cls, path: Path, fd: int) -> SparseExtent:
        origin = str(path)
        file_size = os.fstat(fd).st_size

        def fail(why: str) -> DiskFormatError:
            return DiskFormatError(origin, why)

        def pread_exact(offset: int, length: int, what: str) -> bytes:
            data = os.pread(fd, length, offset)
            if len(data) != length:
                raise fail(f"{what} at byte {offset} is cut short (the file is truncated?)")
            return data

        if file_size < SECTOR:
            raise fail(f"{file_size} bytes, too short for a KDMV sparse header")
        (
            magic,
            version,
            flags,
            capacity_sectors,
            grain_sectors,
            desc_offset,
            desc_sectors,
            gtes_per_gt,
            rgd_offset,
            gd_offset,
            overhead,
            _unclean,
            newline_bytes,
            compress_algorithm,
        ) = _HEADER.unpack(pread_exact(0, _HEADER.size, "the header"))
        if magic != MAGIC:
            raise fail(f"bad magic {magic!r} (a KDMV sparse extent starts with b'KDMV')")
        if not 1 <= version <= 3:
            raise fail(f"unsupported sparse format version {version} (1 to 3 are known)")
        if flags & (FLAG_COMPRESSED | FLAG_MARKERS) or compress_algorithm:
            raise fail("compressed grains (streamOptimized) are not supported")
        if flags & FLAG_NL_DETECT and newline_bytes != NEWLINE_BYTES:
            raise fail(
                f"newline-detection bytes are {newline_bytes!r}, not {NEWLINE_BYTES!r}: the file"
                " was corrupted, e.g. by a text-mode transfer"
            )
        if (
            grain_sectors < 8
            or grain_sectors > _MAX_GRAIN_SECTORS
            or grain_sectors & (grain_sectors - 1)
        ):
            raise fail(f"grain size of {grain_sectors} sectors is not a power of two >= 8")
        if capacity_sectors > _MAX_CAPACITY_SECTORS:
            raise fail(f"capacity of {capacity_sectors} sectors is implausible")
        if not 1 <= gtes_per_gt <= 512:
            raise fail(f"{gtes_per_gt} entries per grain table (1 to 512 are valid)")
        if gd_offset == GD_AT_END:
            raise fail("grain directory at the end of the file (streamOptimized) is not supported")
        if overhead * SECTOR > file_size:
            raise fail(
                f"the file holds {file_size} bytes, less than its {overhead * SECTOR} bytes of"
                " metadata (truncated in the grain tables?)"
            )

        capacity = capacity_sectors * SECTOR
        grain_size = grain_sectors * SECTOR
        grains = -(-capacity_sectors // grain_sectors)
        gt_count = -(-grains // gtes_per_gt)
        gt_bytes = gtes_per_gt * 4
        gd_bytes = gt_count * 4

        def check_area(offset_sectors: int, length: int, what: str) -> None:
            if offset_sectors == 0 or offset_sectors * SECTOR + length > file_size:
                raise fail(
                    f"{what} at sector {offset_sectors} ({length} bytes) lies outside the file"
                    f" of {file_size} bytes (truncated or corrupted)"
                )

        descriptor = None
        if desc_offset and desc_sectors:
            if desc_sectors > _MAX_DESCRIPTOR_SECTORS:
                raise fail(f"embedded descriptor of {desc_sectors} sectors is implausible")
            check_area(desc_offset, desc_sectors * SECTOR, "the embedded descriptor")
            raw = pread_exact(desc_offset * SECTOR, desc_sectors * SECTOR, "the descriptor")
            raw = raw.split(b"\0", 1)[0]
            if raw.strip():
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise fail("the embedded descriptor is not UTF-8 text") from None
                descriptor = parse_descriptor(text, origin)
        if flags & FLAG_RGD:
            check_area(rgd_offset, gd_bytes, "the redundant grain directory")
        check_area(gd_offset, gd_bytes, "the grain directory")
        directory = np.frombuffer(
            pread_exact(gd_offset * SECTOR, gd_bytes, "the grain directory"), dtype="<u4"
        )

        tables = np.zeros(gt_count * gtes_per_gt, dtype=np.uint32)
        present = np.flatnonzero(directory)
        for index in present:
            check_area(int(directory[index]), gt_bytes, f"grain table {index}")
        gt_sectors = -(-gt_bytes // SECTOR)
        first = int(directory[0]) if gt_count else 0
        contiguous = present.size == gt_count and bool(
            np.array_equal(
                directory.astype(np.int64),
                first + gt_sectors * np.arange(gt_count, dtype=np.int64),
            )
        )
        if contiguous and gt_bytes % SECTOR == 0:
            # qemu and VMware lay the tables end to end: one read for all of them.
            data = pread_exact(first * SECTOR, gt_count * gt_bytes, "the grain tables")
            tables[:] = np.frombuffer(data, dtype="<u4")
        else:
            for index in present:
                offset = int(directory[index]) * SECTOR
                data = pread_exact(offset, gt_bytes, f"grain table {index}")
                tables[index * gtes_per_gt : (index + 1) * gtes_per_gt] = np.frombuffer(
                    data, dtype="<u4"
                )
        grain_map: GrainMap = tables[:grains]

        has_zeroed = bool(flags & FLAG_ZERO_GRAIN)
        if not has_zeroed:
            ones = np.flatnonzero(grain_map == GTE_ZEROED)
            if ones.size:
                raise fail(
                    f"grain {int(ones[0])} is marked zeroed but the header has no zeroed-grain flag"
                )
        allocated = np.flatnonzero(grain_map > GTE_ZEROED)
        if allocated.size:
            offsets = grain_map[allocated].astype(np.int64) * SECTOR
            needed = np.minimum(grain_size, capacity - allocated.astype(np.int64) * grain_size)
            inside_meta = offsets < overhead * SECTOR
            if inside_meta.any():
                bad = int(allocated[np.argmax(inside_meta)])
                raise fail(
                    f"grain {bad} at sector {int(grain_map[bad])} lies inside the metadata"
                    f" ({overhead} sectors): corrupted grain table"
                )
            beyond = offsets + needed > file_size
            if beyond.any():
                bad = int(allocated[np.argmax(beyond)])
                raise fail(
                    f"grain {bad} at sector {int(grain_map[bad])} lies beyond the end of the"
                    f" file ({file_size} bytes): truncated"
                )
        grain_map.flags.writeable = False
        return cls(path, fd, file_size, capacity, grain_size, has_zeroed, grain_map, descriptor)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def grains(self) -> int:
        return int(self.grain_map.size)

    def entries(self, first: int, end: int) -> GrainMap:
        return self.grain_map[first:end]

    def allocated_runs(self) -> Iterator[tuple[int, int]]:
        return runs_of(self.grain_map > GTE_ZEROED)

    def read_grain(self, grain_index: int, out: memoryview) -> None:
        """Read one grain's own data into `out` (zeros if unallocated or zeroed).

        `out` holds a whole grain, or what is left of the disk for a partial last grain.
        """
        if not 0 <= grain_index < self.grains:
            raise ValueError(f"grain {grain_index} is outside 0..{self.grains - 1}")
        length = min(self.grain_size, self.capacity - grain_index * self.grain_size)
        view = _as_bytes_view(out)
        if view.nbytes != length:
            raise ValueError(f"grain {grain_index} holds {length} bytes, not {view.nbytes}")
        entry = int(self.grain_map[grain_index])
        if entry <= GTE_ZEROED:
            np.frombuffer(view, dtype=np.uint8).fill(0)
            return
        read_exact(self.fd, view, entry * SECTOR, self.path, self.file_size)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def read_exact(fd: int, view: memoryview, offset: int, path: Path, expected_size: int) -> None:
    """preadv until `view` is full, straight into it; a short file is SourceTruncatedError.

    `expected_size` is how many bytes the file should hold, named in the error.
    """
    done = 0
    total = view.nbytes
    while done < total:
        got = os.preadv(fd, [view[done:]], offset + done)
        if got == 0:
            raise SourceTruncatedError(path, os.fstat(fd).st_size, expected_size)
        done += got
