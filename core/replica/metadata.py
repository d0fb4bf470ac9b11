"""Replica metadata on the source side: a folder per replica, the digests of its latest point.

The source mover diffs a disk against these digests when CBT cannot say what changed. The file is
only trusted when it describes exactly the replica's latest point (same replica id, point id,
disk size and block size); `load` says precisely why it is not, so the engine can choose:
missing, corrupt or stale metadata is rebuilt from the replica by the target mover (slow path,
reported); metadata of another replica or disk is an error unless the user asks to rebuild.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from core.errors import (
    MetadataCorruptError,
    MetadataMismatchError,
    MetadataMissingError,
    MetadataStaleError,
)
from core.replica import digestfile
from core.replica.digestfile import DigestFileError, DigestSet

DIGESTS_NAME = "digests.rdd"


@dataclass(frozen=True)
class Expected:
    """What the metadata must describe: the replica's latest point, as the target reports it."""

    replica_id: uuid.UUID
    point_id: int
    disk_size: int
    block_size: int


class MetadataStore:
    """The metadata folder of one replica."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @property
    def path(self) -> Path:
        return self.folder / DIGESTS_NAME

    def load(self, expected: Expected) -> DigestSet:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError as e:
            raise MetadataMissingError(self.folder, f"{DIGESTS_NAME} does not exist") from e
        except OSError as e:
            raise MetadataCorruptError(self.folder, f"cannot read {DIGESTS_NAME}: {e}") from e
        try:
            ds = digestfile.decode(data)
        except DigestFileError as e:
            raise MetadataCorruptError(self.folder, str(e)) from e
        if ds.replica_id != expected.replica_id:
            raise MetadataMismatchError(
                self.folder,
                f"it describes replica {ds.replica_id}, the target holds replica "
                f"{expected.replica_id}",
            )
        if ds.disk_size != expected.disk_size or ds.block_size != expected.block_size:
            raise MetadataMismatchError(
                self.folder,
                f"it describes a {ds.disk_size}-byte disk in {ds.block_size}-byte blocks, the "
                f"source is {expected.disk_size} bytes in {expected.block_size}-byte blocks",
            )
        if ds.point_id != expected.point_id:
            raise MetadataStaleError(
                self.folder,
                f"it describes restore point {ds.point_id}, the replica's latest is "
                f"{expected.point_id}",
            )
        return ds

    def save(self, ds: DigestSet) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        digestfile.write(self.path, ds)
