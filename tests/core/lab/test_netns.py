"""core.lab.netns: a real namespace and veth pair, shaped with tbf, torn down completely."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import LabNetworkError
from core.lab.netns import LinkShape, WanLink, namespaces, sweep_stale


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("network namespace tests make namespaces and must run as root (as CI does)")


_SINK = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
n = 0
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    n += len(b)
c.sendall(str(n).encode()); c.close()
"""


def _throughput_mbit(link: WanLink, nbytes: int) -> float:
    """Send nbytes over TCP from this namespace to a sink inside the site; Mbit/s seen."""
    sink = subprocess.Popen(
        [*link.exec_prefix(), sys.executable, "-c", _SINK, link.site_address],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sink.stdout is not None
        port = int(sink.stdout.readline())
        with socket.create_connection((link.site_address, port), timeout=30) as s:
            start = time.perf_counter()
            s.sendall(bytes(nbytes))
            s.shutdown(socket.SHUT_WR)
            got = int(s.recv(64))
            seconds = time.perf_counter() - start
        assert got == nbytes
        return nbytes * 8 / seconds / 1e6
    finally:
        sink.kill()
        sink.wait()


def test_link_is_shaped_and_removed() -> None:
    _require_root()
    with WanLink(LinkShape(rate_mbit=20)) as link:
        assert link.namespace in namespaces()
        mbit = _throughput_mbit(link, 3_000_000)
        # Unshaped, loopback-class veth runs at several Gbit/s; 20 Mbit/s shaping must show.
        assert 8 < mbit < 30, mbit
        link.shape_link(LinkShape(rate_mbit=200))
        assert _throughput_mbit(link, 6_000_000) > 60
        name, host_if = link.namespace, link.host_if
    assert name not in namespaces()
    assert not Path(f"/sys/class/net/{host_if}").exists()


def test_close_kills_processes_left_in_the_namespace() -> None:
    _require_root()
    link = WanLink(LinkShape(rate_mbit=50)).open()
    proc = subprocess.Popen([*link.exec_prefix(), "sleep", "60"])
    time.sleep(0.2)
    assert link.processes()
    link.close()
    assert proc.wait(timeout=5) != 0
    assert link.namespace not in namespaces()


def test_stale_namespace_of_a_dead_owner_is_swept(tmp_path: Path) -> None:
    _require_root()
    # A child process makes a namespace and dies without closing it (a killed `lab up`).
    root = str(Path(__file__).resolve().parents[3])
    tag = 90000 + os.getpid() % 9999
    code = (
        f"import os, sys; sys.path.insert(0, {root!r})\n"
        "from core.lab.netns import WanLink\n"
        f"l = WanLink(tag={tag}).open(); print(l.namespace, flush=True); os._exit(0)\n"
    )
    name = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert name in namespaces()
    assert name in sweep_stale()
    assert name not in namespaces()


def test_bad_rate_is_refused() -> None:
    with pytest.raises(LabNetworkError, match="rate 0 Mbit/s is not positive"):
        LinkShape(rate_mbit=0).tbf_args()
