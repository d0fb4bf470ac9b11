"""Checking and exporting restore points (`replicadesk disk verify|export`).

Verify reads a point through its whole chain with our own reader, digests every block and
compares with the digests recorded when the point was committed; with a source it also compares
with the source as it is now. Export writes a point as a raw image (sparse: zero blocks are not
written). Both take the replica's shared lock, so retention cannot merge under them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core import blocks
from core.errors import ReplicaDeskError, TargetFullError, UsageError
from core.fsutil import is_enospc, pwrite_all
from core.replica.chain import ReplicaChain
from core.replica.scan import scan_image
from core.vmdk.image import DiskImage, open_disk

CHUNK = 32 << 20

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class PointCheck:
    point_id: int
    path: str
    ok: bool
    problems: list[str] = field(default_factory=list)


def _digest_image(
    image: DiskImage, block_size: int, progress: ProgressFn | None = None
) -> np.ndarray:
    out = np.empty((blocks.block_count(image.size, block_size), blocks.DIGEST_SIZE), dtype=np.uint8)
    for pos, view, scan in scan_image(image, block_size):
        first = pos // block_size
        out[first : first + scan.digests.shape[0]] = scan.digests
        if progress:
            progress(len(view))
    return out


def _describe(bad: np.ndarray, block_size: int, what: str) -> str:
    first = int(bad[0])
    return (
        f"{bad.size} block(s) differ from {what}, first at block {first} "
        f"(offset {first * block_size})"
    )


def verify_replica(
    folder: Path,
    point_id: int | None = None,
    against: Path | None = None,
    progress: ProgressFn | None = None,
) -> list[PointCheck]:
    """Check one point (or every point); `against` compares with a source disk as well."""
    with ReplicaChain.open_for_read(folder) as chain:
        bs = chain.manifest.block_size
        records = [chain.record(point_id)] if point_id is not None else chain.manifest.points
        if not records:
            raise UsageError(f"replica {folder} has no restore points")
        source_digests: np.ndarray | None = None
        if against is not None:
            with open_disk(against) as src:
                if src.size != chain.manifest.disk_size:
                    raise UsageError(
                        f"{against} has {src.size} bytes, the replica's disk "
                        f"{chain.manifest.disk_size}"
                    )
                source_digests = _digest_image(src, bs, progress)
        results: list[PointCheck] = []
        for rec in records:
            problems: list[str] = []
            try:
                with chain.open_point(rec.id) as image:
                    if image.size != chain.manifest.disk_size:
                        problems.append(
                            f"reads {image.size} bytes, expected {chain.manifest.disk_size}"
                        )
                    else:
                        actual = _digest_image(image, bs, progress)
                        recorded = chain.point_digests(rec.id).digests
                        bad = blocks.diff_digests(actual, recorded)
                        if bad.size:
                            problems.append(_describe(bad, bs, "the digests recorded at commit"))
                        if source_digests is not None:
                            bad = blocks.diff_digests(actual, source_digests)
                            if bad.size:
                                problems.append(_describe(bad, bs, str(against)))
            except ReplicaDeskError as e:
                problems.append(str(e))
            except OSError as e:
                problems.append(f"cannot read: {e}")
            results.append(PointCheck(rec.id, str(folder / rec.file), not problems, problems))
        return results


def export_point(
    folder: Path, point_id: int, output: Path, progress: ProgressFn | None = None
) -> int:
    """Write the point as a raw image; returns the number of data bytes written."""
    if output.exists():
        raise UsageError(f"{output} exists; export never overwrites a file")
    with ReplicaChain.open_for_read(folder) as chain, chain.open_point(point_id) as image:
        size = image.size
        bs = chain.manifest.block_size
        tmp = output.with_name(output.name + ".partial")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        written = 0
        try:
            os.ftruncate(fd, size)
            buf = bytearray(CHUNK)
            for offset, length in image.data_ranges():
                end = offset + length
                pos = offset
                while pos < end:
                    n = min(CHUNK, end - pos)
                    view = memoryview(buf)[:n]
                    image.readinto(pos, view)
                    zero = blocks.zero_blocks(view, min(bs, n))
                    step = min(bs, n)
                    for j in np.flatnonzero(~zero).tolist():
                        piece = view[j * step : min(n, (j + 1) * step)]
                        pwrite_all(fd, piece, pos + j * step)
                        written += len(piece)
                    pos += n
                    if progress:
                        progress(n)
            os.fsync(fd)
        except OSError as e:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            if is_enospc(e):
                raise TargetFullError(output) from e
            raise
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, output)
        return written
