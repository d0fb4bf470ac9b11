"""The target data mover: receives batches, decompresses, checks every block's digest, writes.

`TargetEndpoint` is what the source side talks to. `LocalTarget` is the real thing, in this
process: used directly for onsite runs (both movers in one process, no network) and by the mover
service (core.mover.service) for each offsite connection. `core.mover.remote.RemoteTarget` speaks
the same interface over TLS.

A restore point is committed only when every block arrived and verified and the source's digest
array checksum equals the one the target computed; anything else aborts the point, leaving every
earlier point as it was.
"""

from __future__ import annotations

import hashlib
import mmap
import queue
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core import blocks
from core.errors import (
    BlockIntegrityError,
    CancelledError,
    ProtocolError,
    ReplicaCorruptError,
    ReplicaDeskError,
)
from core.fsutil import aligned_buffer
from core.mover.batch import KIND_FRAME, KIND_RAW, KIND_ZERO, BlockBatch
from core.mover.stats import StageClock
from core.replica.chain import PointWriter, ReplicaChain
from core.replica.digestfile import DigestSet, zero_digests

QUEUE_DEPTH = 4
_SENTINEL = None
_REBUILD_CHUNK = 32 << 20

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class OpenRequest:
    disk_size: int
    block_size: int
    keep: int
    source: str = ""


@dataclass(frozen=True)
class ReplicaState:
    replica_id: uuid.UUID
    latest_point: int | None
    point_count: int


@dataclass(frozen=True)
class CommitResult:
    point_id: int
    created: str
    path: str
    kind: str
    merged: list[int]
    written_bytes: int
    busy: dict[str, float] = field(default_factory=dict)


def digest_array_checksum(digests: np.ndarray) -> str:
    """What both movers compare before a point is committed."""
    return hashlib.blake2b(np.ascontiguousarray(digests).tobytes(), digest_size=16).hexdigest()


class TargetEndpoint(ABC):
    """The target mover as the source side sees it, local or remote."""

    @abstractmethod
    def open(self, request: OpenRequest) -> ReplicaState:
        """Open (or create) the replica for a new point."""

    @abstractmethod
    def rebuild_digests(self, progress: ProgressFn | None = None) -> DigestSet:
        """Slow path: digests of the latest point, recomputed from the replica's data."""

    @abstractmethod
    def put(self, batch: BlockBatch) -> None:
        """Hand over a batch; blocks while the target's queue is full."""

    @abstractmethod
    def commit(self, checksum: str) -> CommitResult:
        """Wait for every batch, verify the digest array, commit the point and apply retention."""

    @abstractmethod
    def abort(self) -> None:
        """Discard the point in progress (safe to call at any time, and more than once)."""

    @abstractmethod
    def close(self) -> None:
        """Release the replica (and the connection)."""

    @property
    @abstractmethod
    def description(self) -> str:
        """Where the replica lives, for messages."""


