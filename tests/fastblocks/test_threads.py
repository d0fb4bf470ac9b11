"""Concurrency: no shared scratch state between calls, and the GIL is released during C work."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from _fastblocks import digest, lz4block

from .conftest import KIB, MIB, realistic

BLOCK = 256 * KIB


def work(buf: bytes) -> tuple[bytes, bytes, list[bytes], bytes]:
    """scan + compress + decompress_into of one buffer, results as comparable bytes."""
    digests, zero = digest.scan(buf, BLOCK)
    frames = lz4block.compress_blocks(
        buf, BLOCK, np.arange(digest.block_count(len(buf), BLOCK), dtype=np.int64)
    )
    out = bytearray(len(frames) * BLOCK)
    lengths = lz4block.decompress_into(frames, out, BLOCK)
    restored = b"".join(
        out[i * BLOCK : i * BLOCK + int(length)] for i, length in enumerate(lengths)
    )
    assert restored == buf
    return digests.tobytes(), zero.tobytes(), frames, lz4block.decompress(frames[-1])


def test_threads_hammering_give_serial_results() -> None:
    # Like borg's test_lz4_threaded: shared scratch buffers would mix data between threads.
    buffers = [realistic(2 * MIB + seed * 4099, seed=seed) for seed in range(6)]
    expected = [work(buf) for buf in buffers]
    rounds = 4
    with ThreadPoolExecutor(max_workers=6) as pool:
        jobs = [(i, pool.submit(work, buffers[i])) for _ in range(rounds) for i in range(6)]
        for i, job in jobs:
            assert job.result() == expected[i]


@pytest.fixture
def gil_held_by_runner() -> Iterator[None]:
    """Make the running thread keep the GIL until it blocks or enters a nogil section.

    With a huge switch interval the interpreter never takes the GIL away from a running thread,
    so another thread can only run while this one waits or runs C code without the GIL.
    """
    old = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def ticks_during(call: Callable[[], object], patience: float = 3.0) -> int:
    """How far a counting thread gets while `call()` runs in this thread."""
    count = 0
    stop = False
    started = threading.Event()

    def counter() -> None:
        nonlocal count
        started.set()
        while not stop:
            count += 1
            time.sleep(0)  # hand the GIL back at once, so the caller never waits for it

    thread = threading.Thread(target=counter)
    thread.start()
    started.wait()
    try:
        # A GIL-holding call gives 0 every time. A releasing one lets the counter run, but on a
        # busy machine the OS may not schedule it during one short call (OpenMP keeps the cores
        # busy), so repeat the call for up to `patience` seconds before giving up.
        deadline = time.monotonic() + patience
        while True:
            before = count
            call()
            ticks = count - before
            if ticks > 0 or time.monotonic() > deadline:
                return ticks
    finally:
        stop = True
        thread.join()


@pytest.fixture(scope="module")
def big() -> bytes:
    return realistic(64 * MIB, seed=99)


def test_control_a_gil_holding_call_lets_no_tick_through(
    big: bytes, gil_held_by_runner: None
) -> None:
    # The method itself must be able to fail: Python code, and C code that keeps the GIL (a
    # 64 MiB bytes comparison), keep the counter still.
    copy = bytes(bytearray(big))
    assert ticks_during(lambda: sum(range(1_000_000)), patience=0.3) == 0
    assert ticks_during(lambda: big == copy, patience=0.3) == 0


@pytest.mark.usefixtures("gil_held_by_runner")
@pytest.mark.parametrize("name", ["scan", "digest_blocks", "zero_blocks", "compress", "decompress"])
def test_gil_is_released(big: bytes, name: str) -> None:
    frames = lz4block.compress_blocks(big, MIB, np.arange(64, dtype=np.int64))
    out = bytearray(64 * MIB)
    zeros = bytes(64 * MIB)
    calls: dict[str, Callable[[], object]] = {
        "scan": lambda: digest.scan(big, MIB),
        "digest_blocks": lambda: digest.digest_blocks(big, MIB),
        "zero_blocks": lambda: digest.zero_blocks(zeros, MIB),
        "compress": lambda: lz4block.compress_blocks(big, MIB, np.arange(64, dtype=np.int64)),
        "decompress": lambda: lz4block.decompress_into(frames, out, MIB),
    }
    assert ticks_during(calls[name]) > 0
