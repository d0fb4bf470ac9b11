"""The source data mover: read the disk, digest, skip zeros, diff, compress, send.

Three stages joined by bounded queues, so memory stays flat whatever the disk size: batches are
read into POOL_BUFFERS reused buffers of BATCH_BYTES, and a buffer is only read into again once
every later stage (the target included) is done with it:

    reader thread  --ReadBatch-->  process thread  --BlockBatch-->  caller's thread: target.put()
    (Source)                        (Proxy: scan, diff,             (Network offsite; the target's
                                    compress in _fastblocks)         own queue onsite)

What is read: the whole disk, or only the blocks that overlap the given changed areas (what VMware
CBT reports). Blocks outside the disk's data ranges (holes, unallocated grains) are known to be
zero without reading. What is sent: on a first run every non-zero block; later, every block whose
digest differs from the baseline (the digests of the replica's latest point), zero blocks as a
zero marker.
"""

from __future__ import annotations

import mmap
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from core import blocks
from core.errors import CancelledError, UsageError
from core.mover.batch import KIND_FRAME, KIND_RAW, KIND_ZERO, BlockBatch
from core.mover.buffers import BufferPool, PoolStopped
from core.mover.stats import RunStats, StageClock
from core.mover.target import TargetEndpoint
from core.replica.digestfile import zero_digests
from core.vmdk.image import DiskImage

BATCH_BYTES = 4 << 20
QUEUE_DEPTH = 3
POOL_BUFFERS = 6

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class SourcePlan:
    """What one run of one disk must do."""

    block_size: int
    baseline: np.ndarray | None  # digests of the replica's latest point; None on a first run
    changed_areas: Sequence[tuple[int, int]] | None = None  # None: read the whole disk
    compress: bool = False
    # With changed areas: also read this many blocks CBT calls unchanged (at random, among the
    # blocks holding data) and compare them with the baseline. CBT that lies is a known failure
    # of this field (changes lost after consolidation or a resize); a block that differs is sent
    # like any other and counted as a CBT miss.
    verify_sample: int = 0
    seed: int | None = None


@dataclass
class _ReadBatch:
    indices: np.ndarray  # int64
    buffer: mmap.mmap | None  # pooled; the blocks back to back; None when all are known zeros
    lengths_total: int

    @property
    def data(self) -> memoryview:
        assert self.buffer is not None
        return memoryview(self.buffer)[: self.lengths_total]


@dataclass(frozen=True)
class SourceResult:
    digests: np.ndarray  # the disk's digests after this run
    stats: RunStats


