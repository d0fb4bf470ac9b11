"""Seeding a replica chain from a disk that is already at the target (replica mapping).

When a job maps a source VM to an existing VM on the DR site, each of that VM's disks becomes the
first point of the replica chain: its data is copied here, at the target, into the chain's base
(zero blocks stay holes) with the point's digests, and the run then sends only the blocks that
differ (the engine finds no metadata for the seed and has the target rebuild the digests from
it). The mapped disk is only read. The seed point's record names it (`source` starts with
`SEED_PREFIX`), so a seed left by a failed or killed run is replaced, never built on by surprise;
any other point in the folder is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core import blocks
from core.errors import DiskFormatError, ReplicaError
from core.replica.chain import PointInfo, ReplicaChain
from core.replica.manifest import MANIFEST_NAME, Manifest
from core.replica.scan import scan_image
from core.vmdk.image import open_disk

SEED_PREFIX = "seed:"


def is_seed(source: str) -> bool:
    return source.startswith(SEED_PREFIX)


def seed_chain(folder: Path, disk: Path, block_size: int) -> PointInfo:
    """Make `disk`'s content the first point of the (new) chain in `folder`."""
    try:
        image = open_disk(disk)
    except DiskFormatError as e:
        raise ReplicaError(folder, f"the disk to seed from cannot be read: {e}") from e
    with image:
        _drop_old_seed(folder)
        source = f"{SEED_PREFIX}{disk}"
        with ReplicaChain.open_for_write(
            folder, disk_size=image.size, block_size=block_size, source=source
        ) as chain:
            writer = chain.begin_point()
            try:
                digests = np.empty(
                    (blocks.block_count(image.size, block_size), blocks.DIGEST_SIZE),
                    dtype=np.uint8,
                )
                for pos, view, scan in scan_image(image, block_size):
                    first = pos // block_size
                    digests[first : first + scan.digests.shape[0]] = scan.digests
                    for i in np.flatnonzero(~scan.zero):
                        start = int(i) * block_size
                        writer.write(pos + start, view[start : start + block_size])
                return writer.commit(digests, source)
            except BaseException:
                writer.abort()
                raise


def _drop_old_seed(folder: Path) -> None:
    """Remove a seed an earlier attempt left; refuse a folder holding real restore points."""
    manifest = Manifest.load(folder) if folder.is_dir() else None
    if manifest is None or not manifest.points:
        return
    if len(manifest.points) == 1 and is_seed(manifest.points[0].source):
        with ReplicaChain.open_existing(folder) as chain:
            chain.drop_latest(manifest.points[0].id)
            # A new manifest follows: the disk may have been resized since that attempt.
            (folder / MANIFEST_NAME).unlink()
        return
    raise ReplicaError(
        folder,
        f"the folder already holds {len(manifest.points)} restore point(s) of another replica: "
        "a mapped VM is only seeded into a new chain (remove the folder, or give the job another "
        "replica suffix)",
    )
