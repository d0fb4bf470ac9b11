"""Opening a source disk for reading, whatever its format: raw, flat VMDK, sparse VMDK chains.

This is the first step of the data path: the reader that the hashing and sending stages pull
blocks from. `open_disk` sniffs the file (KDMV magic, `# Disk DescriptorFile` text, else raw) and
builds a `DiskImage` whose `readinto` fills the caller's buffer:

- flat and raw extents with `os.preadv` straight into the caller's memoryview (no copy, no GIL);
- sparse extents (hosted KDMV, ESXi vmfsSparse COWD) by resolving the request's grains with numpy
  against the grain map loaded at open, then one preadv per run of contiguous allocated grains;
  unallocated grains fall through to the parent disk, zeroed grains and ZERO extents read as
  zeros.

Invariants owned here: a chain is only followed when each parent's CID equals its child's
parentCID (else `ChainError`, as VMware and qemu refuse it too), loops and missing parents are
`ChainError`, and an extent file shorter than its descriptor says is `SourceTruncatedError` at
open, never short data later. `data_ranges` may over-report (it is a superset of the non-zero
bytes) but never under-report: the mover skips everything outside it.
"""

from __future__ import annotations

import bisect
import errno
import heapq
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np

from core.errors import ChainError, DiskFormatError, SourceTruncatedError, UsageError
from core.vmdk.cowd import MAGIC as COWD_MAGIC
from core.vmdk.cowd import CowdExtent
from core.vmdk.descriptor import (
    NO_PARENT_CID,
    SECTOR,
    Descriptor,
    Extent,
    parse_descriptor,
)
from core.vmdk.sparse import MAGIC, GrainedExtent, SparseExtent, read_exact

#: Descriptor files are a few hundred bytes; anything past this is not a descriptor.
MAX_DESCRIPTOR_BYTES = 1 << 20
DESCRIPTOR_MARK = b"# Disk DescriptorFile"

Range = tuple[int, int]


def _bytes_view(buf: memoryview) -> memoryview:
    view = memoryview(buf)
    if view.readonly or not view.c_contiguous:
        raise ValueError("readinto needs a writable, contiguous buffer")
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _zero(view: memoryview) -> None:
    np.frombuffer(view, dtype=np.uint8).fill(0)


def _merge(sources: Iterable[Iterator[Range]]) -> Iterator[Range]:
    """Merge sorted range streams into one sorted stream of disjoint, non-adjacent ranges."""
    current: Range | None = None
    for offset, length in heapq.merge(*sources):
        if length <= 0:
            continue
        if current is None:
            current = (offset, length)
        elif offset <= current[0] + current[1]:
            end = max(current[0] + current[1], offset + length)
            current = (current[0], end - current[0])
        else:
            yield current
            current = (offset, length)
    if current is not None:
        yield current


def _file_data_ranges(fd: int, file_start: int, length: int, virt_start: int) -> Iterator[Range]:
    """Ranges of [file_start, file_start + length) that hold data, by SEEK_DATA/SEEK_HOLE."""
    end = file_start + length
    pos = file_start
    while pos < end:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as error:
            if error.errno == errno.ENXIO:
                return
            if error.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                yield virt_start + pos - file_start, end - pos
                return
            raise
        if data >= end:
            return
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        yield virt_start + data - file_start, hole - data
        pos = hole