def blocks_in_areas(
    areas: Sequence[tuple[int, int]], disk_size: int, block_size: int
) -> np.ndarray:
    """Indices of the blocks that overlap any area; bad areas are a clear error."""
    n = blocks.block_count(disk_size, block_size)
    mask = np.zeros(n, dtype=bool)
    for item in areas:
        if len(item) != 2:
            raise UsageError(f"changed area {item!r} is not [offset, length]")
        offset, length = int(item[0]), int(item[1])
        if offset < 0 or length < 0 or offset + length > disk_size:
            raise UsageError(
                f"changed area [{offset}, {length}] is outside the {disk_size}-byte disk"
            )
        if length:
            mask[offset // block_size : (offset + length - 1) // block_size + 1] = True
    return np.flatnonzero(mask).astype(np.int64)


def data_block_mask(image: DiskImage, block_size: int) -> np.ndarray:
    """True for blocks that may hold data; the rest read as zeros without reading."""
    mask = np.zeros(blocks.block_count(image.size, block_size), dtype=bool)
    for offset, length in image.data_ranges():
        if length > 0:
            mask[offset // block_size : (offset + length - 1) // block_size + 1] = True
    return mask


class SourceMover:
    def __init__(
        self,
        image: DiskImage,
        plan: SourcePlan,
        target: TargetEndpoint,
        *,
        clock: StageClock | None = None,
        cancel: threading.Event | None = None,
        progress: ProgressFn | None = None,
    ) -> None:
        if plan.block_size <= 0 or plan.block_size % 65536:
            raise UsageError(f"block size {plan.block_size} is not a multiple of 64 KiB")
        self.image = image
        self.plan = plan
        self.target = target
        self.clock = clock or StageClock()
        self.cancel = cancel or threading.Event()
        self.progress = progress
        self.size = image.size
        self.bs = plan.block_size
        self.n_blocks = blocks.block_count(self.size, self.bs)
        self._error: BaseException | None = None
        self._failed = threading.Event()
        self.read_bytes = 0
        self.zero_blocks = 0
        self.blocks_sent = 0
        self.changed_bytes = 0
        self.transferred = 0
        self._pool = BufferPool(POOL_BUFFERS, max(BATCH_BYTES, self.bs))
        self._candidate_cache: np.ndarray | None = None
        self.sampled = np.empty(0, dtype=np.int64)
        self.cbt_misses = 0

    # -- what to read --------------------------------------------------------------------------

    def _candidates(self) -> np.ndarray:
        if self._candidate_cache is not None:
            return self._candidate_cache
        if self.plan.changed_areas is None or self.plan.baseline is None:
            out = np.arange(self.n_blocks, dtype=np.int64)
        else:
            changed = blocks_in_areas(self.plan.changed_areas, self.size, self.bs)
            out = np.union1d(changed, self._sample(changed)).astype(np.int64)
        self._candidate_cache = out
        return out

    def _sample(self, changed: np.ndarray) -> np.ndarray:
        """Blocks with data that CBT did not report, picked at random to check CBT."""
        if self.plan.verify_sample <= 0:
            return np.empty(0, dtype=np.int64)
        others = np.flatnonzero(data_block_mask(self.image, self.bs))
        others = np.setdiff1d(others, changed)
        if not others.size:
            return np.empty(0, dtype=np.int64)
        rng = np.random.default_rng(self.plan.seed)
        picked = rng.choice(others, size=min(self.plan.verify_sample, others.size), replace=False)
        self.sampled = np.sort(picked).astype(np.int64)
        return self.sampled

    def _block_len(self, index: int) -> int:
        return min(self.bs, self.size - index * self.bs)

    def _read_batches(self) -> Iterator[_ReadBatch]:
        candidates = self._candidates()
        data = data_block_mask(self.image, self.bs)
        has_data = data[candidates]
        per_batch = max(1, BATCH_BYTES // self.bs)
        holes = candidates[~has_data]
        if self.plan.baseline is not None:
            # Known zeros still matter when the replica has data there.
            for start in range(0, holes.size, per_batch * 16):
                yield _ReadBatch(holes[start : start + per_batch * 16], None, 0)
        reads = candidates[has_data]
        for start in range(0, reads.size, per_batch):
            idx = reads[start : start + per_batch]
            total = self._span(idx)
            buf = self._pool.acquire(self._stopping)
            view = memoryview(buf)
            pos = 0
            # Read runs of consecutive blocks with one call each.
            breaks = np.flatnonzero(np.diff(idx) != 1) + 1
            for run in np.split(idx, breaks):
                first = int(run[0])
                length = (run.size - 1) * self.bs + self._block_len(int(run[-1]))
                with self.clock.timing("source"):
                    self.image.readinto(first * self.bs, view[pos : pos + length])
                pos += length
            self.read_bytes += total
            yield _ReadBatch(idx, buf, total)

    # -- the stages ----------------------------------------------------------------------------

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._failed.set()

    def _stopping(self) -> bool:
        return self._failed.is_set() or self.cancel.is_set()

    def _put(self, q: queue.Queue[object], item: object) -> bool:
        while not (self._failed.is_set() or self.cancel.is_set()):
            try:
                q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _reader(self, out: queue.Queue[object]) -> None:
        try:
            for batch in self._read_batches():
                if not self._put(out, batch):
                    return
            self._put(out, None)
        except PoolStopped:
            return
        except BaseException as e:
            self._fail(e)

    def _processor(self, inq: queue.Queue[object], out: queue.Queue[object]) -> None:
        try:
            while True:
                item = self._get(inq)
                if item is None:
                    self._put(out, None)
                    return
                assert isinstance(item, _ReadBatch)
                with self.clock.timing("proxy"):
                    batch = self._process(item)
                if self.progress:
                    self.progress(self._span(item.indices))
                if batch is not None and not self._put(out, batch):
                    return
        except BaseException as e:
            self._fail(e)

    def _get(self, q: queue.Queue[object]) -> object:
        while True:
            if self._failed.is_set() or self.cancel.is_set():
                raise _Stop
            try:
                return q.get(timeout=0.2)
            except queue.Empty:
                continue

    def _span(self, idx: np.ndarray) -> int:
        """Bytes covered by these blocks (the disk's last block may be short)."""
        if not idx.size:
            return 0
        short = self.bs - self._block_len(self.n_blocks - 1)
        return int(idx.size * self.bs - (short if idx[-1] == self.n_blocks - 1 else 0))

    def _process(self, item: _ReadBatch) -> BlockBatch | None:
        idx = item.indices
        n = idx.size
        if item.buffer is None:
            digests = self.zeros[idx]
            zero = np.ones(n, dtype=bool)
        else:
            result = blocks.scan(item.data, self.bs)
            digests, zero = result.digests, result.zero
        self.new_digests[idx] = digests
        self.zero_blocks += int(zero.sum())
        if self.plan.baseline is None:
            send = ~zero
        else:
            send = np.zeros(n, dtype=bool)
            send[blocks.diff_digests(digests, self.plan.baseline[idx])] = True
            if self.sampled.size:
                self.cbt_misses += int(np.isin(idx[send], self.sampled).sum())
        local = np.flatnonzero(send)
        buffer = item.buffer
        if not local.size:
            if buffer is not None:
                self._pool.release(buffer)
            return None
        kinds = np.where(zero[local], KIND_ZERO, KIND_FRAME if self.plan.compress else KIND_RAW)
        payloads: list[memoryview | bytes] = []
        data_local = local[~zero[local]]
        if buffer is not None and data_local.size:
            view = item.data
            if self.plan.compress:
                frames = iter(blocks.compress_blocks(view, self.bs, data_local))
        for j in local.tolist():
            if zero[j]:
                payloads.append(b"")
            elif self.plan.compress:
                payloads.append(next(frames))
            else:
                start = j * self.bs
                payloads.append(view[start : start + self._block_len(int(idx[j]))])
        self.blocks_sent += local.size
        self.changed_bytes += self._span(idx[local])
        batch = BlockBatch(
            idx[local].copy(), kinds.astype(np.uint8), digests[local].copy(), payloads
        )
        if buffer is not None:
            if self.plan.compress:
                # The frames are copies: the read buffer is free again.
                self._pool.release(buffer)
            else:
                pool = self._pool
                batch.release = lambda: pool.release(buffer)
        return batch

    # -- running -------------------------------------------------------------------------------

    def run(self) -> SourceResult:
        start = time.perf_counter()
        self.zeros = zero_digests(self.size, self.bs)
        if self.plan.baseline is None:
            # Blocks a first run never reads (holes) are zeros.
            self.new_digests = self.zeros.copy()
            self.zero_blocks = int((~data_block_mask(self.image, self.bs)).sum())
        else:
            if self.plan.baseline.shape != (self.n_blocks, blocks.DIGEST_SIZE):
                raise UsageError("the baseline digests do not fit this disk")
            self.new_digests = self.plan.baseline.copy()
        read_q: queue.Queue[object] = queue.Queue(maxsize=QUEUE_DEPTH)
        send_q: queue.Queue[object] = queue.Queue(maxsize=QUEUE_DEPTH)
        threads = [
            threading.Thread(target=self._reader, args=(read_q,), name="source-reader"),
            threading.Thread(target=self._processor, args=(read_q, send_q), name="source-process"),
        ]
        for t in threads:
            t.daemon = True
            t.start()
        try:
            while True:
                try:
                    item = self._get(send_q)
                except _Stop:
                    break
                if item is None:
                    break
                assert isinstance(item, BlockBatch)
                self.transferred += item.payload_bytes
                with self.clock.timing("network"):
                    self.target.put(item)
        except BaseException as e:
            self._fail(e)
        finally:
            if self._error is not None:
                self._failed.set()
            for t in threads:
                t.join()
        if self._error is not None and not isinstance(self._error, _Stop):
            raise self._error
        if self.cancel.is_set():
            raise CancelledError("by request")
        duration = time.perf_counter() - start
        processed = self._span(self._candidates())
        return SourceResult(
            self.new_digests,
            RunStats(
                disk_size=self.size,
                processed_bytes=processed,
                read_bytes=self.read_bytes,
                changed_bytes=self.changed_bytes,
                transferred_bytes=self.transferred,
                written_bytes=0,
                zero_blocks=self.zero_blocks,
                blocks_sent=self.blocks_sent,
                duration=duration,
                busy=dict(self.clock.busy),
                sampled_blocks=int(self.sampled.size),
                cbt_misses=self.cbt_misses,
            ),
        )


class _Stop(Exception):
    """Internal: a stage stops because another one failed or the run was cancelled."""
