"""Type stub for the compiled `_fastblocks.lz4block` (see lz4block.pyx)."""

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

CODEC_STORED: int
CODEC_LZ4: int
FRAME_HEADER_SIZE: int

class FrameError(ValueError): ...

def compress(data: Buffer) -> bytes: ...
def compress_blocks(
    buf: Buffer, block_size: int, indices: npt.NDArray[np.int64]
) -> list[bytes]: ...
def decompress(frame: Buffer) -> bytes: ...
def decompress_into(
    frames: Iterable[Buffer], out: Buffer, block_size: int
) -> npt.NDArray[np.int64]: ...