class DiskImage(ABC):
    """A disk opened for reading. `size` is in bytes; use as a context manager or `close`.

    `readinto` may be called from several threads at once: it only uses positional reads
    (preadv) and the grain maps, which are read-only after open.
    """

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size

    def _check_range(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(
                f"{self.path}: read [{offset}, {offset + length}) outside the disk of {self.size}"
                " bytes"
            )

    @abstractmethod
    def readinto(self, offset: int, buf: memoryview) -> None:
        """Fill `buf` with exactly len(buf) bytes of the disk starting at `offset`."""

    def read(self, offset: int, length: int) -> bytes:
        buf = bytearray(length)
        self.readinto(offset, memoryview(buf))
        return bytes(buf)

    @abstractmethod
    def data_ranges(self) -> Iterator[Range]:
        """Sorted, merged (offset, length) ranges that may hold non-zero data."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RawImage(DiskImage):
    """A plain image file: the disk's bytes, holes reading as zeros."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        size = os.fstat(fd).st_size
        if size % SECTOR:
            os.close(fd)
            raise DiskFormatError(path, f"a raw image of {size} bytes is not whole sectors")
        super().__init__(path, size)
        self._fd = fd

    def readinto(self, offset: int, buf: memoryview) -> None:
        view = _bytes_view(buf)
        self._check_range(offset, view.nbytes)
        read_exact(self._fd, view, offset, self.path, self.size)

    def data_ranges(self) -> Iterator[Range]:
        return _file_data_ranges(self._fd, 0, self.size, 0)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _Part(ABC):
    """One extent placed in the virtual disk at [start, start + length)."""

    def __init__(self, start: int, length: int) -> None:
        self.start = start
        self.length = length

    @abstractmethod
    def readinto(self, rel: int, view: memoryview, image: VmdkImage) -> None: ...

    @abstractmethod
    def own_ranges(self) -> Iterator[Range]: ...

    def close(self) -> None:
        return None


class _FlatPart(_Part):
    def __init__(self, path: Path, file_offset: int, start: int, length: int) -> None:
        super().__init__(start, length)
        self.path = path
        self.file_offset = file_offset
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        actual = os.fstat(self.fd).st_size
        if actual < file_offset + length:
            os.close(self.fd)
            raise SourceTruncatedError(path, actual, file_offset + length)

    def readinto(self, rel: int, view: memoryview, image: VmdkImage) -> None:
        read_exact(self.fd, view, self.file_offset + rel, self.path, self.file_offset + self.length)

    def own_ranges(self) -> Iterator[Range]:
        return _file_data_ranges(self.fd, self.file_offset, self.length, self.start)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _ZeroPart(_Part):
    def readinto(self, rel: int, view: memoryview, image: VmdkImage) -> None:
        _zero(view)

    def own_ranges(self) -> Iterator[Range]:
        return iter(())


class _SparsePart(_Part):
    def __init__(self, extent: GrainedExtent, start: int, length: int) -> None:
        super().__init__(start, length)
        self.extent = extent

    def readinto(self, rel: int, view: memoryview, image: VmdkImage) -> None:
        ext = self.extent
        gs = ext.grain_size
        n = view.nbytes
        g0 = rel // gs
        gmap = ext.entries(g0, (rel + n - 1) // gs + 1)
        # Run boundaries: where the kind (0 unallocated, 1 zeroed, 2 allocated) changes, or where
        # two allocated grains are not next to each other in the file.
        kinds = np.minimum(gmap, 2)
        wide = gmap.astype(np.int64)
        cuts = (kinds[1:] != kinds[:-1]) | (
            (kinds[1:] == 2) & (wide[1:] - wide[:-1] != gs // SECTOR)
        )
        bounds = (np.flatnonzero(cuts) + 1).tolist()
        for a, b in zip([0, *bounds], [*bounds, int(gmap.size)], strict=True):
            lo = max(rel, (g0 + a) * gs)
            hi = min(rel + n, (g0 + b) * gs)
            sub = view[lo - rel : hi - rel]
            kind = int(kinds[a])
            if kind == 2:
                file_offset = int(gmap[a]) * SECTOR + lo - (g0 + a) * gs
                read_exact(ext.fd, sub, file_offset, ext.path, ext.file_size)
            elif kind == 1:
                _zero(sub)
            else:
                image.read_parent(self.start + lo, sub)

    def own_ranges(self) -> Iterator[Range]:
        gs = self.extent.grain_size
        for first, end in self.extent.allocated_runs():
            lo = first * gs
            hi = min(end * gs, self.length)
            if hi > lo:
                yield self.start + lo, hi - lo

    def close(self) -> None:
        self.extent.close()


class VmdkImage(DiskImage):
    """A VMDK disk: its extents in order, and the parent disk it falls through to, if any."""

    def __init__(
        self,
        path: Path,
        descriptor: Descriptor,
        parts: list[_Part],
        size: int,
        parent: VmdkImage | None,
    ) -> None:
        super().__init__(path, size)
        self.descriptor = descriptor
        self.parent = parent
        self._parts = [part for part in parts if part.length > 0]
        self._starts = [part.start for part in self._parts]

    @property
    def cid(self) -> int:
        return self.descriptor.cid

    def chain(self) -> list[VmdkImage]:
        """This disk and its ancestors, child first."""
        images: list[VmdkImage] = []
        image: VmdkImage | None = self
        while image is not None:
            images.append(image)
            image = image.parent
        return images

    def readinto(self, offset: int, buf: memoryview) -> None:
        view = _bytes_view(buf)
        n = view.nbytes
        self._check_range(offset, n)
        end = offset + n
        index = bisect.bisect_right(self._starts, offset) - 1
        pos = offset
        while pos < end:
            part = self._parts[index]
            take = min(part.start + part.length, end) - pos
            part.readinto(pos - part.start, view[pos - offset : pos - offset + take], self)
            pos += take
            index += 1

    def read_parent(self, offset: int, view: memoryview) -> None:
        """What an unallocated grain shows: the parent's data (zeros past its end or without)."""
        parent = self.parent
        if parent is None or offset >= parent.size:
            _zero(view)
            return
        inside = min(view.nbytes, parent.size - offset)
        parent.readinto(offset, view[:inside])
        if inside < view.nbytes:
            _zero(view[inside:])

    def data_ranges(self) -> Iterator[Range]:
        sources: list[Iterator[Range]] = [part.own_ranges() for part in self._parts]
        if self.parent is not None:
            sources.append(self._clipped(self.parent.data_ranges()))
        return _merge(sources)

    def _clipped(self, ranges: Iterator[Range]) -> Iterator[Range]:
        for offset, length in ranges:
            if offset >= self.size:
                return
            yield offset, min(length, self.size - offset)

    def close(self) -> None:
        for part in self._parts:
            part.close()
        if self.parent is not None:
            self.parent.close()


def _sniff(path: Path) -> tuple[str, bytes]:
    """("kdmv" | "cowd" | "descriptor" | "other", the first bytes of the file)."""
    with open(path, "rb") as file:
        head = file.read(len(DESCRIPTOR_MARK) + 16)
    if head[:4] == MAGIC:
        return "kdmv", head
    if head[:4] == COWD_MAGIC:
        return "cowd", head
    if head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(DESCRIPTOR_MARK):
        return "descriptor", head
    return "other", head


def _read_descriptor_file(path: Path) -> Descriptor:
    with open(path, "rb") as file:
        raw = file.read(MAX_DESCRIPTOR_BYTES + 1)
    if not raw:
        raise DiskFormatError(path, "empty file (no descriptor, no data)")
    marked = raw.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(DESCRIPTOR_MARK)
    if marked:
        # The text ends at the first NUL, as qemu and VMware read it: qemu rewrites a descriptor
        # in place (new CID) with a NUL terminator and leaves the old file's tail after it.
        raw = raw.split(b"\0", 1)[0]
    if len(raw) > MAX_DESCRIPTOR_BYTES or (not marked and b"\0" in raw[:4096]):
        raise DiskFormatError(
            path,
            "neither a text descriptor nor a KDMV sparse extent"
            f" ({len(raw)} bytes{'+' if len(raw) > MAX_DESCRIPTOR_BYTES else ''},"
            f" starting with {raw[:16]!r})",
        )
    try:
        text = raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as error:
        raise DiskFormatError(
            path, f"a descriptor must be UTF-8 text; byte {error.start} is not"
        ) from None
    return parse_descriptor(text, str(path))


def _locate(folder: Path, name: str) -> Path:
    """A file named in a descriptor: relative to its folder; an absolute name that does not
    exist here (an ESXi /vmfs/volumes/... path) is looked for beside the descriptor."""
    candidate = folder / name
    if not candidate.exists() and Path(name).is_absolute():
        beside = folder / Path(name).name
        if beside.exists():
            return beside
    return candidate


def _build_parts(path: Path, descriptor: Descriptor) -> list[_Part]:
    parts: list[_Part] = []
    start = 0
    try:
        for extent in descriptor.extents:
            parts.append(_open_extent(path, extent, start))
            start += extent.sectors * SECTOR
    except BaseException:
        for part in parts:
            part.close()
        raise
    return parts


def _open_extent(path: Path, extent: Extent, start: int) -> _Part:
    length = extent.sectors * SECTOR
    if extent.access == "NOACCESS":
        raise DiskFormatError(path, f"extent {extent.filename!r} is NOACCESS")
    if extent.kind == "ZERO":
        return _ZeroPart(start, length)
    assert extent.filename is not None
    file = _locate(path.parent, extent.filename)
    if not file.exists():
        raise DiskFormatError(path, f"extent file {file} is missing")
    if extent.kind in ("FLAT", "VMFS"):
        return _FlatPart(file, extent.offset_sectors * SECTOR, start, length)
    if extent.kind == "VMFSSPARSE":
        cowd = CowdExtent(file)
        if cowd.capacity < length:
            cowd.close()
            raise DiskFormatError(
                file, f"holds {cowd.capacity} bytes but its descriptor says {length}"
            )
        return _SparsePart(cowd, start, length)
    if extent.kind == "SPARSE":
        sparse = SparseExtent.open(file)
        if sparse.capacity < length:
            sparse.close()
            raise DiskFormatError(
                file, f"holds {sparse.capacity} bytes but its descriptor says {length}"
            )
        return _SparsePart(sparse, start, length)
    raise DiskFormatError(path, f"{extent.kind} extents are not supported")


def _open_vmdk(path: Path, kind: str, visiting: list[Path]) -> VmdkImage:
    parts: list[_Part]
    if kind == "kdmv":
        sparse = SparseExtent.open(path)
        descriptor = sparse.descriptor
        if descriptor is None:
            # A bare extent of a split disk: no CID of its own, no parent.
            sectors = sparse.capacity // SECTOR
            descriptor = Descriptor(
                "monolithicSparse", [Extent("RW", sectors, "SPARSE", path.name)], 0
            )
        parts = [_SparsePart(sparse, 0, sparse.capacity)]
        size = sparse.capacity
    else:
        descriptor = _read_descriptor_file(path)
        parts = _build_parts(path, descriptor)
        size = descriptor.capacity
    try:
        parent = _open_parent(path, descriptor, visiting)
    except BaseException:
        for part in parts:
            part.close()
        raise
    return VmdkImage(path, descriptor, parts, size, parent)


def _open_parent(path: Path, descriptor: Descriptor, visiting: list[Path]) -> VmdkImage | None:
    hint = descriptor.parent_hint
    if hint is None:
        if descriptor.parent_cid != NO_PARENT_CID:
            raise ChainError(
                path,
                f"parentCID is {descriptor.parent_cid:08x} but no parentFileNameHint names the"
                " parent",
            )
        return None
    parent_path = _locate(path.parent, hint)
    if not parent_path.is_file():
        raise ChainError(path, f"parent {hint!r} not found (looked for {parent_path})")
    real = parent_path.resolve()
    if real in visiting:
        raise ChainError(path, f"the chain loops back to {parent_path}")
    parent_kind, _head = _sniff(parent_path)
    if parent_kind not in ("kdmv", "descriptor"):
        raise ChainError(path, f"parent {parent_path} is not a VMDK (no descriptor, no KDMV)")
    parent = _open_vmdk(parent_path, parent_kind, [*visiting, real])
    if parent.cid != descriptor.parent_cid:
        parent.close()
        raise ChainError(
            path,
            f"parentCID {descriptor.parent_cid:08x} does not match CID {parent.cid:08x} of"
            f" parent {parent_path} (the parent changed after this delta was made)",
        )
    return parent


def open_disk(path: str | Path, fmt: str = "auto") -> DiskImage:
    """Open a disk for reading: fmt "raw", "vmdk" or "auto" (sniffed; see the module docstring).

    A file that is neither a descriptor nor KDMV is raw, unless its name ends in `.vmdk` or fmt
    is "vmdk": then it is a DiskFormatError naming what is wrong with it.
    """
    path = Path(path)
    if fmt not in ("auto", "raw", "vmdk"):
        raise UsageError(f"unknown disk format {fmt!r} (auto, raw or vmdk)")
    if not path.is_file():
        raise DiskFormatError(path, "no such file")
    if fmt == "raw":
        return RawImage(path)
    kind, _head = _sniff(path)
    if kind == "cowd":
        raise DiskFormatError(
            path, "an ESXi vmfsSparse (COWD) delta extent: open the descriptor that names it"
        )
    if kind == "other":
        if fmt == "auto" and path.suffix.lower() != ".vmdk":
            return RawImage(path)
        # Not recognisable by its first line: parse it anyway, for an error naming the defect
        # (or success, for a descriptor whose comment line was left out).
        kind = "descriptor"
    return _open_vmdk(path, kind, [path.resolve()])
