"""The unit that travels from the source mover to the target mover: a batch of changed blocks.

Each block carries its index, its kind, the XXH3-128 digest of its uncompressed content (the
source computed it; the target recomputes and compares before writing) and its payload: raw data
onsite, a self-describing compressed frame (core.blocks) when compression is on, nothing for a
block that now reads as zeros.

Raw payloads are views into the source mover's pooled read buffers: whoever consumes a batch calls
`done()` when it no longer needs the payloads, which hands the buffer back for the next read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

KIND_RAW = 0
KIND_FRAME = 1
KIND_ZERO = 2
KINDS = (KIND_RAW, KIND_FRAME, KIND_ZERO)


@dataclass
class BlockBatch:
    indices: np.ndarray  # int64, block indices (offset = index * block size)
    kinds: np.ndarray  # uint8, one of KINDS
    digests: np.ndarray  # (n, 16) uint8
    payloads: list[memoryview | bytes]  # empty for KIND_ZERO
    release: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def done(self) -> None:
        """The consumer is finished with the payloads (idempotent)."""
        release, self.release = self.release, None
        if release is not None:
            release()

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def payload_bytes(self) -> int:
        return sum(len(p) for p in self.payloads)
