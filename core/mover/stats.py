"""Run statistics: bytes through each stage and how busy each stage was.

The bottleneck is the stage with the largest busy share (busy time / run duration), in the
words Veeam users know: Source (reading the disk), Proxy (digest, compression, decompression and
verification), Network (sending and receiving), Target (writing the replica).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

STAGES = ("source", "proxy", "network", "target")


@dataclass
class StageClock:
    """Accumulates busy seconds per stage; safe to use from several threads."""

    busy: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self.busy[stage] += elapsed

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.busy[stage] += seconds


@dataclass(frozen=True)
class RunStats:
    """What one disk's run did."""

    disk_size: int
    processed_bytes: int  # the part of the disk the run looked at (whole disk, or changed areas)
    read_bytes: int  # bytes read from the source disk
    changed_bytes: int  # bytes of blocks that differed and went to the target (data or zeros)
    transferred_bytes: int  # bytes handed to the target (after compression; on the wire offsite)
    written_bytes: int  # data bytes the target wrote
    zero_blocks: int
    blocks_sent: int
    duration: float
    busy: dict[str, float]
    sampled_blocks: int = 0  # blocks outside the changed areas read to check CBT
    cbt_misses: int = 0  # of those, blocks that had changed after all (and were sent)

    @property
    def rate(self) -> float:
        """Processing rate in bytes per second (processed / duration)."""
        return self.processed_bytes / self.duration if self.duration > 0 else 0.0

    @property
    def busy_share(self) -> dict[str, float]:
        if self.duration <= 0:
            return dict.fromkeys(STAGES, 0.0)
        return {k: min(1.0, v / self.duration) for k, v in self.busy.items()}

    @property
    def bottleneck(self) -> str:
        share = self.busy_share
        return max(STAGES, key=lambda s: share[s]).capitalize()

    def to_dict(self) -> dict[str, object]:
        return {
            "disk_size": self.disk_size,
            "processed_bytes": self.processed_bytes,
            "read_bytes": self.read_bytes,
            "changed_bytes": self.changed_bytes,
            "transferred_bytes": self.transferred_bytes,
            "written_bytes": self.written_bytes,
            "zero_blocks": self.zero_blocks,
            "blocks_sent": self.blocks_sent,
            "duration": round(self.duration, 6),
            "rate": round(self.rate, 1),
            "busy_share": {k: round(v, 3) for k, v in self.busy_share.items()},
            "bottleneck": self.bottleneck,
        }
