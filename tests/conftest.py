"""Fixtures shared by the whole suite: generated disks, qemu-img checks, a real mover service.

Everything is made under pytest's tmp_path and torn down by the fixture that made it: mover
processes are terminated, tmpfs mounts unmounted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.diskgen import ImageMix, write_image
from core.mover.certs import create_certificates
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


class MoverProcess:
    """A real `replicadesk mover serve` in its own process."""

    def __init__(self, root: Path, certs: Certs) -> None:
        self.root = root
        self.certs = certs
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.log = root.parent / f"{root.name}-mover.log"

    def start(self, port: int = 0) -> None:
        s = self.certs.server
        self._logf = open(self.log, "a")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "core",
                "-v",
                "mover",
                "serve",
                "--listen",
                f"127.0.0.1:{port}",
                "--root",
                str(self.root),
                "--tls-cert",
                str(s.cert),
                "--tls-key",
                str(s.key),
                "--tls-ca",
                str(s.ca),
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=self._logf,
            text=True,
        )
        assert self.proc.stdout is not None
        text = ""
        while not text.rstrip().endswith("}"):
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"mover did not start: {self.log.read_text()}")
            text += line
        self.port = int(json.loads(text)["port"])

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
            self._logf.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None
            self._logf.close()


@pytest.fixture
def mover(tmp_path: Path, certs: Certs) -> Iterator[MoverProcess]:
    m = MoverProcess(tmp_path / "dr-site", certs)
    m.start()
    yield m
    m.stop()


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
