"""File-system helpers that make the replica's on-disk changes crash-safe.

Everything that presents state (a manifest, a descriptor, a metadata file) is replaced with
write-to-temporary, fsync, rename, fsync the folder: after a kill at any instant the old or the new
file is there, never a mix. ENOSPC is turned into `TargetFullError` at the call sites that write
replica data.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from pathlib import Path

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
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
