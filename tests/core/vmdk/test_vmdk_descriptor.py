"""Descriptor parsing and rendering, against what qemu-img writes and reads."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from core.errors import DiskFormatError
from core.vmdk import (
    NO_PARENT_CID,
    Descriptor,
    Extent,
    flat_descriptor,
    new_cid,
    parse_descriptor,
    render_descriptor,
)


def embedded_text(path: Path) -> str:
    return path.read_bytes()[512 : 21 * 512].split(b"\0", 1)[0].decode()


def test_parses_qemu_monolithic_flat(tmp_path, qemu):
    desc = qemu.create(tmp_path / "disk.vmdk", 10 << 20, "monolithicFlat")
    d = parse_descriptor(desc.read_text(), str(desc))
    assert d.create_type == "monolithicFlat"
    assert d.extents == [Extent("RW", 20480, "FLAT", "disk-flat.vmdk", 0)]
    assert d.capacity == 10 << 20
    assert d.parent_cid == NO_PARENT_CID and d.parent_hint is None
    assert d.version == 1
    assert d.ddb["ddb.adapterType"] == "ide"
    assert f"CID={d.cid:x}" in desc.read_text()


def test_parses_qemu_sparse_embedded_and_child(tmp_path, qemu):
    base = qemu.create(tmp_path / "base.vmdk", 100 << 20)
    child = qemu.create(tmp_path / "child.vmdk", 100 << 20, backing=base)
    b = parse_descriptor(embedded_text(base), "base")
    c = parse_descriptor(embedded_text(child), "child")
    assert b.create_type == c.create_type == "monolithicSparse"
    assert b.extents == [Extent("RW", 204800, "SPARSE", "base.vmdk", 0)]
    assert c.parent_cid == b.cid and c.parent_hint == "base.vmdk"
    assert c.ddb["ddb.geometry.cylinders"] == "203"


def test_parses_split_sparse_two_extents(tmp_path, qemu):
    desc = qemu.create(tmp_path / "two.vmdk", 3 << 30, "twoGbMaxExtentSparse")
    d = parse_descriptor(desc.read_text(), str(desc))
    assert [(e.sectors, e.filename) for e in d.extents] == [
        (4194304, "two-s001.vmdk"),
        (2097152, "two-s002.vmdk"),
    ]
    assert d.capacity == 3 << 30


def sample() -> Descriptor:
    return Descriptor(
        "vmfs",
        [
            Extent("RW", 2048, "VMFS", "disk-flat.vmdk"),
            Extent("RW", 100, "ZERO", None),
            Extent("RDONLY", 4096, "FLAT", "other.bin", 77),
            Extent("RW", 4096, "SPARSE", "s.vmdk"),
        ],
        cid=0x0123ABCD,
        parent_cid=0xFEDCBA98,
        parent_hint="../parent dir/base.vmdk",
        ddb={"ddb.adapterType": "lsilogic", "ddb.uuid": "60 00 C2 9b"},
    )


def test_render_layout_is_vmwares():
    text = render_descriptor(sample())
    lines = text.splitlines()
    assert lines[:7] == [
        "# Disk DescriptorFile",
        "version=1",
        "CID=0123abcd",
        "parentCID=fedcba98",
        'createType="vmfs"',
        'parentFileNameHint="../parent dir/base.vmdk"',
        "",
    ]
    assert lines[7] == "# Extent description"
    assert lines[8:12] == [
        'RW 2048 VMFS "disk-flat.vmdk"',
        "RW 100 ZERO",
        'RDONLY 4096 FLAT "other.bin" 77',
        'RW 4096 SPARSE "s.vmdk"',
    ]
    assert lines[12:16] == ["", "# The Disk Data Base", "#DDB", ""]
    assert 'ddb.uuid = "60 00 C2 9b"' in lines
    for before, line in itertools.pairwise(lines):
        if line.startswith(("RW ", "RDONLY ")):
            assert before.strip(), "blank line right before an extent line"


def test_round_trip():
    d = sample()
    assert parse_descriptor(render_descriptor(d), "x") == d
    flat = flat_descriptor(8 << 20, "a-flat.vmdk", new_cid())
    assert parse_descriptor(render_descriptor(flat), "x") == flat


def test_both_blank_line_layouts_parse_alike():
    body = 'RW 2048 FLAT "f.bin" 0\n'
    head = '# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="x"\n'
    compact = parse_descriptor(head + "# Extent description\n" + body, "a")
    spaced = parse_descriptor(head + "\n\n" + body + "\n\n#DDB\n\n", "b")
    crlf = parse_descriptor((head + "\n" + body).replace("\n", "\r\n"), "c")
    assert compact.extents == spaced.extents == crlf.extents
    assert len(spaced.extents) == 1


def test_tolerates_vmware_extras():
    text = (
        '# Disk DescriptorFile\nversion=1\nencoding="UTF-8"\nCID=fffffffe\nparentCID=ffffffff\n'
        'isNativeSnapshot="no"\ncreateType="vmfs"\n\n# Extent description\n'
        'RW 8388608 VMFS "vm-flat.vmdk"\n\nddb.thinProvisioned = "1"\n'
        'changeTrackPath="vm-ctk.vmdk"\n'
    )
    d = parse_descriptor(text, "vm.vmdk")
    assert d.cid == 0xFFFFFFFE and d.ddb == {"ddb.thinProvisioned": "1"}
    assert d.extents == [Extent("RW", 8388608, "VMFS", "vm-flat.vmdk")]


GOOD_HEAD = '# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="x"\n'


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("\x7fELF\x02\x01\x01\x00\x00\x00\x03\x00>\x00", "binary"),
        ("KDMV\x01\x00\x00\x00\x03\xff\xfe", "line 1"),
        ('# Disk DescriptorFile\nCID=1\nRW 10 FLAT "f" 0\n', "createType"),
        ('# Disk DescriptorFile\ncreateType="x"\nRW 10 FLAT "f" 0\n', "CID"),
        (GOOD_HEAD, "no extents"),
        (GOOD_HEAD + 'RW abc FLAT "f" 0\n', "line 6"),
        (GOOD_HEAD + "RW 10 FLAT f.bin 0\n", "not an extent line"),
        (GOOD_HEAD + 'RW 10 BOGUS "f"\n', "BOGUS"),
        (GOOD_HEAD + 'XX 10 FLAT "f" 0\n', "neither key=value"),
        (GOOD_HEAD + "RW 10 FLAT\n", "needs a file name"),
        (GOOD_HEAD + 'RW 99999999999999999999 FLAT "f" 0\n', "out of range"),
        (GOOD_HEAD + 'RW 10 FLAT "f" 99999999999999999999\n', "extent offset"),
        (GOOD_HEAD.replace("CID=1", "CID=123456789") + "RW 10 ZERO\n", "CID"),
        (GOOD_HEAD.replace("CID=1", "CID=zz") + "RW 10 ZERO\n", "not a number"),
        (GOOD_HEAD + "CID=2\nRW 10 ZERO\n", "twice"),
        (GOOD_HEAD + "this is not a descriptor\n", "line 6 'this is not"),
    ],
)
def test_garbage_is_refused_naming_the_problem(text, why):
    with pytest.raises(DiskFormatError) as caught:
        parse_descriptor(text, "/d/bad.vmdk")
    message = str(caught.value)
    assert "/d/bad.vmdk" in message
    assert why in message


def test_new_cid():
    cids = {new_cid() for _ in range(2000)}
    assert NO_PARENT_CID not in cids
    assert all(0 <= cid < 1 << 32 for cid in cids)
    assert len(cids) > 1990


def test_render_refuses_what_cannot_be_written():
    with pytest.raises(ValueError):
        render_descriptor(Descriptor("x", [Extent("RW", 1, "FLAT", 'a"b')], 1))
    with pytest.raises(ValueError):
        render_descriptor(Descriptor("x", [Extent("RW", 1, "VMFS", "a", 5)], 1))


@pytest.mark.parametrize("create_type", ["monolithicFlat", "vmfs"])
def test_flat_descriptor_opens_in_qemu(tmp_path, qemu, create_type):
    capacity = 3 << 20
    d = flat_descriptor(capacity, "d-flat.vmdk", new_cid(), create_type)
    assert d.capacity == capacity
    assert d.extents[0].kind == ("VMFS" if create_type == "vmfs" else "FLAT")
    assert d.ddb["ddb.adapterType"] == "lsilogic"
    (tmp_path / "d-flat.vmdk").write_bytes(b"\x5a" * capacity)
    (tmp_path / "d.vmdk").write_text(render_descriptor(d))
    info = qemu.info(tmp_path / "d.vmdk")
    assert info["format"] == "vmdk" and info["virtual-size"] == capacity
    raw = qemu.to_raw(tmp_path / "d.vmdk", tmp_path / "d.raw")
    assert raw.read_bytes() == b"\x5a" * capacity
    with pytest.raises(ValueError):
        flat_descriptor(1000, "x", 1)
