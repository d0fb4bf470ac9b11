"""qemu-img and qemu-io as the independent judge of the VMDK files core.vmdk reads and writes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.vmdk import DiskImage


class Qemu:
    """Thin wrappers over the real qemu-img/qemu-io binaries; every failure shows their stderr."""

    @staticmethod
    def run(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(arg) for arg in args], capture_output=True, text=True, timeout=60
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(map(str, args))} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def create(
        self,
        path: Path,
        size: int,
        subformat: str = "monolithicSparse",
        backing: Path | None = None,
    ) -> Path:
        args: list[str | Path] = ["qemu-img", "create", "-q", "-f", "vmdk"]
        args += ["-o", f"subformat={subformat}"]
        if backing is not None:
            args += ["-b", backing.name, "-F", "vmdk"]
        self.run(*args, path, str(size))
        return path

    def io(self, path: Path, *commands: str) -> None:
        args: list[str | Path] = ["qemu-io", "-f", "vmdk"]
        for command in commands:
            args += ["-c", command]
        proc = self.run(*args, path)
        assert "error" not in proc.stdout.lower() + proc.stderr.lower(), proc.stdout + proc.stderr

    def to_raw(self, path: Path, out: Path) -> Path:
        self.run("qemu-img", "convert", "-f", "vmdk", "-O", "raw", path, out)
        return out

    def info(self, path: Path, chain: bool = False) -> Any:
        args = ["qemu-img", "info", "--output=json"] + (["--backing-chain"] if chain else [])
        return json.loads(self.run(*args, path).stdout)

    def check(self, path: Path) -> Any:
        proc = self.run("qemu-img", "check", "--output=json", "-f", "vmdk", path, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(proc.stdout)

    def same(self, image: Path, raw: Path) -> bool:
        """`qemu-img compare` of a VMDK (chain) with a raw image: True when identical."""
        proc = self.run("qemu-img", "compare", "-f", "vmdk", "-F", "raw", image, raw, check=False)
        assert proc.returncode in (0, 1), proc.stdout + proc.stderr
        return proc.returncode == 0


@pytest.fixture(scope="session")
def qemu() -> Qemu:
    return Qemu()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


def assert_reads_like(disk: DiskImage, expected: bytes) -> None:
    """`disk` reads exactly `expected` (whole and in odd-sized pieces), and its data_ranges are
    sorted, merged and cover every non-zero byte."""
    assert disk.size == len(expected)
    assert disk.read(0, disk.size) == expected
    step = 3 * 65536 + 4096 + 7
    for offset in range(0, disk.size, step):
        length = min(step, disk.size - offset)
        buf = bytearray(length)
        disk.readinto(offset, memoryview(buf))
        assert buf == expected[offset : offset + length], offset
    covered = np.zeros(len(expected), dtype=bool)
    last_end = -1
    for offset, length in disk.data_ranges():
        assert length > 0 and offset > last_end, (offset, length, last_end)
        covered[offset : offset + length] = True
        last_end = offset + length
    assert last_end <= disk.size
    nonzero = np.frombuffer(expected, dtype=np.uint8) != 0
    uncovered = np.flatnonzero(nonzero & ~covered)
    assert uncovered.size == 0, f"non-zero byte at {uncovered[0]} outside data_ranges"


@pytest.fixture
def reads_like() -> Any:
    return assert_reads_like
