"""The lab's change log: which areas of each simulated VM disk the lab's guest writes changed.

It sits between the lab's writers (`replicadesk lab churn`, the lab's initial disk content) and
the simulator's launcher (`core/lab/vcsim/changelog.go`), which reads it to answer
`QueryChangedDiskAreas`, appends snapshot records to it and starts new epochs. This module and
the Go file own one format; keep them in step (tests/core/lab lock it with a golden file).

Layout: ``<root>/<vm moref>/<device key>.log``, one append-only text file per VM disk. Every
record is one ASCII line, fields separated by one space, ending in a newline::

    replicadesk-cbt 1                  header, first line
    E <uuid: 32 hex> <capacity bytes>  a tracking epoch starts (new log, CBT reset, resize)
    W <seq> <offset> <length>          a guest write of <length> bytes at <offset>
    S <seq> <snapshot moref>           a snapshot was taken after write <seq> (0: before any)

Write sequence numbers start at 1 and grow by one per ``W`` record over the whole file (epochs
do not restart them). A change ID is ``"<epoch uuid as VMware prints it>/<seq>"``, e.g.
``"52 0b 6d 4c 11 2a 9e 31-7f 08 c4 d2 95 e6 3a 10/17"``: the disk as it was after write 17;
``"*"`` asks for every area ever written (the allocated areas). Writers hold an exclusive
``flock(2)`` on the file while they read it and append, so a sequence number is never handed out
twice; a trailing line without its newline is ignored by readers.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from core.errors import ChangeLogError

HEADER = "replicadesk-cbt 1"
_UUID = re.compile(r"[0-9a-f]{32}")
_CHANGE_ID = re.compile(r"((?:[0-9a-f]{2} ){7}[0-9a-f]{2}-(?:[0-9a-f]{2} ){7}[0-9a-f]{2})/(\d+)")


@dataclass(frozen=True)
class Epoch:
    """One stretch of tracking: change IDs of older epochs are no longer valid."""

    uuid: str
    capacity: int
    start: int  # the last write sequence number before the epoch began


@dataclass(frozen=True)
class Write:
    seq: int
    offset: int
    length: int


@dataclass
class DiskLog:
    """A change log as read from its file."""

    epochs: list[Epoch] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    snapshots: dict[str, int] = field(default_factory=dict)
    last: int = 0

    @property
    def epoch(self) -> Epoch | None:
        return self.epochs[-1] if self.epochs else None

    def change_id(self, seq: int | None = None) -> str:
        """The change ID of the disk after write `seq` (default: the last one) in this epoch."""
        epoch = self.epoch
        if epoch is None:
            raise ChangeLogError("(unnamed)", "no tracking epoch yet")
        return format_change_id(epoch.uuid, self.last if seq is None else seq)

    def changed_areas(self, change_id: str, upto: int | None = None) -> list[tuple[int, int]]:
        """Merged (offset, length) areas written after `change_id` up to write `upto`.

        The same answer the launcher gives, before paging: the reference the tests compare the
        simulator's QueryChangedDiskAreas with.
        """
        limit = self.last if upto is None else upto
        since = -1
        if change_id != "*":
            uuid, since = parse_change_id(change_id)
            epoch = self.epoch
            if epoch is None or uuid != epoch.uuid or not epoch.start <= since <= limit:
                raise ChangeLogError("(unnamed)", f"change ID {change_id!r} is not current")
        spans = sorted(
            (w.offset, w.offset + w.length) for w in self.writes if since < w.seq <= limit
        )
        merged: list[list[int]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return [(start, end - start) for start, end in merged]


def format_change_id(uuid: str, seq: int) -> str:
    """VMware's spelling: ``"52 0b ... 31-7f 08 ... 10/<seq>"``."""
    pairs = [uuid[i : i + 2] for i in range(0, 32, 2)]
    return f"{' '.join(pairs[:8])}-{' '.join(pairs[8:])}/{seq}"


def parse_change_id(change_id: str) -> tuple[str, int]:
    """Split a change ID into (32-hex uuid, seq); refuse anything else (``"*"`` included)."""
    m = _CHANGE_ID.fullmatch(change_id)
    if m is None:
        raise ChangeLogError("(unnamed)", f"not a change ID: {change_id!r}")
    return m.group(1).replace(" ", "").replace("-", ""), int(m.group(2))


def log_path(root: Path, vm_moref: str, device_key: int) -> Path:
    if not vm_moref or "/" in vm_moref or vm_moref.startswith("."):
        raise ChangeLogError(root, f"bad VM moref {vm_moref!r}")
    return root / vm_moref / f"{device_key}.log"


