"""installer/install-proxy.sh: a proxy host set up into a temporary prefix, systemd left out.

The backup server's CA is made with `replicadesk mover certs`, the proxy's server certificate
issued from it with `mover certs --ca` (the CA key stays behind), and the script installs the
package into a fresh venv under the prefix (a real pip install of this tree), the TLS files, the
environment file and the unit. The mover is then started the way systemd would: the unit's
ExecStart with the environment file's variables put in. It must listen where the file says,
write under the root it names, take a disk from a client holding the backup server's
certificate and refuse one signed by another CA. `systemd-analyze verify` checks the unit when
it is installed; otherwise its keys are checked by parsing.
"""

from __future__ import annotations

import configparser
import json
import os
import pwd
import re
import selectors
import shlex
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.errors import AuthenticationError
from core.mover.certs import create_certificates
from core.mover.remote import RemoteTarget
from core.mover.target import OpenRequest
from core.mover.tls import TlsFiles
from core.replica.verify import verify_replica
from tests.conftest import MIB

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "installer" / "install-proxy.sh"
UNIT = ROOT / "installer" / "proxy" / "replicadesk-mover.service"
ENV_KEYS = (
    "REPLICADESK_ROOT",
    "REPLICADESK_LISTEN",
    "REPLICADESK_TLS_CERT",
    "REPLICADESK_TLS_KEY",
    "REPLICADESK_TLS_CA",
)

pytestmark = pytest.mark.timeout(1200)  # a real pip install of the package into a fresh venv


def replicadesk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Installed:
    base: Path
    prefix: Path
    etc: Path
    units: Path
    replicas: Path
    backup: Path  # the backup server's CA folder: ca.pem, ca.key, client.pem, client.key
    port: int
    output: str

    @property
    def unit(self) -> Path:
        return self.units / "replicadesk-mover.service"

    @property
    def client(self) -> TlsFiles:
        return TlsFiles(
            self.backup / "client.pem", self.backup / "client.key", self.backup / "ca.pem"
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("proxy-host")
    backup, issued = base / "backup-server-ca", base / "issued-for-proxy"
    replicadesk("mover", "certs", str(backup), "--name", "backup.example")
    replicadesk("mover", "certs", str(issued), "--ca", str(backup), "--name", "proxy-01.example")
    assert sorted(p.name for p in issued.iterdir()) == ["ca.pem", "server.key", "server.pem"]
    port = free_port()
    prefix, etc, units = base / "opt", base / "etc", base / "units"
    replicas = base / "srv" / "replicas"
    user = pwd.getpwuid(os.getuid()).pw_name
    proc = subprocess.run(
        [
            str(SCRIPT),
            "--certs", str(issued),
            "--prefix", str(prefix),
            "--etc", str(etc),
            "--unit-dir", str(units),
            "--root", str(replicas),
            "--listen", f"127.0.0.1:{port}",
            "--user", user,
            "--python", shutil.which("python3") or "python3",
            "--no-systemd",
        ],
        capture_output=True,
        text=True,
        timeout=1100,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Installed(base, prefix, etc, units, replicas, backup, port, proc.stdout)


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as systemd's EnvironmentFile= reads the unquoted ones we write."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def unit_sections(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read_string(path.read_text())
    return parser


def exec_start(unit: configparser.ConfigParser, env: dict[str, str]) -> list[str]:
    """ExecStart as systemd runs it: "${VAR}" words replaced by the variable, whole."""
    words = shlex.split(unit["Service"]["ExecStart"])
    return [re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], w) for w in words]


