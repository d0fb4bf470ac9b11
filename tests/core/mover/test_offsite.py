"""Offsite runs against a real `replicadesk mover serve` process over mutual TLS."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from core import blocks
from core.diskgen import change_blocks
from core.engine import RemoteSpec, ReplicationRequest, replicate_disk
from core.errors import AuthenticationError, MoverConnectionError, RemoteError
from core.mover.batch import KIND_FRAME, BlockBatch
from core.mover.certs import create_certificates
from core.mover.remote import RemoteTarget
from core.mover.target import OpenRequest
from core.mover.tls import TlsFiles
from core.replica.chain import ReplicaChain
from core.replica.verify import verify_replica
from tests.conftest import MIB, assert_identical

KIB = 1024


def request(disk: Path, mover, certs, meta: Path, name: str = "vm", **kw) -> ReplicationRequest:  # type: ignore[no-untyped-def]
    spec = RemoteSpec("127.0.0.1", mover.port, certs.client)
    return ReplicationRequest(disk, name, meta, target=spec, **kw)


def point_ids(folder: Path) -> list[int]:
    with ReplicaChain.open_for_read(folder) as chain:
        return [p.id for p in chain.points]


def test_offsite_runs_compress_and_match_the_source(tmp_path, make_disk, snapshot, mover, certs):
    disk = make_disk(size_mib=24, seed=31)
    meta = tmp_path / "meta"
    r1 = replicate_disk(request(disk, mover, certs, meta, block_size=256 * KIB))
    s1 = snapshot(disk, "p1")
    assert r1.full
    assert r1.stats.transferred_bytes < r1.stats.changed_bytes  # compressed on the wire
    areas = change_blocks(disk, 0.1, seed=32, block_size=256 * KIB)
    r2 = replicate_disk(
        request(disk, mover, certs, meta, block_size=256 * KIB, changed_areas=areas)
    )
    s2 = snapshot(disk, "p2")
    assert r2.stats.read_bytes == sum(length for _, length in areas)
    replica = mover.root / "vm"
    assert point_ids(replica) == [1, 2]
    assert_identical(replica / "point-0001.vmdk", s1)
    assert_identical(replica / "point-0002.vmdk", s2)
    assert all(c.ok for c in verify_replica(replica, against=disk)[-1:])


def _attempt_with(tls: TlsFiles, port: int) -> None:
    target = RemoteTarget("127.0.0.1", port, tls, "vm")
    try:
        target.open(OpenRequest(MIB, MIB, 1))
    finally:
        target.close()


def test_peer_without_the_expected_certificate_is_refused(tmp_path, mover, certs):
    foreign = create_certificates(tmp_path / "foreign", ["localhost", "127.0.0.1"])
    # A client certificate from another CA.
    with pytest.raises(AuthenticationError):
        _attempt_with(
            TlsFiles(foreign["client"], foreign["client_key"], certs.client.ca), mover.port
        )
    # A client that does not trust the service's CA.
    with pytest.raises(AuthenticationError, match="not trusted"):
        _attempt_with(TlsFiles(certs.client.cert, certs.client.key, foreign["ca"]), mover.port)
    # TLS without any client certificate.
    ctx = ssl.create_default_context(cafile=str(certs.client.ca))
    with (
        socket.create_connection(("127.0.0.1", mover.port)) as raw,
        pytest.raises((ssl.SSLError, ConnectionError)),
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s,
    ):
        s.sendall(b"\x01\x02\x00\x00\x00{}")
        assert s.recv(1) == b""
    # Plain TCP: the service reads no application data from it.
    with socket.create_connection(("127.0.0.1", mover.port)) as raw:
        raw.sendall(b"\x01\x40\x00\x00\x00" + b"{}" * 32)
        raw.settimeout(10)
        try:
            data = raw.recv(100)
        except ConnectionError:
            data = b""
        assert b"READY" not in data and b"replica_id" not in data
    time.sleep(0.2)
    log = mover.log.read_text()
    assert log.count("refused") >= 3
    assert not (mover.root / "vm").exists()


def test_a_flipped_bit_in_a_block_is_caught_by_the_target(tmp_path, make_disk, mover, certs):
    disk = make_disk(size_mib=4, seed=33)
    meta = tmp_path / "meta"
    replicate_disk(request(disk, mover, certs, meta))
    replica = mover.root / "vm"
    before = {p.name: p.read_bytes() for p in replica.iterdir() if p.name != ".lock"}
    # A peer that sends a block whose payload no longer matches its digest.
    good = bytes(range(256)) * 4096
    frame = bytearray(blocks.compress(good))
    frame[-1] ^= 0x01
    target = RemoteTarget("127.0.0.1", mover.port, certs.client, "vm")
    try:
        target.open(OpenRequest(4 * MIB, MIB, 7))
        digest = blocks.digest_blocks(good, MIB)
        batch = BlockBatch(
            np.array([1], dtype=np.int64), np.array([KIND_FRAME], np.uint8), digest, [bytes(frame)]
        )
        with pytest.raises(RemoteError) as info:
            target.put(batch)
            target.commit("0" * 32)
        assert info.value.kind == "BlockIntegrityError"  # type: ignore[attr-defined]
        assert "Block 1 (offset 1048576) failed its digest check" in str(info.value)
    finally:
        target.abort()
        target.close()
    time.sleep(0.3)
    after = {p.name: p.read_bytes() for p in replica.iterdir() if p.name != ".lock"}
    assert after == before


class FlippingRelay:
    """A TCP relay that flips one bit of the client->server stream after `after` bytes."""

    def __init__(self, port: int, after: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target_port = port
        self.after = after
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _pipe(self, src: socket.socket, dst: socket.socket, flip: bool) -> None:
        seen = 0
        try:
            while data := src.recv(65536):
                if flip and seen <= self.after < seen + len(data):
                    buf = bytearray(data)
                    buf[self.after - seen] ^= 0x04
                    data = bytes(buf)
                seen += len(data)
                dst.sendall(data)
        except OSError:
            pass  # either side went away: the relay just stops
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):  # already closed
                    s.shutdown(socket.SHUT_RDWR)

    def _run(self) -> None:
        client, _ = self.listener.accept()
        server = socket.create_connection(("127.0.0.1", self.target_port))
        t = threading.Thread(target=self._pipe, args=(server, client, False), daemon=True)
        t.start()
        self._pipe(client, server, True)
        t.join(5)
        client.close()
        server.close()
        self.listener.close()


def test_a_flipped_bit_on_the_wire_fails_the_run_and_keeps_points(
    tmp_path, make_disk, mover, certs
):
    disk = make_disk(size_mib=16, seed=34)
    meta = tmp_path / "meta"
    replicate_disk(request(disk, mover, certs, meta))
    change_blocks(disk, 0.5, seed=35)
    relay = FlippingRelay(mover.port, after=2 * MIB)
    spec = RemoteSpec("127.0.0.1", relay.port, certs.client)
    with pytest.raises((MoverConnectionError, RemoteError)):
        replicate_disk(ReplicationRequest(disk, "vm", meta, target=spec))
    time.sleep(0.5)
    replica = mover.root / "vm"
    assert point_ids(replica) == [1]
    r = replicate_disk(request(disk, mover, certs, meta))
    assert r.point.point_id == 2
    assert all(c.ok for c in verify_replica(replica, against=disk)[-1:])


def wait_for_partial(folder: Path, timeout: float = 30.0) -> None:
    """Block until a restore point is being written (its .partial file exists)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if folder.is_dir() and any(p.name.endswith(".partial") for p in folder.iterdir()):
            return
        time.sleep(0.005)
    raise AssertionError(f"no point was being written in {folder}")


