"""ESXi `vmfsSparse` delta extents (`COWD`): the snapshot children ESXi writes on VMFS 5.

Read-only, for sources: a `-delta.vmdk` file named by a `VMFSSPARSE` extent of a text descriptor
(createType `vmfsSparse`, with parentFileNameHint). The file is a 2048-byte header (magic `COWD`,
version 1, capacity and grain size in sectors, grain directory offset and entry count), a grain
directory of sector offsets of 4096-entry grain tables (0: no table yet), and grains of usually
one sector. Grain tables are allocated as the VM writes, so only those that exist are kept in
memory (16 KiB per 2 MiB of written disk), not a dense map of the whole disk.

Entries follow `core.vmdk.sparse`'s meaning (0 unallocated, else the grain's sector), so
`core.vmdk.image` reads COWD and KDMV extents with the same code. Every offset is checked against
the file's size at open.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np

from core.errors import DiskFormatError
from core.vmdk.descriptor import SECTOR
from core.vmdk.sparse import GrainMap, runs_of

MAGIC = b"COWD"
HEADER_BYTES = 2048
GTES_PER_GT = 4096
# magic, version, flags, numSectors, grainSize, gdOffset, numGDEntries, freeSector
_HEADER = struct.Struct("<4sIIIIIII")
_MAX_GD_ENTRIES = 32 * 1024 * 1024


class CowdExtent:
    """A COWD file opened for reading: header checked, existing grain tables in memory."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._load()
        except BaseException:
            os.close(self.fd)
            raise

    def _fail(self, why: str) -> DiskFormatError:
        return DiskFormatError(self.path, why)

    def _load(self) -> None:
        self.file_size = os.fstat(self.fd).st_size
        if self.file_size < HEADER_BYTES:
            raise self._fail(f"{self.file_size} bytes, too short for a COWD header")
        head = os.pread(self.fd, _HEADER.size, 0)
        magic, version, _flags, sectors, grain_sectors, gd_offset, gd_entries, _free = (
            _HEADER.unpack(head)
        )
        if magic != MAGIC:
            raise self._fail(f"bad magic {magic!r} (a vmfsSparse extent starts with b'COWD')")
        if version != 1:
            raise self._fail(f"unsupported COWD version {version}")
        if grain_sectors == 0 or grain_sectors & (grain_sectors - 1) or grain_sectors > 1 << 17:
            raise self._fail(f"grain size of {grain_sectors} sectors is not a power of two")
        self.capacity = sectors * SECTOR
        self.grain_size = grain_sectors * SECTOR
        self.grains = -(-sectors // grain_sectors)
        needed = -(-self.grains // GTES_PER_GT)
        if not needed <= gd_entries <= _MAX_GD_ENTRIES:
            raise self._fail(f"{gd_entries} grain directory entries for {needed} grain tables")
        gd_end = gd_offset * SECTOR + gd_entries * 4
        if gd_offset * SECTOR < HEADER_BYTES or gd_end > self.file_size:
            raise self._fail(
                f"the grain directory at sector {gd_offset} lies outside the file of"
                f" {self.file_size} bytes (truncated or corrupted)"
            )
        directory = np.frombuffer(os.pread(self.fd, gd_entries * 4, gd_offset * SECTOR), "<u4")
        table_bytes = GTES_PER_GT * 4
        self._tables: dict[int, GrainMap] = {}
        for index in np.flatnonzero(directory[:needed]).tolist():
            offset = int(directory[index]) * SECTOR
            if offset < gd_end or offset + table_bytes > self.file_size:
                raise self._fail(
                    f"grain table {index} at sector {offset // SECTOR} lies outside the file of"
                    f" {self.file_size} bytes or inside its header (truncated or corrupted)"
                )
            table = np.frombuffer(os.pread(self.fd, table_bytes, offset), "<u4").astype(np.uint32)
            self._check_table(index, table, gd_end)
            table.flags.writeable = False
            self._tables[index] = table
        self._empty = np.zeros(GTES_PER_GT, dtype=np.uint32)
        self._empty.flags.writeable = False

    def _check_table(self, index: int, table: GrainMap, metadata_end: int) -> None:
        grains = np.flatnonzero(table)
        if not grains.size:
            return
        offsets = table[grains].astype(np.int64) * SECTOR
        bad = (offsets < metadata_end) | (offsets + self.grain_size > self.file_size)
        first_grain = index * GTES_PER_GT
        # The last grain of an odd-sized disk may be partial; only what it holds must be there.
        last = first_grain + grains.astype(np.int64) == self.grains - 1
        if last.any():
            tail = self.capacity - (self.grains - 1) * self.grain_size
            bad &= ~(last & (offsets >= metadata_end) & (offsets + tail <= self.file_size))
        if bad.any():
            grain = first_grain + int(grains[np.argmax(bad)])
            raise self._fail(
                f"grain {grain} at sector {int(table[grain - first_grain])} lies outside the"
                f" grain area of the file ({self.file_size} bytes): truncated or corrupted"
            )

    def entries(self, first: int, end: int) -> GrainMap:
        if end <= first:
            return self._empty[:0]
        t0, t1 = first // GTES_PER_GT, (end - 1) // GTES_PER_GT
        if t0 == t1:
            table = self._tables.get(t0, self._empty)
            return table[first - t0 * GTES_PER_GT : end - t0 * GTES_PER_GT]
        parts = [self._tables.get(t, self._empty) for t in range(t0, t1 + 1)]
        joined = np.concatenate(parts)
        return joined[first - t0 * GTES_PER_GT : end - t0 * GTES_PER_GT]

    def allocated_runs(self) -> Iterator[tuple[int, int]]:
        pending: tuple[int, int] | None = None
        for index in sorted(self._tables):
            for first, end in runs_of(self._tables[index] != 0, index * GTES_PER_GT):
                end = min(end, self.grains)
                if pending is not None and pending[1] == first:
                    pending = (pending[0], end)
                    continue
                if pending is not None:
                    yield pending
                pending = (first, end)
        if pending is not None:
            yield pending

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
