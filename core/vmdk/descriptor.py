"""VMDK text descriptors: parsing and writing the few lines that say what a disk is made of.

A descriptor is the entry point of every VMware disk: a small text file (`disk.vmdk` beside
`disk-flat.vmdk`) or the text embedded at sector 1 of a hosted sparse (`KDMV`) file. It names the
extents that hold the data, in order, the disk's content ID (CID) and, for a delta, its parent's
CID and file. `core.vmdk.image` reads disks through it; the replica writer renders new ones.

Invariants owned here:
- `render_descriptor` writes VMware's own layout (CID before parentCID, a `# Extent description`
  comment line before the extents, never a blank line right before an extent line: qemu-img 7.2
  counts such an extent twice).
- `parse_descriptor` accepts both layouts and names the offending line for anything it cannot
  read; descriptors come from outside, so nothing in them is trusted (sizes are bounded).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from core.errors import DiskFormatError

SECTOR = 512
NO_PARENT_CID = 0xFFFFFFFF

#: The largest extent we accept: 2**40 sectors (512 TiB), far beyond VMware's 62 TB limit, so a
#: descriptor with an absurd size is refused at parse time instead of overflowing later.
MAX_SECTORS = 1 << 40

ACCESS_MODES = ("RW", "RDONLY", "NOACCESS")
EXTENT_KINDS = ("FLAT", "VMFS", "SPARSE", "ZERO", "VMFSSPARSE", "VMFSRDM", "VMFSRAW", "SESPARSE")

_HEADER_LINE = "# Disk DescriptorFile"
_KEY_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_.]*)\s*=\s*(.*)$")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_EXTENT_RE = re.compile(
    r"^(?P<access>[A-Z]+)\s+(?P<sectors>\S+)\s+(?P<kind>[A-Z]+)"
    r'(?:\s+"(?P<filename>[^"]*)"(?:\s+(?P<offset>\S+))?)?\s*$'
)


@dataclass(frozen=True)
class Extent:
    """One line of a descriptor's extent list: `RW 20480 FLAT "disk-flat.vmdk" 0`."""

    access: str
    sectors: int
    kind: str
    filename: str | None
    offset_sectors: int = 0


@dataclass
class Descriptor:
    """A parsed descriptor. `parent_hint` is relative to the child's folder (or absolute)."""

    create_type: str
    extents: list[Extent]
    cid: int
    parent_cid: int = NO_PARENT_CID
    parent_hint: str | None = None
    version: int = 1
    ddb: dict[str, str] = field(default_factory=dict)

    @property
    def capacity(self) -> int:
        """The disk's size in bytes: the sum of its extents."""
        return sum(extent.sectors for extent in self.extents) * SECTOR


def new_cid() -> int:
    """A random content ID; never NO_PARENT_CID, which means "no parent" in parentCID."""
    while True:
        cid = secrets.randbits(32)
        if cid != NO_PARENT_CID:
            return cid


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _parse_int(text: str, what: str, limit: int, base: int = 10) -> int:
    """An integer in [0, limit]; ValueError with a readable reason otherwise."""
    if not text or len(text) > 24:
        raise ValueError(f"{what} {text!r} is not a number")
    try:
        value = int(text, base)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number") from None
    if value < 0 or value > limit:
        raise ValueError(f"{what} {text} is out of range (0..{limit})")
    return value


def _parse_extent(line: str) -> Extent:
    match = _EXTENT_RE.match(line)
    if match is None:
        raise ValueError('not an extent line (ACCESS SECTORS TYPE "FILE" [OFFSET])')
    access = match["access"]
    kind = match["kind"]
    if access not in ACCESS_MODES:
        raise ValueError(f"unknown extent access {access!r}")
    if kind not in EXTENT_KINDS:
        raise ValueError(f"unknown extent type {kind!r}")
    sectors = _parse_int(match["sectors"], "extent size", MAX_SECTORS)
    filename = match["filename"]
    offset_text = match["offset"]
    if kind == "ZERO":
        if filename is not None:
            raise ValueError("a ZERO extent names no file")
    elif not filename:
        raise ValueError(f"a {kind} extent needs a file name")
    offset = 0 if offset_text is None else _parse_int(offset_text, "extent offset", MAX_SECTORS)
    return Extent(access, sectors, kind, filename, offset)


