"""A replica of one disk on the target: a base disk plus one delta per later restore point.

Folder layout (all names relative to the replica folder):

    replica.json          the manifest: a point exists iff it is listed here
    base-flat.vmdk        the base data, a flat extent, sparse on the file system
    point-0001.vmdk       the oldest kept point: a monolithicFlat descriptor over base-flat.vmdk
    point-0002.vmdk       a later point: hosted-sparse KDMV, embedded descriptor with
                          parentFileNameHint="point-0001.vmdk" and parentCID = that point's CID
    point-NNNN.digests    the point's digest file (core.replica.digestfile)
    .lock                 flock: one writer at a time, readers shared

Every point's `.vmdk` opens in qemu-img as the disk at that run. Crash safety:
- A new point is written to `*.partial`, fsynced, renamed, and only then listed in the manifest.
- Retention merges the oldest delta into the base *after* the new point is committed. The dropped
  point leaves the manifest first; the delta's grains are then copied into base-flat.vmdk, which
  cannot change what the delta's own point reads (the delta overrides exactly those grains); then
  the delta's file is atomically replaced by a flat descriptor with the same CID over the base, so
  the next point's parent link stays valid at every instant. A pending merge is recorded in the
  manifest and finished when the replica is next opened for writing.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import os
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import (
    DiskFormatError,
    PointNotFoundError,
    ReplicaCorruptError,
    ReplicaError,
    ReplicaLockedError,
    ReplicaMismatchError,
    TargetFullError,
)
from core.fsutil import (
    DirectWriter,
    aligned_buffer,
    atomic_write,
    fsync_dir,
    is_enospc,
    punch_hole,
)
from core.replica import digestfile
from core.replica.digestfile import DigestFileError, DigestSet
from core.replica.manifest import MANIFEST_NAME, Manifest, PendingMerge, PointRecord
from core.vmdk.descriptor import Descriptor, Extent, flat_descriptor, new_cid, render_descriptor
from core.vmdk.image import DiskImage, open_disk
from core.vmdk.sparse import GRAIN_SIZE, SparseExtent, SparseWriter

BASE_EXTENT = "base-flat.vmdk"
LOCK_NAME = ".lock"
MAX_POINTS = 28
_OWN_FILE = re.compile(r"^(point-\d{4,}\.(vmdk|digests)|base-flat\.vmdk)(\.partial|\.tmp)?$")
_MERGE_CHUNK = 8 << 20


def point_file(point_id: int) -> str:
    return f"point-{point_id:04d}.vmdk"


def digests_file(point_id: int) -> str:
    return f"point-{point_id:04d}.digests"


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class PointInfo:
    """A restore point as callers see it."""

    id: int
    created: str
    path: Path
    kind: str
    changed_bytes: int

    @classmethod
    def of(cls, folder: Path, rec: PointRecord) -> PointInfo:
        return cls(rec.id, rec.created, folder / rec.file, rec.kind, rec.changed_bytes)


class ReplicaChain:
    """One replica folder, opened for writing (exclusive) or reading (shared)."""

    def __init__(self, folder: Path, manifest: Manifest, lock_fd: int, writable: bool) -> None:
        self.folder = folder
        self.manifest = manifest
        self._lock_fd = lock_fd
        self.writable = writable

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open_for_write(
        cls, folder: Path, *, disk_size: int, block_size: int, source: str = ""
    ) -> ReplicaChain:
        """Open or create the replica of a disk of `disk_size` bytes, finish interrupted work."""
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ReplicaError(folder, f"cannot create the replica folder: {e.strerror}") from e
        manifest = Manifest.load(folder)
        if manifest is None:
            foreign = [p.name for p in folder.iterdir() if p.name != LOCK_NAME]
            if foreign:
                raise ReplicaError(
                    folder,
                    f"the folder is not empty and holds no replica ({MANIFEST_NAME} missing; "
                    f"found {', '.join(sorted(foreign)[:3])})",
                )
        lock_fd = _lock(folder, exclusive=True)
        try:
            if manifest is None:
                manifest = Manifest(uuid.uuid4(), disk_size, block_size, source=source)
                manifest.save(folder)
            else:
                manifest = Manifest.load(folder) or manifest
            if manifest.disk_size != disk_size:
                raise ReplicaMismatchError(
                    folder,
                    f"the replica's disk has {manifest.disk_size} bytes, the source {disk_size}",
                )
            if manifest.block_size != block_size:
                raise ReplicaMismatchError(
                    folder,
                    f"the replica uses {manifest.block_size}-byte blocks, the run asks for "
                    f"{block_size}",
                )
            chain = cls(folder, manifest, lock_fd, writable=True)
            chain._recover()
            return chain
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def open_existing(cls, folder: Path) -> ReplicaChain:
        """Open an existing replica for writing, whatever its disk (retention, undo)."""
        folder = Path(folder)
        if Manifest.load(folder) is None:
            raise ReplicaError(folder, f"not a replica folder ({MANIFEST_NAME} missing)")
        lock_fd = _lock(folder, exclusive=True)
        try:
            manifest = Manifest.load(folder)
            assert manifest is not None  # replicas are never deleted under an exclusive lock
            chain = cls(folder, manifest, lock_fd, writable=True)
            chain._recover()
            return chain
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def open_for_read(cls, folder: Path) -> ReplicaChain:
        folder = Path(folder)
        if not folder.is_dir():
            raise ReplicaError(folder, "no such replica folder")
        manifest = Manifest.load(folder)
        if manifest is None:
            raise ReplicaError(folder, f"not a replica folder ({MANIFEST_NAME} missing)")
        lock_fd = _lock(folder, exclusive=False)
        manifest = Manifest.load(folder) or manifest
        return cls(folder, manifest, lock_fd, writable=False)

    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> ReplicaChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what is there -------------------------------------------------------------------------

    @property
    def replica_id(self) -> uuid.UUID:
        return self.manifest.replica_id

    @property
    def points(self) -> list[PointInfo]:
        return [PointInfo.of(self.folder, p) for p in self.manifest.points]

    def record(self, point_id: int) -> PointRecord:
        for p in self.manifest.points:
            if p.id == point_id:
                return p
        raise PointNotFoundError(self.folder, point_id)

    @property
    def latest(self) -> PointRecord | None:
        return self.manifest.points[-1] if self.manifest.points else None

    def open_point(self, point_id: int) -> DiskImage:
        rec = self.record(point_id)
        try:
            return open_disk(self.folder / rec.file, "vmdk")
        except DiskFormatError as e:
            raise ReplicaCorruptError(self.folder, f"restore point {point_id}: {e}") from e

    def point_digests(self, point_id: int) -> DigestSet:
        rec = self.record(point_id)
        try:
            ds = digestfile.read(self.folder / rec.digests)
        except (OSError, DigestFileError) as e:
            raise ReplicaCorruptError(
                self.folder, f"digest file of restore point {point_id}: {e}"
            ) from e
        if (
            ds.replica_id != self.replica_id
            or ds.point_id != point_id
            or ds.disk_size != self.manifest.disk_size
            or ds.block_size != self.manifest.block_size
        ):
            raise ReplicaCorruptError(
                self.folder, f"digest file of restore point {point_id} describes another point"
            )
        return ds

    def check_latest(self) -> None:
        """Refuse to build on a damaged chain: the head must open and its digests must load."""
        latest = self.latest
        if latest is None:
            return
        with self.open_point(latest.id) as image:
            if image.size != self.manifest.disk_size:
                raise ReplicaCorruptError(
                    self.folder,
                    f"restore point {latest.id} reads {image.size} bytes, expected "
                    f"{self.manifest.disk_size}",
                )
        self.point_digests(latest.id)

    # -- writing a new point -------------------------------------------------------------------

    def begin_point(self) -> PointWriter:
        if not self.writable:
            raise ReplicaError(self.folder, "opened read-only")
        latest = self.latest
        if latest is None:
            return _BaseWriter(self)
        return _DeltaWriter(self, latest)

    def _commit(self, rec: PointRecord) -> None:
        self.manifest.points.append(rec)
        self.manifest.next_id = rec.id + 1
        self.manifest.save(self.folder)

    # -- retention -----------------------------------------------------------------------------

    def apply_retention(self, keep: int) -> list[int]:
        """Merge the oldest deltas into the base until at most `keep` points remain."""
        if not 1 <= keep <= MAX_POINTS:
            raise ValueError(f"restore points to keep must be 1 to {MAX_POINTS}, not {keep}")
        dropped: list[int] = []
        while len(self.manifest.points) > keep:
            oldest, into = self.manifest.points[0], self.manifest.points[1]
            self.manifest.points = self.manifest.points[1:]
            self.manifest.merge = PendingMerge(oldest.id, into.id)
            self.manifest.save(self.folder)
            self._finish_merge()
            dropped.append(oldest.id)
        return dropped

    def drop_latest(self, point_id: int) -> None:
        """Remove the newest restore point, which must be `point_id` (a run's undo).

        The point leaves the manifest first; its files are removed after, and a kill in between
        leaves unlisted files that the next open removes. Dropping the only point empties the
        replica. Any other point is refused: only the newest can go without touching the rest.
        """
        if not self.writable:
            raise ReplicaError(self.folder, "opened read-only")
        latest = self.latest
        if latest is None or latest.id != point_id:
            have = latest.id if latest else "none"
            raise ReplicaError(
                self.folder, f"restore point {point_id} is not the newest (that is {have})"
            )
        self.manifest.points = self.manifest.points[:-1]
        self.manifest.save(self.folder)
        for name in (latest.file, latest.digests):
            (self.folder / name).unlink(missing_ok=True)
        if not self.manifest.points:
            (self.folder / BASE_EXTENT).unlink(missing_ok=True)
        fsync_dir(self.folder)

    def _finish_merge(self) -> None:
        merge = self.manifest.merge
        if merge is None:
            return
        into = self.record(merge.into)
        path = self.folder / into.file
        if _is_kdmv(path):
            self._copy_into_base(path)
            desc = flat_descriptor(self.manifest.disk_size, BASE_EXTENT, into.cid)
            atomic_write(path, render_descriptor(desc).encode())
        for name in (point_file(merge.drop), digests_file(merge.drop)):
            (self.folder / name).unlink(missing_ok=True)
        fsync_dir(self.folder)
        idx = self.manifest.points.index(into)
        self.manifest.points[idx] = PointRecord(**{**into.__dict__, "kind": "base"})
        self.manifest.merge = None
        self.manifest.save(self.folder)

    def _copy_into_base(self, delta: Path) -> None:
        """Write every grain the delta holds into the base (idempotent: safe to redo)."""
        extent = SparseExtent.open(delta)
        base_fd = os.open(self.folder / BASE_EXTENT, os.O_WRONLY)
        base = DirectWriter(self.folder / BASE_EXTENT, base_fd)
        src_fd = os.open(delta, os.O_RDONLY)
        buf = aligned_buffer(_MERGE_CHUNK)
        try:
            gmap = extent.grain_map
            size = self.manifest.disk_size
            for first, count, kind in _grain_runs(gmap):
                offset = first * GRAIN_SIZE
                length = min(count * GRAIN_SIZE, size - offset)
                if kind == "zero":
                    punch_hole(base_fd, offset, length)
                    continue
                src = int(gmap[first]) * 512
                pos = 0
                while pos < length:
                    n = min(_MERGE_CHUNK, length - pos)
                    data = memoryview(buf)[:n]
                    if os.preadv(src_fd, [data], src + pos) != n:
                        raise ReplicaCorruptError(self.folder, f"{delta.name} is truncated")
                    base.pwrite(data, offset + pos)
                    pos += n
            os.fsync(base_fd)
        except OSError as e:
            if is_enospc(e):
                raise TargetFullError(self.folder / BASE_EXTENT) from e
            raise
        finally:
            base.close()
            os.close(base_fd)
            os.close(src_fd)
            extent.close()

    # -- recovery ------------------------------------------------------------------------------

    def _recover(self) -> None:
        if self.manifest.merge is not None:
            self._finish_merge()
        keep = {MANIFEST_NAME, LOCK_NAME}
        for p in self.manifest.points:
            keep.update((p.file, p.digests))
        if self.manifest.points:
            keep.add(BASE_EXTENT)
        removed = False
        for entry in self.folder.iterdir():
            if entry.name in keep or not _OWN_FILE.match(entry.name):
                continue
            entry.unlink()
            removed = True
        if removed:
            fsync_dir(self.folder)


def _grain_runs(gmap: np.ndarray) -> Iterator[tuple[int, int, str]]:
    """Runs of grains that are zeroed, or allocated at consecutive file offsets."""
    allocated = np.flatnonzero(gmap)
    if not allocated.size:
        return
    values = gmap[allocated].astype(np.int64)
    zero = values == 1
    # A run continues while the grain index and (for data) the sector offset both advance by one.
    step = np.diff(allocated) == 1
    same_kind = zero[1:] == zero[:-1]
    contiguous = np.where(zero[1:], True, np.diff(values) == GRAIN_SIZE // 512)
    breaks = np.flatnonzero(~(step & same_kind & contiguous)) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [allocated.size]))
    for s, e in zip(starts, ends, strict=True):
        yield int(allocated[s]), int(e - s), ("zero" if zero[s] else "data")


def _is_kdmv(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"KDMV"


def _lock(folder: Path, exclusive: bool) -> int:
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise ReplicaLockedError(folder, "another process") from e
        raise
    if exclusive:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    return fd


class PointWriter(ABC):
    """Receives the blocks of one new restore point; nothing is visible until `commit`."""

    def __init__(self, chain: ReplicaChain, point_id: int) -> None:
        self.chain = chain
        self.point_id = point_id
        self.bytes_written = 0
        self._done = False

    @property
    @abstractmethod
    def is_base(self) -> bool:
        """True for the first point (written into the base), False for a delta."""

    @abstractmethod
    def write(self, offset: int, data: memoryview | bytes) -> None:
        """Write one block's data at `offset` (block-aligned)."""

    @abstractmethod
    def write_zero(self, offset: int, length: int) -> None:
        """Record that a block now reads as zeros."""

    @abstractmethod
    def _finish_data(self) -> tuple[str, int, str]:
        """Make the data durable under its final name; return (file, cid, kind)."""

    @abstractmethod
    def _discard(self) -> None:
        """Remove this point's partial data."""

    def commit(self, digests: np.ndarray, source: str = "") -> PointInfo:
        chain = self.chain
        try:
            file, cid, kind = self._finish_data()
            dname = digests_file(self.point_id)
            digestfile.write(
                chain.folder / dname,
                DigestSet(
                    chain.manifest.block_size,
                    chain.manifest.disk_size,
                    self.point_id,
                    chain.replica_id,
                    digests,
                ),
            )
        except OSError as e:
            self.abort()
            if is_enospc(e):
                raise TargetFullError(chain.folder) from e
            raise
        rec = PointRecord(
            id=self.point_id,
            created=utc_now(),
            file=file,
            cid=cid,
            kind=kind,
            digests=dname,
            source=source,
            changed_bytes=self.bytes_written,
        )
        chain._commit(rec)
        self._done = True
        return PointInfo.of(chain.folder, rec)

    def abort(self) -> None:
        """Remove everything this point wrote; earlier points are untouched."""
        if self._done:
            return
        self._done = True
        self._discard()
        for name in os.listdir(self.chain.folder):
            if name.startswith(f"point-{self.point_id:04d}.") and (
                name.endswith(".partial") or name.endswith(".tmp")
            ):
                (self.chain.folder / name).unlink(missing_ok=True)


class _BaseWriter(PointWriter):
    """First point: a sparse flat file; zero blocks are never written."""

    def __init__(self, chain: ReplicaChain) -> None:
        super().__init__(chain, chain.manifest.next_id)
        self._partial = chain.folder / (BASE_EXTENT + ".partial")
        self._fd = os.open(self._partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.ftruncate(self._fd, chain.manifest.disk_size)
        self._data = DirectWriter(self._partial, self._fd)

    @property
    def is_base(self) -> bool:
        return True

    def write(self, offset: int, data: memoryview | bytes) -> None:
        try:
            self._data.pwrite(data, offset)
        except OSError as e:
            if is_enospc(e):
                raise TargetFullError(self._partial) from e
            raise
        self.bytes_written += len(data)

    def write_zero(self, offset: int, length: int) -> None:
        """The base starts as a hole: zeros need no write."""

    def _finish_data(self) -> tuple[str, int, str]:
        self._data.close()
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        folder = self.chain.folder
        os.replace(self._partial, folder / BASE_EXTENT)
        cid = new_cid()
        desc = flat_descriptor(self.chain.manifest.disk_size, BASE_EXTENT, cid)
        name = point_file(self.point_id)
        atomic_write(folder / name, render_descriptor(desc).encode())
        return name, cid, "base"

    def _discard(self) -> None:
        self._data.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._partial.unlink(missing_ok=True)


class _DeltaWriter(PointWriter):
    """A later point: a KDMV sparse delta over the latest point."""

    def __init__(self, chain: ReplicaChain, parent: PointRecord) -> None:
        super().__init__(chain, chain.manifest.next_id)
        self._name = point_file(self.point_id)
        self._partial = chain.folder / (self._name + ".partial")
        self._partial.unlink(missing_ok=True)
        self._cid = new_cid()
        desc = _sparse_descriptor(
            chain.manifest.disk_size, self._name, self._cid, parent.cid, parent.file
        )
        self._writer = SparseWriter(self._partial, chain.manifest.disk_size, desc)

    @property
    def is_base(self) -> bool:
        return False

    def write(self, offset: int, data: memoryview | bytes) -> None:
        try:
            self._writer.write(offset, data)
        except OSError as e:
            if is_enospc(e):
                raise TargetFullError(self._partial) from e
            raise
        self.bytes_written += len(data)

    def write_zero(self, offset: int, length: int) -> None:
        self._writer.write_zeros(offset, length)

    def _finish_data(self) -> tuple[str, int, str]:
        self._writer.close()
        os.replace(self._partial, self.chain.folder / self._name)
        fsync_dir(self.chain.folder)
        return self._name, self._cid, "delta"

    def _discard(self) -> None:
        self._writer.abort()
        self._partial.unlink(missing_ok=True)


def _sparse_descriptor(
    capacity: int, name: str, cid: int, parent_cid: int, parent_file: str
) -> Descriptor:
    return Descriptor(
        create_type="monolithicSparse",
        extents=[Extent("RW", capacity // 512, "SPARSE", name)],
        cid=cid,
        parent_cid=parent_cid,
        parent_hint=parent_file,
        ddb=flat_descriptor(capacity, name, cid).ddb,
    )
