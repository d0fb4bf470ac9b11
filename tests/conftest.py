"""Fixtures shared by the whole suite: generated disks, qemu-img checks, a real mover service.

Everything is made under pytest's tmp_path and torn down by the fixture that made it: mover
processes are terminated, tmpfs mounts unmounted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.diskgen import ImageMix, write_image
from core.mover.certs import create_certificates
from core.mover.process import MoverServiceProcess
from core.mover.tls import TlsFiles

MIB = 1 << 20


def qemu_compare(vmdk: Path, raw: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["qemu-img", "compare", "-f", "vmdk", "-F", "raw", str(vmdk), str(raw)],
        capture_output=True,
        text=True,
    )


def assert_identical(vmdk: Path, raw: Path) -> None:
    proc = qemu_compare(vmdk, raw)
    assert proc.returncode == 0, f"{vmdk} differs from {raw}: {proc.stdout}{proc.stderr}"


def qemu_check(vmdk: Path) -> None:
    proc = subprocess.run(["qemu-img", "check", str(vmdk)], capture_output=True, text=True)
    assert proc.returncode == 0, f"qemu-img check {vmdk}: {proc.stdout}{proc.stderr}"


@pytest.fixture
def make_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """make_disk(name, size_mib, seed) -> Path of a realistic raw image."""

    def make(
        name: str = "disk.img", size_mib: int = 16, seed: int = 1, mix: ImageMix | None = None
    ) -> Path:
        path = tmp_path / name
        write_image(path, size_mib * MIB, mix=mix or ImageMix(), seed=seed)
        return path

    return make


@pytest.fixture
def snapshot(tmp_path: Path):  # type: ignore[no-untyped-def]
    """snapshot(disk, label) -> a copy of the disk as it is now (to compare a point with)."""
    folder = tmp_path / "states"
    folder.mkdir()

    def take(disk: Path, label: str) -> Path:
        dst = folder / f"{label}.img"
        shutil.copyfile(disk, dst)
        return dst

    return take


@dataclass(frozen=True)
class Certs:
    server: TlsFiles
    client: TlsFiles
    folder: Path


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    folder = tmp_path_factory.mktemp("certs")
    paths = create_certificates(folder, ["localhost", "127.0.0.1"])
    return Certs(
        TlsFiles(paths["server"], paths["server_key"], paths["ca"]),
        TlsFiles(paths["client"], paths["client_key"], paths["ca"]),
        folder,
    )


@pytest.fixture
def mover(tmp_path: Path, certs: Certs) -> Iterator[MoverServiceProcess]:
    """A real `replicadesk mover serve` in its own process, on loopback."""
    with MoverServiceProcess(tmp_path / "dr-site", certs.server) as m:
        yield m


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs: a target file system that fills up."""
    if os.geteuid() != 0:
        pytest.fail("the full-file-system test mounts a tmpfs and must run as root (as CI does)")
    mnt = tmp_path / "small-fs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