def parse_descriptor(text: str, origin: str) -> Descriptor:
    """Parse descriptor text; `origin` (the file it came from) is named in every error."""
    nul = text.find("\x00")
    if nul >= 0:
        number = text.count("\n", 0, nul) + 1
        raise DiskFormatError(
            origin, f"line {number}: binary data (NUL bytes), not descriptor text"
        )
    create_type: str | None = None
    cid: int | None = None
    parent_cid = NO_PARENT_CID
    parent_hint: str | None = None
    version = 1
    extents: list[Extent] = []
    ddb: dict[str, str] = {}
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"line {number} {line[:80]!r}"
        if _CONTROL_RE.search(line):
            raise DiskFormatError(origin, f"{where}: control characters (binary data?)")
        try:
            if line.split(None, 1)[0] in ACCESS_MODES:
                extents.append(_parse_extent(line))
                continue
            key_match = _KEY_RE.match(line)
            if key_match is None:
                raise ValueError("neither key=value, an extent nor a comment")
            key, value = key_match[1], _unquote(key_match[2])
            if key.startswith("ddb."):
                ddb[key] = value
                continue
            if key in seen and key in ("CID", "parentCID", "createType", "version"):
                raise ValueError(f"{key} given twice")
            seen.add(key)
            if key == "CID":
                cid = _parse_int(value, "CID", 0xFFFFFFFF, 16)
            elif key == "parentCID":
                parent_cid = _parse_int(value, "parentCID", 0xFFFFFFFF, 16)
            elif key == "createType":
                if not value:
                    raise ValueError("empty createType")
                create_type = value
            elif key == "parentFileNameHint":
                parent_hint = value or None
            elif key == "version":
                version = _parse_int(value, "version", 1000)
            # Other keys (encoding, isNativeSnapshot, changeTrackPath...) do not change the data.
        except ValueError as error:
            raise DiskFormatError(origin, f"{where}: {error}") from None
    if create_type is None:
        raise DiskFormatError(origin, "descriptor has no createType line")
    if cid is None:
        raise DiskFormatError(origin, "descriptor has no CID line")
    if not extents:
        raise DiskFormatError(origin, "descriptor lists no extents")
    if sum(extent.sectors for extent in extents) > MAX_SECTORS:
        raise DiskFormatError(origin, "the extents add up to an implausible size")
    return Descriptor(create_type, extents, cid, parent_cid, parent_hint, version, ddb)


def _quote(value: str, what: str) -> str:
    if '"' in value or "\n" in value or "\r" in value or "\x00" in value:
        raise ValueError(f"{what} {value!r} cannot be written into a descriptor")
    return f'"{value}"'


def _render_extent(extent: Extent) -> str:
    if extent.access not in ACCESS_MODES or extent.kind not in EXTENT_KINDS:
        raise ValueError(f"cannot render extent {extent!r}")
    line = f"{extent.access} {extent.sectors} {extent.kind}"
    if extent.kind == "ZERO":
        return line
    if extent.filename is None:
        raise ValueError(f"a {extent.kind} extent needs a file name")
    line += " " + _quote(extent.filename, "extent file name")
    if extent.kind == "FLAT":
        line += f" {extent.offset_sectors}"
    elif extent.offset_sectors:
        # qemu (like VMware) refuses an offset on anything but a FLAT extent.
        raise ValueError(f"a {extent.kind} extent cannot start at an offset")
    return line


def render_descriptor(d: Descriptor) -> str:
    """Descriptor text in VMware's own layout (see the module docstring)."""
    lines = [
        _HEADER_LINE,
        f"version={d.version}",
        f"CID={d.cid:08x}",
        f"parentCID={d.parent_cid:08x}",
        f"createType={_quote(d.create_type, 'createType')}",
    ]
    if d.parent_hint is not None:
        lines.append(f"parentFileNameHint={_quote(d.parent_hint, 'parentFileNameHint')}")
    lines += ["", "# Extent description"]
    lines += [_render_extent(extent) for extent in d.extents]
    lines += ["", "# The Disk Data Base", "#DDB", ""]
    for key, value in d.ddb.items():
        if not key.startswith("ddb.") or not _KEY_RE.match(f"{key}=x"):
            raise ValueError(f"bad disk database key {key!r}")
        lines.append(f"{key} = {_quote(value, key)}")
    return "\n".join(lines) + "\n"


def flat_descriptor(
    capacity: int, extent_file: str, cid: int, create_type: str = "monolithicFlat"
) -> Descriptor:
    """A base disk of one flat extent: FLAT for hosted `monolithicFlat`, VMFS for ESXi `vmfs`."""
    if capacity <= 0 or capacity % SECTOR:
        raise ValueError(f"capacity {capacity} is not a positive multiple of {SECTOR}")
    sectors = capacity // SECTOR
    kind = "VMFS" if create_type == "vmfs" else "FLAT"
    # The geometry VMware gives SCSI disks: 255 heads, 63 sectors per track.
    cylinders = max(1, min(sectors // (255 * 63), 65535))
    ddb = {
        "ddb.adapterType": "lsilogic",
        "ddb.geometry.cylinders": str(cylinders),
        "ddb.geometry.heads": "255",
        "ddb.geometry.sectors": "63",
        "ddb.virtualHWVersion": "4",
    }
    return Descriptor(create_type, [Extent("RW", sectors, kind, extent_file, 0)], cid, ddb=ddb)
