"""Upkeep of a replica between runs: retention, undoing a run's point, seeding a new chain.

The job runner replicates every disk of a VM with retention held back, and only when all of them
committed does it apply the job's retention to each disk (`retain`); when one disk fails it
takes back the points the VM's other disks committed in that run (`drop`), so a VM's restore
points stay whole across its disks. The mover service runs the same operations for replicas on
its side (the MAINTAIN message of `core.mover.protocol`). `seed` makes a disk already at the
target the chain's first point (core.replica.seed: replica mapping); the mover service only
accepts a disk inside its root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import ProtocolError
from core.replica.chain import MAX_POINTS, ReplicaChain
from core.replica.seed import seed_chain


def retain(folder: Path, keep: int) -> list[int]:
    """Merge the oldest points until `keep` remain; the ids merged away."""
    with ReplicaChain.open_existing(folder) as chain:
        return chain.apply_retention(keep)


def drop(folder: Path, point_id: int) -> None:
    """Take back the newest point, which must be `point_id`."""
    with ReplicaChain.open_existing(folder) as chain:
        chain.drop_latest(point_id)


def maintain(folder: Path, request: dict[str, Any]) -> dict[str, Any]:
    """Run one upkeep request {op: retain, keep}, {op: drop, point} or
    {op: seed, disk, block_size}; the answer to send."""
    op = request.get("op")
    try:
        if op == "retain":
            keep = int(request["keep"])
            if not 1 <= keep <= MAX_POINTS:
                raise ProtocolError(f"restore points to keep must be 1 to {MAX_POINTS}, not {keep}")
            return {"merged": retain(folder, keep)}
        if op == "drop":
            drop(folder, int(request["point"]))
            return {}
        if op == "seed":
            point = seed_chain(folder, Path(str(request["disk"])), int(request["block_size"]))
            return {"point": point.id, "written": point.changed_bytes}
    except (KeyError, TypeError, ValueError) as e:
        raise ProtocolError(f"upkeep request {request!r} is missing or has a bad field: {e}") from e
    raise ProtocolError(f"unknown upkeep operation {op!r}")
