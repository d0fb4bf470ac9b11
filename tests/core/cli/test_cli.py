"""The `replicadesk` command as a user or a script runs it: real processes, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.diskgen import change_blocks
from tests.conftest import MIB, assert_identical


def rd(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["disk"],
        ["disk", "replicate"],
        ["disk", "points"],
        ["disk", "verify"],
        ["disk", "export"],
        ["mover"],
        ["mover", "serve"],
        ["mover", "certs"],
        ["demo"],
    ],
)
def test_help_everywhere(args):
    proc = rd(*args, "--help")
    assert proc.returncode == 0
    assert "usage: replicadesk" in proc.stdout


def test_replicate_points_verify_export(tmp_path, make_disk, snapshot):
    disk = make_disk(size_mib=8, seed=51)
    rep = tmp_path / "rep"
    out = json.loads(rd("disk", "replicate", str(disk), str(rep), "--json", check=True).stdout)
    assert out["full"] and out["point"]["id"] == 1
    assert {
        "processed_bytes",
        "read_bytes",
        "transferred_bytes",
        "duration",
        "rate",
        "busy_share",
        "bottleneck",
    } <= set(out["stats"])
    first = snapshot(disk, "p1")
    areas = change_blocks(disk, 0.25, seed=52)
    (tmp_path / "areas.json").write_text(json.dumps([list(a) for a in areas]))
    out = json.loads(
        rd(
            "disk",
            "replicate",
            str(disk),
            str(rep),
            "--changed-areas",
            str(tmp_path / "areas.json"),
            "--json",
            check=True,
        ).stdout
    )
    assert out["stats"]["read_bytes"] == len(areas) * MIB
    points = json.loads(rd("disk", "points", str(rep), "--json", check=True).stdout)
    assert [p["id"] for p in points] == [1, 2]
    for p in points:
        assert p["created"][:4].isdigit() and "T" in p["created"]
        assert Path(p["path"]).is_file()
    assert_identical(Path(points[0]["path"]), first)
    assert_identical(Path(points[1]["path"]), disk)
    proc = rd("disk", "verify", str(rep), "--against", str(disk), "--point", "2", check=True)
    assert "restore point 2: ok" in proc.stdout
    proc = rd("disk", "verify", str(rep), "--point", "1", "--against", str(disk))
    assert proc.returncode == 1 and "FAILED" in proc.stdout
    rd("disk", "export", str(rep), "--point", "1", str(tmp_path / "p1.raw"), check=True)
    assert (tmp_path / "p1.raw").read_bytes() == first.read_bytes()


def test_bad_input_gets_a_clear_error_and_a_non_zero_exit(tmp_path, make_disk):
    disk = make_disk(size_mib=4)
    rep = tmp_path / "rep"
    rd("disk", "replicate", str(disk), str(rep), check=True)
    before = (rep / "replica.json").read_text()

    garbage = tmp_path / "garbage.vmdk"
    garbage.write_bytes(b"\x00\x01garbage that is no descriptor\n" * 10)
    flat = tmp_path / "short-flat.vmdk"
    flat.write_bytes(bytes(MIB))
    short = tmp_path / "short.vmdk"
    short.write_text(
        "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n"
        'createType="monolithicFlat"\n# Extent description\nRW 8192 FLAT "short-flat.vmdk" 0\n'
    )
    (tmp_path / "areas.json").write_text('[[0, 1048576], "x"]')
    cases = [
        (["disk", "replicate", str(garbage), str(tmp_path / "r1")], "garbage.vmdk"),
        (["disk", "replicate", str(short), str(tmp_path / "r2")], "short-flat.vmdk"),
        (["disk", "replicate", str(disk), str(rep), "--block-size", "3M"], "block size"),
        (["disk", "replicate", str(disk), str(rep), "--keep", "29"], "1 to 28"),
        (
            [
                "disk",
                "replicate",
                str(disk),
                str(rep),
                "--changed-areas",
                str(tmp_path / "areas.json"),
            ],
            "offset, length",
        ),
        (["disk", "replicate", str(disk), str(rep), "--target", "127.0.0.1:1"], "--tls-cert"),
        (["disk", "points", str(tmp_path / "nope")], "no such replica"),
        (
            ["disk", "export", str(rep), "--point", "9", str(tmp_path / "x.raw")],
            "no restore point 9",
        ),
    ]
    for args, needle in cases:
        proc = rd(*args)
        assert proc.returncode != 0, args
        assert "error" in proc.stderr and needle in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert (rep / "replica.json").read_text() == before
    assert not (tmp_path / "r1").exists() or not any((tmp_path / "r1").iterdir())
