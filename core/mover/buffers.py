"""A fixed pool of page-aligned batch buffers shared by the stages of one mover pipeline.

The source mover reads each batch of blocks into a buffer from here, and the buffer comes back
when the last stage is done with it (`BlockBatch.done()`). Reusing buffers matters: a fresh
16 MiB `bytearray` per batch cost 1.8 s of page faults and zeroing on a 4 GiB disk (py-spy),
more than reading and digesting the disk. The pool's size also bounds the mover's memory: no
more than `count` batches are in flight, whatever the queues between the stages allow.
"""

from __future__ import annotations

import mmap
import queue
from collections.abc import Callable

from core.fsutil import aligned_buffer


class PoolStopped(Exception):
    """Internal: waiting for a buffer ended because the run is stopping."""


class BufferPool:
    def __init__(self, count: int, size: int) -> None:
        if count < 1 or size < 1:
            raise ValueError(f"a pool needs at least one buffer of at least one byte ({count=})")
        self.size = size
        self._free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        for _ in range(count):
            self._free.put(aligned_buffer(size))

    def acquire(self, stopping: Callable[[], bool]) -> mmap.mmap:
        """A free buffer; waits for one, raising PoolStopped once `stopping()` is true."""
        while True:
            if stopping():
                raise PoolStopped
            try:
                return self._free.get(timeout=0.2)
            except queue.Empty:
                continue

    def release(self, buffer: mmap.mmap) -> None:
        self._free.put(buffer)