def parse(data: bytes, name: str = "(unnamed)") -> DiskLog:
    """Parse a change log's bytes; a last line without its newline is ignored."""
    log = DiskLog()
    end = data.rfind(b"\n")
    lines = data[: end + 1].decode("ascii", errors="replace").splitlines() if end >= 0 else []
    for n, line in enumerate(lines, 1):
        if n == 1:
            if line != HEADER:
                raise ChangeLogError(name, f"not a change log (first line {line!r})")
            continue
        f = line.split(" ")
        try:
            if f[0] == "E" and len(f) == 3 and _UUID.fullmatch(f[1]):
                log.epochs.append(Epoch(f[1], _nonneg(f[2]), log.last))
            elif f[0] == "W" and len(f) == 4:
                w = Write(_nonneg(f[1]), _nonneg(f[2]), _nonneg(f[3]))
                if w.seq != log.last + 1:
                    raise ValueError("sequence number out of order")
                log.writes.append(w)
                log.last = w.seq
            elif f[0] == "S" and len(f) == 3:
                seq = _nonneg(f[1])
                if seq > log.last:
                    raise ValueError("snapshot after the last write")
                log.snapshots[f[2]] = seq
            else:
                raise ValueError("unknown record")
        except ValueError as e:
            raise ChangeLogError(name, f"line {n}: {e}: {line!r}") from None
    return log


def _nonneg(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"not a number: {text!r}")
    return int(text)


class ChangeLog:
    """Writer (and reader) of the change logs under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, vm_moref: str, device_key: int) -> Path:
        return log_path(self.root, vm_moref, device_key)

    def read(self, vm_moref: str, device_key: int) -> DiskLog:
        """The log of one disk as it is now (an empty DiskLog when there is none yet)."""
        path = self.path(vm_moref, device_key)
        try:
            with open(path, "rb") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH)
                return parse(f.read(), str(path))
        except FileNotFoundError:
            return DiskLog()

    def record(
        self, vm_moref: str, device_key: int, capacity: int, writes: Iterable[tuple[int, int]]
    ) -> str:
        """Log guest writes (offset, length) to a disk of `capacity` bytes; return the new
        change ID. A new epoch starts first when the log has none or the capacity changed."""
        extents = [(int(o), int(n)) for o, n in writes]
        for offset, length in extents:
            if offset < 0 or length <= 0 or offset + length > capacity:
                raise ChangeLogError(
                    self.path(vm_moref, device_key),
                    f"write of {length} bytes at {offset} is outside the disk ({capacity} bytes)",
                )
        with self._locked(vm_moref, device_key) as (f, log):
            lines = []
            if log.epoch is None or log.epoch.capacity != capacity:
                lines.append(self._epoch_line(log, capacity))
            for offset, length in extents:
                log.last += 1
                lines.append(f"W {log.last} {offset} {length}")
            self._append(f, lines)
            return log.change_id()

    def reset(self, vm_moref: str, device_key: int, capacity: int) -> str:
        """Start a new epoch (as "reset CBT" does): every older change ID becomes invalid."""
        with self._locked(vm_moref, device_key) as (f, log):
            self._append(f, [self._epoch_line(log, capacity)])
            return log.change_id()

    @staticmethod
    def _epoch_line(log: DiskLog, capacity: int) -> str:
        uuid = "52" + secrets.token_hex(15)
        log.epochs.append(Epoch(uuid, capacity, log.last))
        return f"E {uuid} {capacity}"

    @staticmethod
    def _append(f: IO[bytes], lines: list[str]) -> None:
        if not lines:
            return
        prefix = HEADER + "\n" if f.tell() == 0 else ""
        f.write((prefix + "\n".join(lines) + "\n").encode("ascii"))
        f.flush()

    class _Lock:
        def __init__(self, path: Path) -> None:
            self.path = path
            self.file: IO[bytes] | None = None

        def __enter__(self) -> tuple[IO[bytes], DiskLog]:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            f = self.file = os.fdopen(fd, "r+b")
            fcntl.flock(fd, fcntl.LOCK_EX)
            log = parse(f.read(), str(self.path))
            f.seek(0, os.SEEK_END)
            return f, log

        def __exit__(self, *exc: object) -> None:
            if self.file is not None:
                self.file.close()  # drops the flock

    def _locked(self, vm_moref: str, device_key: int) -> ChangeLog._Lock:
        return ChangeLog._Lock(self.path(vm_moref, device_key))
