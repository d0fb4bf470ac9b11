"""A source disk read over the datastore HTTP interface: the Network transport mode's reader.

In Network mode the source proxy cannot open the datastore's files; it reads them through the
host's datastore HTTP interface with Range GETs (`core.vsphere.transfer.DatastoreHttp`). This
module turns such a reader into a `core.vmdk.image.DiskImage`, so the block engine
(`core.engine.replicate_disk`, given the image in `ReplicationRequest.image`) reads a disk the
same way whatever the transport:

    datastore --HTTP Range GET--> HttpDiskImage.readinto --> SourceMover (reader thread)

What it reads: an ESXi `vmfs` or hosted `monolithicFlat` descriptor and its FLAT/VMFS extents
(named relative to the descriptor's folder), and ZERO extents. Sparse extents and delta disks
(a snapshot's `-delta.vmdk`/`-sesparse.vmdk`, hosted KDMV) are refused with a `DiskFormatError`:
reading their grain tables over HTTP would cost a round trip per table, and the job runner reads
a snapshot's delta chain in Direct storage mode instead.

Invariants, as for local disks (`core.vmdk.image`): the descriptor is untrusted (bounded size,
parsed by `core.vmdk.descriptor`); an extent file shorter than its descriptor says is
`SourceTruncatedError` at open; a short read later (the file shrank) is an error naming the file
and offset, never zeros. `data_ranges` is the whole disk less its ZERO extents, or, when the caller
knows better (CBT's "*" query: the allocated areas), exactly those areas. Nothing here imports
pyVmomi: the reader is any object with `read_into(path, offset, buf)` and `size(path)`.
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

import numpy as np

from core.errors import (
    DiskFormatError,
    SourceTruncatedError,
    UsageError,
    VSphereFileError,
    VSphereTransferError,
)
from core.vmdk.descriptor import NO_PARENT_CID, SECTOR, Descriptor, parse_descriptor
from core.vmdk.image import DESCRIPTOR_MARK, MAX_DESCRIPTOR_BYTES, DiskImage

#: Bytes per Range GET. Large enough that the request overhead vanishes (GET runs at 1.3-1.7
#: GiB/s on loopback, LAB.md), small enough that a retry after a broken connection costs little.
CHUNK = 8 << 20

Range = tuple[int, int]

_SPARSE_KINDS = ("SPARSE", "VMFSSPARSE", "SESPARSE")
_NETWORK_MODE_ONLY_FLAT = (
    "Network mode reads flat disks only; a snapshot's delta disks are read in Direct storage"
    " access mode"
)


class RangeReader(Protocol):
    """What HttpDiskImage needs of the datastore: `DatastoreHttp` is one.

    `read_into` reads up to len(buf) bytes of the file at `path` from `offset` and returns the
    count (less only at the end of the file); `size` is the file's length.
    """

    def read_into(self, path: str, offset: int, buf: memoryview) -> int: ...

    def size(self, path: str) -> int: ...


@dataclass(frozen=True)
class _Part:
    """One extent in the virtual disk at [start, start + length); `file` None for ZERO."""

    start: int
    length: int
    file: str | None
    file_offset: int


def sibling(descriptor_path: str, name: str) -> str:
    """The datastore path of a file a descriptor names (`name`), relative to its folder.

    An absolute ESXi name (``/vmfs/volumes/<uuid>/vm/x-flat.vmdk``) is looked for beside the
    descriptor, as the local reader does; a name that climbs out of the datastore is refused.
    """
    datastore, rel = _split(descriptor_path)
    if name.startswith("/"):
        name = PurePosixPath(name).name
    if name.startswith("["):
        other, named = _split(name)
        if other != datastore:
            raise DiskFormatError(
                descriptor_path,
                f"extent {name!r} is on another datastore (a Network-mode reader reads one)",
            )
        joined = posixpath.normpath(named) if named else ""
    else:
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel), name))
    if not joined or joined in (".", "..") or joined.startswith("../"):
        raise DiskFormatError(descriptor_path, f"extent {name!r} is outside the datastore")
    return f"[{datastore}] {joined}" if datastore is not None else joined


def _split(path: str) -> tuple[str | None, str]:
    """``"[ds] a/b.vmdk"`` -> (``"ds"``, ``"a/b.vmdk"``); a bare relative path has no datastore."""
    if not path.startswith("["):
        return None, path.lstrip("/")
    end = path.find("]")
    if end < 2:
        raise DiskFormatError(path, "not a datastore path ('[datastore] folder/file')")
    return path[1:end], path[end + 1 :].strip().lstrip("/")


def _merge(areas: Sequence[Range], size: int) -> list[Range]:
    """Sorted, merged areas clipped to [0, size); a negative offset or length is refused."""
    cleaned: list[Range] = []
    for item in areas:
        if len(item) != 2:
            raise UsageError(f"data area {item!r} is not (offset, length)")
        offset, length = int(item[0]), int(item[1])
        if offset < 0 or length < 0:
            raise UsageError(f"data area ({offset}, {length}) has a negative offset or length")
        end = min(offset + length, size)
        if end > offset:
            cleaned.append((offset, end))
    cleaned.sort()
    merged: list[Range] = []
    for offset, end in cleaned:
        if merged and offset <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((offset, end))
    return [(offset, end - offset) for offset, end in merged]


class HttpDiskImage(DiskImage):
    """A flat VMDK read through a `RangeReader`; `path` is the descriptor's datastore path.

    The image does not own the reader (close it yourself). `readinto` is serialised by a lock:
    the reader keeps one HTTP connection, and the engine reads from one thread anyway.
    """

    def __init__(
        self,
        reader: RangeReader,
        path: str,
        *,
        known_data: Sequence[Range] | None = None,
        chunk: int = CHUNK,
        max_descriptor: int = MAX_DESCRIPTOR_BYTES,
    ) -> None:
        if chunk <= 0:
            raise UsageError(f"HTTP read chunk {chunk} must be positive")
        self.reader = reader
        self.datastore_path = path
        self.chunk = chunk
        self.descriptor = self._read_descriptor(max_descriptor)
        self._parts = self._check_extents(self.descriptor)
        super().__init__(Path(path), self.descriptor.capacity)
        self._known = None if known_data is None else _merge(known_data, self.size)
        self._lock = threading.Lock()
        self._closed = False

    # --- open -------------------------------------------------------------------------------

    def _read_descriptor(self, limit: int) -> Descriptor:
        path = self.datastore_path
        size = self.reader.size(path)
        if size == 0:
            raise DiskFormatError(path, "empty file (no descriptor, no data)")
        # A descriptor is read whole in one GET; anything bigger only far enough to say what it is.
        raw = bytearray(size if size <= limit else 64)
        self._read_exact(path, 0, memoryview(raw))
        data = bytes(raw)
        if data[:4] in (b"KDMV", b"COWD"):
            raise DiskFormatError(
                path, f"a sparse extent ({data[:4].decode()}): " + _NETWORK_MODE_ONLY_FLAT
            )
        marked = data.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(DESCRIPTOR_MARK)
        if size > limit:
            raise DiskFormatError(
                path,
                f"{size} bytes is too big for a descriptor (at most {limit})"
                + ("" if marked else f"; it starts with {data[:16]!r}"),
            )
        if marked:
            data = data.split(b"\0", 1)[0]  # qemu leaves an old tail after a NUL (see image.py)
        elif b"\0" in data[:4096]:
            raise DiskFormatError(
                path, f"neither a text descriptor nor a sparse extent (starts with {data[:16]!r})"
            )
        try:
            text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
        except UnicodeDecodeError as error:
            raise DiskFormatError(
                path, f"a descriptor must be UTF-8 text; byte {error.start} is not"
            ) from None
        descriptor = parse_descriptor(text, path)
        if descriptor.parent_hint is not None or descriptor.parent_cid != NO_PARENT_CID:
            raise DiskFormatError(
                path,
                f"a delta disk (parent {descriptor.parent_hint!r}): " + _NETWORK_MODE_ONLY_FLAT,
            )
        return descriptor

    def _check_extents(self, descriptor: Descriptor) -> list[_Part]:
        path = self.datastore_path
        parts: list[_Part] = []
        start = 0
        for extent in descriptor.extents:
            length = extent.sectors * SECTOR
            if extent.access == "NOACCESS":
                raise DiskFormatError(path, f"extent {extent.filename!r} is NOACCESS")
            if extent.kind in _SPARSE_KINDS:
                raise DiskFormatError(
                    path, f"{extent.kind} extent {extent.filename!r}: " + _NETWORK_MODE_ONLY_FLAT
                )
            if extent.kind == "ZERO":
                parts.append(_Part(start, length, None, 0))
            elif extent.kind in ("FLAT", "VMFS"):
                assert extent.filename is not None
                file = sibling(path, extent.filename)
                file_offset = extent.offset_sectors * SECTOR
                try:
                    actual = self.reader.size(file)
                except VSphereFileError as error:
                    raise DiskFormatError(path, f"extent file {file} is missing") from error
                if actual < file_offset + length:
                    raise SourceTruncatedError(file, actual, file_offset + length)
                parts.append(_Part(start, length, file, file_offset))
            else:
                raise DiskFormatError(
                    path, f"{extent.kind} extents are not supported in Network mode"
                )
            start += length
        return [part for part in parts if part.length > 0]

    def _read_exact(self, file: str, offset: int, view: memoryview) -> None:
        """Fill `view` from `file` at `offset`, one Range GET per chunk; short is an error."""
        done = 0
        total = view.nbytes
        while done < total:
            take = min(self.chunk, total - done)
            n = self.reader.read_into(file, offset + done, view[done : done + take])
            if n != take:
                raise VSphereTransferError(
                    f"read {file} at offset {offset + done}",
                    f"the server returned {n} of {take} bytes: the file is shorter than its"
                    " descriptor says (did it shrink while being read?)",
                )
            done += take

    # --- DiskImage --------------------------------------------------------------------------

    def readinto(self, offset: int, buf: memoryview) -> None:
        view = memoryview(buf)
        if view.readonly or not view.c_contiguous:
            raise ValueError("readinto needs a writable, contiguous buffer")
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        n = view.nbytes
        self._check_range(offset, n)
        end = offset + n
        with self._lock:
            if self._closed:
                raise ValueError(f"{self.datastore_path}: read after close")
            for part in self._parts:
                lo = max(offset, part.start)
                hi = min(end, part.start + part.length)
                if lo >= hi:
                    continue
                sub = view[lo - offset : hi - offset]
                if part.file is None:
                    np.frombuffer(sub, dtype=np.uint8).fill(0)
                else:
                    self._read_exact(part.file, part.file_offset + lo - part.start, sub)

    def data_ranges(self) -> Iterator[Range]:
        if self._known is not None:
            return iter(self._known)
        return iter(_merge([(p.start, p.length) for p in self._parts if p.file], self.size))

    def close(self) -> None:
        with self._lock:
            self._closed = True