class LocalTarget(TargetEndpoint):
    """The target mover working on a replica folder of this machine."""

    def __init__(self, folder: Path, clock: StageClock | None = None) -> None:
        self.folder = Path(folder)
        self.clock = clock or StageClock()
        self._chain: ReplicaChain | None = None
        self._writer: PointWriter | None = None
        self._keep = 1
        self._digests: np.ndarray | None = None
        self._queue: queue.Queue[BlockBatch | None] = queue.Queue(maxsize=QUEUE_DEPTH)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._cancel = threading.Event()
        self._source = ""
        self._scratch: mmap.mmap | None = None

    @property
    def description(self) -> str:
        return str(self.folder)

    # -- opening -------------------------------------------------------------------------------

    def open(self, request: OpenRequest) -> ReplicaState:
        chain = ReplicaChain.open_for_write(
            self.folder,
            disk_size=request.disk_size,
            block_size=request.block_size,
            source=request.source,
        )
        self._chain = chain
        try:
            chain.check_latest()
            self._keep = request.keep
            self._source = request.source
            latest = chain.latest
            if latest is None:
                self._digests = zero_digests(request.disk_size, request.block_size)
            else:
                self._digests = chain.point_digests(latest.id).digests.copy()
        except BaseException:
            self.close()
            raise
        return ReplicaState(
            chain.replica_id, latest.id if latest else None, len(chain.manifest.points)
        )

    def _require_chain(self) -> ReplicaChain:
        if self._chain is None:
            raise ProtocolError("the replica is not open")
        return self._chain

    def rebuild_digests(self, progress: ProgressFn | None = None) -> DigestSet:
        chain = self._require_chain()
        latest = chain.latest
        if latest is None:
            raise ProtocolError("the replica has no restore point to rebuild digests from")
        bs = chain.manifest.block_size
        size = chain.manifest.disk_size
        out = np.empty((blocks.block_count(size, bs), blocks.DIGEST_SIZE), dtype=np.uint8)
        chunk = max(bs, (_REBUILD_CHUNK // bs) * bs)
        buf = bytearray(chunk)
        with chain.open_point(latest.id) as image:
            pos = 0
            while pos < size:
                if self._cancel.is_set():
                    raise CancelledError("while rebuilding digests")
                n = min(chunk, size - pos)
                view = memoryview(buf)[:n]
                with self.clock.timing("target"):
                    image.readinto(pos, view)
                with self.clock.timing("proxy"):
                    d = blocks.scan(view, bs).digests
                out[pos // bs : pos // bs + d.shape[0]] = d
                pos += n
                if progress:
                    progress(n)
        recorded = chain.point_digests(latest.id).digests
        bad = blocks.diff_digests(out, recorded)
        if bad.size:
            raise ReplicaCorruptError(
                chain.folder,
                f"restore point {latest.id} does not match its recorded digests at block "
                f"{int(bad[0])} (offset {int(bad[0]) * bs}); {bad.size} block(s) differ",
            )
        return DigestSet(bs, size, latest.id, chain.replica_id, out)

    # -- receiving -----------------------------------------------------------------------------

    def _start(self) -> None:
        chain = self._require_chain()
        self._writer = chain.begin_point()
        self._thread = threading.Thread(target=self._work, name="target-writer", daemon=True)
        self._thread.start()

    def put(self, batch: BlockBatch) -> None:
        if self._thread is None:
            self._start()
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(batch, timeout=0.2)
                return
            except queue.Full:
                continue

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _SENTINEL:
                return
            try:
                if self._error is None and not self._cancel.is_set():
                    self._apply(item)
            except BaseException as e:  # handed to the producer by put()/commit()
                self._error = e
            finally:
                item.done()

    def _apply(self, batch: BlockBatch) -> None:
        chain = self._require_chain()
        writer = self._writer
        digests = self._digests
        assert writer is not None and digests is not None
        bs = chain.manifest.block_size
        size = chain.manifest.disk_size
        n_blocks = digests.shape[0]
        idx = batch.indices
        if idx.size and (idx.min() < 0 or idx.max() >= n_blocks):
            raise ProtocolError(f"block index out of range (disk has {n_blocks} blocks)")
        with self.clock.timing("proxy"):
            data = self._verified_payloads(batch, bs, size)
        with self.clock.timing("target"):
            for j, index in enumerate(idx.tolist()):
                offset = index * bs
                length = min(bs, size - offset)
                payload = data[j]
                if payload is None:
                    writer.write_zero(offset, length)
                else:
                    writer.write(offset, payload)
        digests[idx] = batch.digests

    def _verified_payloads(
        self, batch: BlockBatch, bs: int, size: int
    ) -> list[memoryview | bytes | None]:
        """Decompress and check each block against the digest the source sent."""
        n = len(batch)
        out: list[memoryview | bytes | None] = [None] * n
        frames = [j for j in range(n) if batch.kinds[j] == KIND_FRAME]
        if frames:
            # One reused buffer: the blocks decoded into it are written before the next batch.
            need = len(frames) * bs
            if self._scratch is None or len(self._scratch) < need:
                self._scratch = aligned_buffer(need)
            scratch = self._scratch
            lengths = blocks.decompress_into([batch.payloads[j] for j in frames], scratch, bs)
            view = memoryview(scratch)
            for slot, j in enumerate(frames):
                out[j] = view[slot * bs : slot * bs + int(lengths[slot])]
        for j in range(n):
            kind = int(batch.kinds[j])
            index = int(batch.indices[j])
            expected_len = min(bs, size - index * bs)
            if kind == KIND_RAW:
                out[j] = batch.payloads[j]
            elif kind == KIND_ZERO:
                if bytes(batch.digests[j]) != blocks.zero_digest(expected_len):
                    raise BlockIntegrityError(index, index * bs)
                continue
            elif kind != KIND_FRAME:
                raise ProtocolError(f"unknown block kind {kind}")
            payload = out[j]
            assert payload is not None
            if len(payload) != expected_len:
                raise ProtocolError(
                    f"block {index} carries {len(payload)} bytes, expected {expected_len}"
                )
            got = blocks.digest_blocks(payload, expected_len)
            if not np.array_equal(got[0], batch.digests[j]):
                raise BlockIntegrityError(index, index * bs)
        return out

    def _drain(self) -> None:
        if self._thread is not None:
            self._queue.put(_SENTINEL)
            self._thread.join()
            self._thread = None

    def commit(self, checksum: str) -> CommitResult:
        chain = self._require_chain()
        if self._thread is None:
            self._start()
        self._drain()
        if self._error is not None:
            self.abort()
            raise self._error
        writer = self._writer
        assert writer is not None and self._digests is not None
        mine = digest_array_checksum(self._digests)
        if mine != checksum:
            self.abort()
            raise ProtocolError(
                "the source and the target disagree on the disk's digests; the restore point "
                "was not committed"
            )
        try:
            with self.clock.timing("target"):
                point = writer.commit(self._digests, self._source)
                merged = chain.apply_retention(self._keep)
        except ReplicaDeskError:
            self.abort()
            raise
        self._writer = None
        return CommitResult(
            point_id=point.id,
            created=point.created,
            path=str(point.path),
            kind=point.kind,
            merged=merged,
            written_bytes=writer.bytes_written,
            busy=dict(self.clock.busy),
        )

    def abort(self) -> None:
        self._cancel.set()
        self._drain()
        if self._writer is not None:
            self._writer.abort()
            self._writer = None

    def close(self) -> None:
        self.abort()
        if self._chain is not None:
            self._chain.close()
            self._chain = None
