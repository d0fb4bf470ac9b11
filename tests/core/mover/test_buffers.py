"""The source mover's buffer pool: bounded, reused, and released by whoever consumes a batch."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from core.mover.batch import KIND_RAW, BlockBatch
from core.mover.buffers import BufferPool, PoolStopped


def test_pool_hands_out_at_most_count_buffers_and_reuses_them() -> None:
    pool = BufferPool(2, 4096)
    a = pool.acquire(lambda: False)
    b = pool.acquire(lambda: False)
    assert a is not b
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with pytest.raises(PoolStopped):
        pool.acquire(stop.is_set)  # empty: waits until the run stops
    pool.release(a)
    assert pool.acquire(lambda: False) is a


def test_batch_done_releases_once() -> None:
    pool = BufferPool(1, 4096)
    buf = pool.acquire(lambda: False)
    batch = BlockBatch(
        np.array([0], dtype=np.int64),
        np.array([KIND_RAW], dtype=np.uint8),
        np.zeros((1, 16), dtype=np.uint8),
        [memoryview(buf)],
        release=lambda: pool.release(buf),
    )
    batch.done()
    batch.done()
    assert pool.acquire(lambda: False) is buf
    stop = threading.Event()
    stop.set()
    with pytest.raises(PoolStopped):
        pool.acquire(stop.is_set)  # a second release would have left another one in the pool
