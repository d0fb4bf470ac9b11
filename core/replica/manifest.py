"""The replica manifest (`replica.json`): which restore points of one disk exist.

A point exists if and only if the manifest lists it; files in the replica folder that it does not
name are leftovers of an interrupted run and are removed when the replica is next opened. The
manifest also records a pending merge (retention) so a merge cut short by a kill is finished by
the next run. It is always replaced atomically (core.fsutil.atomic_write).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ReplicaCorruptError
from core.fsutil import atomic_write

MANIFEST_NAME = "replica.json"
FORMAT = 1


@dataclass(frozen=True)
class PointRecord:
    """One restore point as the manifest stores it."""

    id: int
    created: str  # ISO 8601, UTC
    file: str  # the VMDK that opens this point (relative to the replica folder)
    cid: int
    kind: str  # "base" (flat descriptor over base-flat.vmdk) or "delta" (KDMV sparse)
    digests: str  # the point's digest file
    source: str = ""
    changed_bytes: int = 0


@dataclass(frozen=True)
class PendingMerge:
    """Retention in progress: point `drop` is gone, point `into` is being merged into the base."""

    drop: int
    into: int


@dataclass
class Manifest:
    replica_id: uuid.UUID
    disk_size: int
    block_size: int
    points: list[PointRecord] = field(default_factory=list)
    next_id: int = 1
    merge: PendingMerge | None = None
    source: str = ""

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "format": FORMAT,
            "replica_id": str(self.replica_id),
            "disk_size": self.disk_size,
            "block_size": self.block_size,
            "source": self.source,
            "next_id": self.next_id,
            "merge": asdict(self.merge) if self.merge else None,
            "points": [asdict(p) for p in self.points],
        }
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        try:
            data = json.loads(text)
            if data.get("format") != FORMAT:
                raise ReplicaCorruptError(where, f"manifest format {data.get('format')!r}")
            merge = data.get("merge")
            return cls(
                replica_id=uuid.UUID(data["replica_id"]),
                disk_size=int(data["disk_size"]),
                block_size=int(data["block_size"]),
                source=str(data.get("source", "")),
                next_id=int(data["next_id"]),
                merge=PendingMerge(int(merge["drop"]), int(merge["into"])) if merge else None,
                points=[PointRecord(**p) for p in data["points"]],
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ReplicaCorruptError(where, f"unreadable manifest {MANIFEST_NAME}: {e}") from e

    def save(self, folder: Path) -> None:
        atomic_write(folder / MANIFEST_NAME, self.to_json().encode())

    @classmethod
    def load(cls, folder: Path) -> Manifest | None:
        path = folder / MANIFEST_NAME
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        return cls.from_json(text, str(folder))
