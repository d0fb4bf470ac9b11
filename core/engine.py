"""One replication run of one disk, start to end: the entry point the CLI (and later the job
runner and the console) call.

    source disk --SourceMover--> TargetEndpoint (LocalTarget onsite, RemoteTarget offsite)
         ^                               |
    replica metadata (source side) <-----+ commit: new restore point, retention

The metadata is read before the run and written only after the target committed the point, so a
failed or cancelled run leaves metadata, replica and every restore point as they were.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.errors import (
    MetadataCorruptError,
    MetadataMismatchError,
    MetadataMissingError,
    MetadataStaleError,
    UsageError,
)
from core.mover.source import SourceMover, SourcePlan
from core.mover.stats import RunStats, StageClock
from core.mover.target import (
    CommitResult,
    LocalTarget,
    OpenRequest,
    TargetEndpoint,
    digest_array_checksum,
)
from core.mover.tls import TlsFiles
from core.replica.chain import MAX_POINTS
from core.replica.digestfile import DigestSet
from core.replica.metadata import Expected, MetadataStore
from core.vmdk.image import DiskImage, open_disk

BLOCK_SIZES = {"256K": 256 << 10, "512K": 512 << 10, "1M": 1 << 20, "4M": 4 << 20}
DEFAULT_BLOCK_SIZE = 1 << 20
DEFAULT_KEEP = 7

ProgressFn = Callable[[str, int, int], None]  # (phase, done_bytes, total_bytes)


@dataclass(frozen=True)
class RemoteSpec:
    host: str
    port: int
    tls: TlsFiles
    server_name: str | None = None


@dataclass(frozen=True)
class ReplicationRequest:
    """`source` is the disk file opened with `source_format`, and how the target describes the
    replica's origin; `image`, when given, is an already opened source disk (e.g. one read over
    the datastore HTTP interface, core.jobs.httpdisk) read instead: the caller closes it."""

    source: Path | str
    replica: str  # a folder onsite; a name under the mover's root offsite
    metadata_dir: Path
    keep: int = DEFAULT_KEEP
    block_size: int = DEFAULT_BLOCK_SIZE
    changed_areas: Sequence[tuple[int, int]] | None = None
    target: RemoteSpec | None = None
    compress: bool | None = None  # default: on offsite, off onsite
    rebuild_metadata: bool = False
    source_format: str = "auto"
    cbt_verify_sample: int = 0  # with changed areas: blocks outside them read to check CBT
    image: DiskImage | None = None

    def validate(self) -> None:
        if not 1 <= self.keep <= MAX_POINTS:
            raise UsageError(f"restore points to keep must be 1 to {MAX_POINTS}, not {self.keep}")
        if self.block_size not in BLOCK_SIZES.values():
            raise UsageError(f"block size {self.block_size} is not one of {', '.join(BLOCK_SIZES)}")


@dataclass(frozen=True)
class ReplicationResult:
    point: CommitResult
    full: bool
    metadata_rebuilt: bool
    stats: RunStats
    warnings: list[str] = field(default_factory=list)


def parse_block_size(text: str) -> int:
    key = text.strip().upper().removesuffix("B").removesuffix("I")
    if key in BLOCK_SIZES:
        return BLOCK_SIZES[key]
    raise UsageError(f"block size {text!r} is not one of {', '.join(BLOCK_SIZES)}")


def _counter(phase: str, total: int, progress: ProgressFn | None) -> Callable[[int], None]:
    """Turn per-chunk byte counts into (phase, done, total) reports."""
    done = 0

    def report(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(phase, done, total)

    return report


def make_target(request: ReplicationRequest, clock: StageClock) -> TargetEndpoint:
    if request.target is None:
        return LocalTarget(Path(request.replica), clock)
    spec = request.target
    # Imported on use: ssl and sockets cost start-up time that onsite runs do not need.
    from core.mover.remote import RemoteTarget

    return RemoteTarget(
        spec.host, spec.port, spec.tls, request.replica, clock, server_name=spec.server_name
    )


def replicate_disk(
    request: ReplicationRequest,
    *,
    cancel: threading.Event | None = None,
    progress: ProgressFn | None = None,
) -> ReplicationResult:
    request.validate()
    started = time.perf_counter()
    cancel = cancel or threading.Event()
    clock = StageClock()
    warnings: list[str] = []
    with contextlib.ExitStack() as opened:
        if request.image is not None:
            image = request.image
        else:
            image = opened.enter_context(open_disk(request.source, request.source_format))
        target = make_target(request, clock)
        try:
            state = target.open(
                OpenRequest(image.size, request.block_size, request.keep, str(request.source))
            )
            store = MetadataStore(request.metadata_dir)
            baseline: DigestSet | None = None
            rebuilt = False
            if state.latest_point is not None:
                expected = Expected(
                    state.replica_id, state.latest_point, image.size, request.block_size
                )
                try:
                    baseline = store.load(expected)
                except (MetadataMissingError, MetadataCorruptError, MetadataStaleError) as e:
                    warnings.append(f"{e}; rebuilding digests from the replica (slow path)")
                except MetadataMismatchError as e:
                    if not request.rebuild_metadata:
                        raise
                    warnings.append(f"{e}; rebuilding digests from the replica as asked")
                if baseline is None:
                    rebuilt = True
                    baseline = target.rebuild_digests(_counter("rebuild", image.size, progress))
            elif request.changed_areas is not None:
                warnings.append("first run: the whole disk is copied, changed areas are ignored")
            compress = request.compress
            if compress is None:
                compress = request.target is not None
            plan = SourcePlan(
                request.block_size,
                baseline.digests if baseline is not None else None,
                request.changed_areas,
                compress,
                verify_sample=request.cbt_verify_sample,
            )
            mover = SourceMover(
                image,
                plan,
                target,
                clock=clock,
                cancel=cancel,
                progress=_counter("copy", image.size, progress),
            )
            result = mover.run()
            committed = target.commit(digest_array_checksum(result.digests))
            store.save(
                DigestSet(
                    request.block_size,
                    image.size,
                    committed.point_id,
                    state.replica_id,
                    result.digests,
                )
            )
        except BaseException:
            target.abort()
            raise
        finally:
            target.close()
    # Onsite both movers share one clock; offsite the service reports its own stages.
    busy = dict(clock.busy)
    if request.target is not None:
        busy["target"] = committed.busy.get("target", 0.0)
        busy["proxy"] = max(busy["proxy"], committed.busy.get("proxy", 0.0))
    stats = replace(
        result.stats,
        written_bytes=committed.written_bytes,
        busy=busy,
        duration=time.perf_counter() - started,
    )
    return ReplicationResult(committed, state.latest_point is None, rebuilt, stats, warnings)


def maintain_replica(
    replica: str, target: RemoteSpec | None, request: dict[str, Any]
) -> dict[str, Any]:
    """Retention or undo on a replica, here or on the mover service that keeps it."""
    if target is None:
        from core.replica.maintenance import maintain

        return maintain(Path(replica), request)
    from core.mover.remote import RemoteTarget

    remote = RemoteTarget(
        target.host, target.port, target.tls, replica, server_name=target.server_name
    )
    return remote.maintain(request)
