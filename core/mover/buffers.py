"""A fixed pool of page-aligned batch buffers shared by the stages of one mover pipeline.

The source mover reads each batch of blocks into a buffer from here, and the buffer comes back
when the last stage is done with it (`BlockBatch.done()`). Reusing buffers matters: a fresh
16 MiB `bytearray` per batch cost 1.8 s of page faults and zeroing on a 4 GiB disk (py-spy),
more than reading and digesting the disk. The pool's size also bounds the mover's memory: no
more than `count` batches are in flight, whatever the queues between the stages allow.

Buffers are made on first need, not up front: on this machine (a VM) first-touching fresh memory
costs about 0.9 ms per MiB (64 MiB of new buffers took 60 ms, reusing them 4 ms), a large share
of a small incremental run.
"""

from __future__ import annotations

import mmap
import queue
import threading
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
        self._unmade = count
        self._lock = threading.Lock()

    def acquire(self, stopping: Callable[[], bool]) -> mmap.mmap:
        """A free buffer; waits for one, raising PoolStopped once `stopping()` is true."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._unmade:
                self._unmade -= 1
                return aligned_buffer(self.size)
        while True:
            if stopping():
                raise PoolStopped
            try:
                return self._free.get(timeout=0.2)
            except queue.Empty:
                continue

    def release(self, buffer: mmap.mmap) -> None:
        self._free.put(buffer)
