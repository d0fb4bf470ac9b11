"""Reading a whole disk image in chunks of whole blocks, each chunk scanned in one parallel pass
(digests and zero flags, `core.blocks.scan`): what verifying a point or a source
(`core.replica.verify`) and seeding a chain from a mapped disk (`core.replica.seed`) share."""

from __future__ import annotations

from collections.abc import Iterator

from core import blocks
from core.vmdk.image import DiskImage

CHUNK = 32 << 20


def scan_image(
    image: DiskImage, block_size: int
) -> Iterator[tuple[int, memoryview, blocks.ScanResult]]:
    """(offset, the chunk's bytes, its scan) for each chunk of `image`, in order. The bytes are
    valid until the next chunk is read (one buffer is reused)."""
    size = image.size
    chunk = max(block_size, (CHUNK // block_size) * block_size)
    buf = bytearray(chunk)
    pos = 0
    while pos < size:
        n = min(chunk, size - pos)
        view = memoryview(buf)[:n]
        image.readinto(pos, view)
        yield pos, view, blocks.scan(view, block_size)
        pos += n