def test_the_script_writes_the_venv_tls_env_file_and_unit(installed: Installed) -> None:
    venv = installed.prefix / "venv"
    assert (venv / "bin" / "replicadesk").is_file()
    # The engine only: a proxy host gets no Qt.
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import core.blocks, importlib.util as u;"
         "print(u.find_spec('PySide6') is None)"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert probe.stdout.strip() == "True", probe.stderr
    tls = installed.etc / "tls"
    assert sorted(p.name for p in tls.iterdir()) == ["ca.pem", "server.key", "server.pem"]
    assert stat.S_IMODE((tls / "server.key").stat().st_mode) == 0o640
    assert (tls / "ca.pem").read_bytes() == (installed.backup / "ca.pem").read_bytes()
    env = env_file(installed.etc / "mover.env")
    assert env == {
        "REPLICADESK_ROOT": str(installed.replicas),
        "REPLICADESK_LISTEN": f"127.0.0.1:{installed.port}",
        "REPLICADESK_TLS_CERT": str(tls / "server.pem"),
        "REPLICADESK_TLS_KEY": str(tls / "server.key"),
        "REPLICADESK_TLS_CA": str(tls / "ca.pem"),
    }
    assert installed.replicas.is_dir()
    unit = unit_sections(installed.unit)
    service = unit["Service"]
    assert service["EnvironmentFile"] == str(installed.etc / "mover.env")
    assert exec_start(unit, env)[:3] == [str(venv / "bin" / "replicadesk"), "mover", "serve"]
    assert service["User"] == pwd.getpwuid(os.getuid()).pw_name
    # systemd is left out: the script says how to enable the unit or run the mover by hand.
    assert "was not enabled (--no-systemd)" in installed.output
    assert "systemctl enable --now replicadesk-mover" in installed.output
    assert "replicadesk proxy add" in installed.output


@pytest.fixture
def running_mover(installed: Installed) -> Iterator[subprocess.Popen[str]]:
    env = env_file(installed.etc / "mover.env")
    argv = exec_start(unit_sections(installed.unit), env)
    proc = subprocess.Popen(
        argv, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        with selectors.DefaultSelector() as sel:
            assert proc.stdout is not None
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(60), "the mover printed nothing in 60 s"
            line = proc.stdout.readline()
        assert f"mover listening on 127.0.0.1:{installed.port}" in line, line + (
            proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        )
        assert str(installed.replicas) in line
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_the_configured_mover_takes_a_disk_from_the_backup_server(
    installed: Installed, running_mover: subprocess.Popen[str], make_disk, tmp_path: Path
) -> None:
    disk = make_disk(size_mib=8, seed=5)
    client = installed.client
    proc = subprocess.run(
        [
            sys.executable, "-m", "core", "disk", "replicate", str(disk), "web-01",
            "--target", f"127.0.0.1:{installed.port}",
            "--tls-cert", str(client.cert), "--tls-key", str(client.key),
            "--tls-ca", str(client.ca), "--tls-server-name", "proxy-01.example",
            "--metadata-dir", str(tmp_path / "meta"), "--json",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["full"] is True
    replica = installed.replicas / "web-01"
    assert all(c.ok for c in verify_replica(replica, against=disk))
    # A client whose certificate another CA signed is refused in the handshake.
    foreign = create_certificates(tmp_path / "foreign", ["localhost"])
    target = RemoteTarget(
        "127.0.0.1",
        installed.port,
        TlsFiles(foreign["client"], foreign["client_key"], client.ca),
        "intruder",
        server_name="proxy-01.example",
    )
    with pytest.raises(AuthenticationError):
        try:
            target.open(OpenRequest(MIB, MIB, 1))
        finally:
            target.close()
    assert not (installed.replicas / "intruder").exists()


def test_the_unit_is_valid(installed: Installed) -> None:
    unit = unit_sections(UNIT)
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    assert service["Type"] == "simple"
    assert service["EnvironmentFile"] == "/etc/replicadesk/mover.env"
    words = shlex.split(service["ExecStart"])
    assert words[:4] == ["/opt/replicadesk/venv/bin/replicadesk", "mover", "serve", "--root"]
    assert {m for w in words for m in re.findall(r"\$\{(\w+)\}", w)} == set(ENV_KEYS)
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return  # the keys above are what can be checked without systemd's own parser
    # The installed copy: its ExecStart and EnvironmentFile exist here, as verify wants.
    proc = subprocess.run(
        [analyze, "verify", str(installed.unit)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "replicadesk-mover.service" not in proc.stderr, proc.stderr
