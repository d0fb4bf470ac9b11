"""File-system helpers that make the replica's on-disk changes crash-safe.

Everything that presents state (a manifest, a descriptor, a metadata file) is replaced with
write-to-temporary, fsync, rename, fsync the folder: after a kill at any instant the old or the new
file is there, never a mix. ENOSPC is turned into `TargetFullError` at the call sites that write
replica data.

Bulk replica data (the base and the deltas' grains) goes through `DirectWriter`, which bypasses the
page cache with O_DIRECT where the file system allows it. Measured on this machine's ext4: 204 MiB
written and fsynced took 0.63 s through the page cache (0.54 s of it kernel copy time) and 0.09 s
with O_DIRECT; that copy was the target mover's bottleneck.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
from pathlib import Path

import numpy as np

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02

# The C library already loaded into this process (ctypes.util.find_library runs `ldconfig -p`,
# 20 ms of every command's start-up).
_libc = ctypes.CDLL(None, use_errno=True)
_fallocate = _libc.fallocate
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_fallocate.restype = ctypes.c_int


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a reader sees either the old or the new content."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def punch_hole(fd: int, offset: int, length: int) -> None:
    """Deallocate a range so it reads as zeros; falls back to writing zeros where unsupported."""
    if length <= 0:
        return
    if _fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) == 0:
        return
    err = ctypes.get_errno()
    if err not in (errno.EOPNOTSUPP, errno.ENOSYS):
        raise OSError(err, os.strerror(err))
    zeros = bytes(min(length, 1 << 20))
    pos = offset
    end = offset + length
    while pos < end:
        pos += os.pwrite(fd, zeros[: min(len(zeros), end - pos)], pos)


def pwrite_all(fd: int, data: memoryview | bytes, offset: int) -> None:
    """pwrite until every byte is written (a short write is retried, not ignored)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def is_enospc(error: OSError) -> bool:
    return error.errno in (errno.ENOSPC, errno.EDQUOT)


DIRECT_ALIGN = 4096
"""Memory address, file offset and length alignment we ask of O_DIRECT writes (a page; the
logical block size of common disks is 512 or 4096)."""

_STAGE_SIZE = 4 << 20


def aligned_buffer(size: int) -> mmap.mmap:
    """Page-aligned, zero-filled anonymous memory of `size` bytes (usable for O_DIRECT)."""
    return mmap.mmap(-1, max(size, 1))


def _address(view: memoryview) -> int:
    return int(np.frombuffer(view, dtype=np.uint8).ctypes.data)


class DirectWriter:
    """Writes data into an open file, bypassing the page cache (O_DIRECT) where it can.

    The caller keeps its ordinary descriptor `fd` for everything else (metadata, fsync, close);
    this class opens a second, O_DIRECT descriptor on the same file. Aligned parts of a write go
    through it (copied through a page-aligned staging buffer when the caller's memory is not
    aligned); a misaligned head or tail, and everything on file systems without O_DIRECT
    (tmpfs answers EINVAL), goes through `fd`. The data is durable only after `os.fsync(fd)`.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self._fd = fd
        self._direct: int | None
        try:
            self._direct = os.open(path, os.O_WRONLY | os.O_DIRECT)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            self._direct = None
        self._stage: mmap.mmap | None = None

    @property
    def direct(self) -> bool:
        """True when O_DIRECT is in use on this file system."""
        return self._direct is not None

    def pwrite(self, data: memoryview | bytes, offset: int) -> None:
        """Write all of `data` at `offset` (a short write is retried, not ignored)."""
        view = memoryview(data).cast("B")
        direct = self._direct
        if direct is None or offset % DIRECT_ALIGN or len(view) < DIRECT_ALIGN:
            pwrite_all(self._fd, view, offset)
            return
        body = len(view) - len(view) % DIRECT_ALIGN
        if _address(view) % DIRECT_ALIGN == 0:
            done = self._write_direct(direct, view[:body], offset)
        else:
            done = 0
            stage = self._stage_buffer()
            while done < body:
                n = min(_STAGE_SIZE, body - done)
                stage[:n] = view[done : done + n]
                written = self._write_direct(direct, memoryview(stage)[:n], offset + done)
                done += written
                if written < n:
                    break
        if done < len(view):
            pwrite_all(self._fd, view[done:], offset + done)

    @staticmethod
    def _write_direct(fd: int, view: memoryview, offset: int) -> int:
        """Write aligned `view` with O_DIRECT until done or a short write leaves it misaligned."""
        done = 0
        while done < len(view):
            written = os.pwrite(fd, view[done:], offset + done)
            done += written
            if written % DIRECT_ALIGN:
                break
        return done

    def _stage_buffer(self) -> mmap.mmap:
        if self._stage is None:
            self._stage = aligned_buffer(_STAGE_SIZE)
        return self._stage

    def close(self) -> None:
        """Close the O_DIRECT descriptor (the caller's `fd` stays open)."""
        if self._direct is not None:
            os.close(self._direct)
            self._direct = None
