"""The unit that travels from the source mover to the target mover: a batch of changed blocks.

Each block carries its index, its kind, the XXH3-128 digest of its uncompressed content (the
source computed it; the target recomputes and compares before writing) and its payload: raw data
onsite, a self-describing compressed frame (core.blocks) when compression is on, nothing for a
block that now reads as zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def payload_bytes(self) -> int:
        return sum(len(p) for p in self.payloads)
