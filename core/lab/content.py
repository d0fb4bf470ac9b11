"""The lab's guest data: VM disk files with real content, and guest writes between runs.

vcsim creates a VM's disk files empty (LAB.md), so the lab writes each disk itself, as ESXi keeps
it on VMFS: a `vmfs` descriptor and a `-flat.vmdk` extent of the disk's full capacity, sparse on
the file system (a thin disk: blocks the guest never wrote are holes). The content is
`core.diskgen`'s mix (OS-like text, binary, incompressible data) over a small share of the disk.

`guest_writes` is what `replicadesk lab churn` does to a running VM: small writes (4 KiB to
1 MiB, most near data already there, some in fresh space) straight into the flat extent. Every
write is returned so the caller logs it in the change log that the simulator's
QueryChangedDiskAreas answers from; nothing else writes a lab disk.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from core.diskgen import MIB, ImageMix, make_block, write_image
from core.vmdk.descriptor import flat_descriptor, new_cid, render_descriptor

KIB = 1024


def flat_name(descriptor: Path) -> Path:
    """`disk.vmdk` -> `disk-flat.vmdk`, ESXi's naming."""
    return descriptor.with_name(descriptor.name[: -len(".vmdk")] + "-flat.vmdk")


def write_vm_disk(
    descriptor: Path, capacity: int, *, fill: float, seed: int
) -> list[tuple[int, int]]:
    """Write a thin ESXi disk (descriptor + sparse flat extent); return the areas holding data."""
    if capacity <= 0 or capacity % MIB:
        raise ValueError(f"lab disks are whole MiB, not {capacity} bytes")
    if not 0 <= fill <= 1:
        raise ValueError(f"fill {fill} is not a share between 0 and 1")
    flat = flat_name(descriptor)
    mix = ImageMix(zero=1 - fill, text=fill * 0.45, binary=fill * 0.4, random=fill * 0.15)
    write_image(flat, capacity, mix=mix, seed=seed)
    # Every guest disk starts with a partition table and a boot loader: never all zeros.
    with open(flat, "r+b") as f:
        f.write(make_block("binary", np.random.default_rng(seed), MIB))
    text = render_descriptor(flat_descriptor(capacity, flat.name, new_cid(), "vmfs"))
    descriptor.write_text(text)
    return data_areas(flat)


def data_areas(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of the allocated parts of a sparse file (SEEK_DATA / SEEK_HOLE)."""
    areas = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            areas.append((start, end - start))
            pos = end
    finally:
        os.close(fd)
    return areas


def guest_writes(flat: Path, nbytes: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Write about `nbytes` into the disk like a guest would; return the areas written."""
    size = os.path.getsize(flat)
    used = data_areas(flat)
    written: list[tuple[int, int]] = []
    total = 0
    with open(flat, "r+b") as f:
        while total < nbytes:
            length = int(rng.choice([4, 8, 16, 64, 256, 1024])) * KIB
            length = min(length, size)
            if used and rng.random() < 0.8:
                offset, span = used[int(rng.integers(len(used)))]
                offset += int(rng.integers(0, max(1, span // (4 * KIB)))) * 4 * KIB
            else:
                offset = int(rng.integers(0, size // (4 * KIB))) * 4 * KIB
            offset = min(offset, size - length)
            kind = str(rng.choice(["text", "binary", "random"]))
            data = make_block(kind, rng, length)
            f.seek(offset)
            f.write(data)
            written.append((offset, length))
            total += length
        f.flush()
        os.fsync(f.fileno())
    return written