def _cli(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "core", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _tls_args(certs) -> list[str]:  # type: ignore[no-untyped-def]
    c = certs.client
    return ["--tls-cert", str(c.cert), "--tls-key", str(c.key), "--tls-ca", str(c.ca)]


def test_killing_the_source_mid_run_discards_the_point(tmp_path, make_disk, snapshot, mover, certs):
    disk = make_disk(size_mib=256, seed=36)
    meta = tmp_path / "meta"
    replicate_disk(request(disk, mover, certs, meta, block_size=256 * KIB))
    first = snapshot(disk, "p1")
    change_blocks(disk, 0.6, seed=37)
    proc = _cli(
        [
            "disk",
            "replicate",
            str(disk),
            "vm",
            "--target",
            f"127.0.0.1:{mover.port}",
            "--metadata-dir",
            str(meta),
            "--block-size",
            "256K",
            *_tls_args(certs),
        ]
    )
    replica = mover.root / "vm"
    wait_for_partial(replica)
    proc.kill()
    proc.communicate(timeout=30)
    assert proc.returncode == -9
    deadline = time.time() + 10
    while time.time() < deadline and any(p.suffix == ".partial" for p in replica.iterdir()):
        time.sleep(0.1)
    assert not any(p.suffix == ".partial" for p in replica.iterdir())
    ids = point_ids(replica)
    assert ids[0] == 1
    assert_identical(replica / "point-0001.vmdk", first)
    r = replicate_disk(request(disk, mover, certs, meta, block_size=256 * KIB))
    assert r.point.point_id == ids[-1] + 1
    assert all(c.ok for c in verify_replica(replica, against=disk)[-1:])


def test_killing_the_target_mid_run_keeps_points_and_the_next_run_completes(
    tmp_path, make_disk, snapshot, mover, certs
):
    disk = make_disk(size_mib=256, seed=38)
    meta = tmp_path / "meta"
    replicate_disk(request(disk, mover, certs, meta, block_size=256 * KIB))
    first = snapshot(disk, "p1")
    change_blocks(disk, 0.6, seed=39)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            replicate_disk(request(disk, mover, certs, meta, block_size=256 * KIB))
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    replica = mover.root / "vm"
    wait_for_partial(replica)
    mover.kill()
    t.join(60)
    assert len(errors) == 1 and isinstance(errors[0], MoverConnectionError), errors
    assert point_ids(replica) == [1]
    assert_identical(replica / "point-0001.vmdk", first)
    mover.start()
    r = replicate_disk(request(disk, mover, certs, meta, block_size=256 * KIB))
    assert not any(p.suffix == ".partial" for p in replica.iterdir())
    assert all(c.ok for c in verify_replica(replica))
    assert_identical(Path(replica / Path(r.point.path).name), disk)


def test_replica_paths_absolute_inside_the_root_and_nothing_outside(
    tmp_path, make_disk, mover, certs
):
    disk = make_disk(size_mib=2, seed=35)
    inside = mover.root.resolve() / "ds 1 [ssd]" / "web #1 & Ünï_replica" / "disk-2000"
    r = replicate_disk(request(disk, mover, certs, tmp_path / "m1", name=str(inside)))
    # The service names the point by its path below its root.
    point = mover.root / r.point.path
    assert point.parent == inside
    assert_identical(point, disk)
    for bad in (str(tmp_path / "elsewhere"), "../escape", "a/../../escape", ""):
        with pytest.raises(RemoteError, match="is not a path inside this mover's root"):
            replicate_disk(request(disk, mover, certs, tmp_path / "m2", name=bad))
    assert not (tmp_path / "elsewhere").exists()
    assert not (mover.root.parent / "escape").exists()
