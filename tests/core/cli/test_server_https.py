"""`replicadesk server add`, `trust`, `list` and `inventory` with an https managed server: a
simulated ESXi host serving TLS (its certificate from a CA of the test's own, which the store
knows nothing about, as with a self-signed vCenter).

The certificate is pinned when the server is added: `--accept-certificate` stores the SHA-256
thumbprint it presents, a `--thumbprint` it does not have is refused, and without either (no
terminal) nothing is stored and the message gives the thumbprint; at a terminal the user is asked.
Stored servers are then logged in to with the pin checked (`core.jobs.servers.connect_stored`):
a server back on the same port with another certificate is refused until `server trust` accepts
it. An https server stored before pinning existed still connects, unverified, with a warning
saying how to pin it. http asked of the https port is refused with the reason, nothing stored.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import ServerCheckError, VSphereCertificateError
from core.jobs.servers import connect_stored
from core.lab.simulator import Simulator, SimulatorSpec
from core.model.infra import ManagedServer, ServerKind
from core.model.secret import Credential, Secret
from core.store import Store
from tests.core.cli.conftest import Cli
from tests.core.lab.conftest import launcher  # noqa: F401  (the session's cached build)

SPEC = SimulatorSpec.esx(vms=2)


@pytest.fixture(scope="module")
def esx(launcher: Path) -> Iterator[Simulator]:  # noqa: F811
    with Simulator(SPEC, launcher=launcher, tls=True) as sim:
        yield sim


def add_args(sim: Simulator, *extra: str) -> list[str]:
    return [
        "server", "add", sim.host, "--port", str(sim.port), "--protocol", "https",
        "--kind", "esxi", "--user", "root", *extra,
    ]  # fmt: skip


def add(cli: Cli, sim: Simulator, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli.run(*add_args(sim, *extra), password="pw")


def vsphere_notation(thumbprint: str) -> str:
    """ "AB:CD:...": how the vSphere client (and our certificate errors) show a thumbprint."""
    return ":".join(thumbprint[i : i + 2] for i in range(0, len(thumbprint), 2)).upper()


def stored(cli: Cli) -> list[ManagedServer]:
    with Store.open(cli.db) as store:
        assert store.credentials.names() == [
            s.credential for s in store.servers.list() if s.credential
        ]
        return store.servers.list()


def test_accepted_certificate_is_pinned_and_checked(esx: Simulator, tmp_path: Path) -> None:
    assert esx.protocol == "https"
    cli = Cli(tmp_path / "rd.db")
    added = cli.json(
        "server", "add", esx.host, "--port", str(esx.port), "--protocol", "https",
        "--kind", "esxi", "--user", "root", "--accept-certificate", password="pw",
    )  # fmt: skip
    assert added["answered"].startswith("VMware ESXi")
    assert added["thumbprint"] == esx.thumbprint and added["certificate"] == "pinned"
    [server] = cli.json("server", "list")
    assert (server["address"], server["protocol"], server["port"]) == (esx.host, "https", esx.port)
    assert server["url"] == f"https://{esx.host}:{esx.port}/sdk"
    assert (server["thumbprint"], server["certificate"]) == (esx.thumbprint, "pinned")
    assert "pinned" in cli.ok("server", "list").splitlines()[1]
    with Store.open(cli.db) as store, connect_stored(store, esx.host, keepalive=False) as client:
        assert client.thumbprint == esx.thumbprint and client.verify_tls
        assert client.about.api_type == "HostAgent"
    [inventory] = cli.json("inventory", "--server", esx.host)
    assert sorted(vm["name"] for vm in inventory["vms"]) == ["VM0", "VM1"]


def test_the_expected_thumbprint_is_checked_before_anything_is_stored(
    esx: Simulator, tmp_path: Path
) -> None:
    cli = Cli(tmp_path / "rd.db")
    assert esx.ca_file is not None
    wrong = "12" * 32
    line = cli.fails(
        ServerCheckError.exit_code, *add_args(esx, "--thumbprint", wrong), password="pw"
    )
    assert f"Managed server {esx.host}:" in line and f"thumbprint {esx.thumbprint}, not" in line
    assert f"expected {wrong}: not added" in line, line
    assert stored(cli) == []
    # The administrator's thumbprint in vSphere's notation (colons, upper case) is the same one.
    proc = add(cli, esx, "--thumbprint", vsphere_notation(esx.thumbprint), "--json")
    assert proc.returncode == 0, proc.stderr
    [server] = stored(cli)
    assert server.thumbprint == esx.thumbprint and server.pinned


def test_without_a_decision_nothing_is_stored_and_the_thumbprint_is_shown(
    esx: Simulator, tmp_path: Path
) -> None:
    cli = Cli(tmp_path / "rd.db")
    for extra in ((), ("--json",), ("--no-check",)):
        proc = add(cli, esx, *extra)
        assert proc.returncode == ServerCheckError.exit_code, proc.stderr
        line = proc.stderr.strip().splitlines()[-1]
        assert f"SHA-256 thumbprint {esx.thumbprint}, not accepted yet: not added" in line, line
        assert f"--thumbprint {esx.thumbprint} or --accept-certificate" in line, line
    assert stored(cli) == []
    # --no-check with the administrator's SHA-256 stores it without contacting the server.
    proc = add(cli, esx, "--no-check", "--thumbprint", esx.thumbprint)
    assert proc.returncode == 0 and "not checked" in proc.stdout, proc.stderr
    assert [s.thumbprint for s in stored(cli)] == [esx.thumbprint]


def answer_on_a_terminal(cli: Cli, args: list[str], answer: bytes) -> tuple[int, str]:
    """Run `replicadesk` with a terminal as standard input and output; answer its question."""
    env = {**os.environ, "REPLICADESK_HOME": str(cli.db.parent / "home")}
    env["REPLICADESK_PASSWORD"] = "pw"
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "core", "--db", str(cli.db), *args],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
    )
    os.close(child)
    out = b""
    asked = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
            if not asked and b"[y/N]" in out:
                os.write(main, answer + b"\n")
                asked = True
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=30)
    os.close(main)
    return code, out.decode(errors="replace")


def test_at_a_terminal_the_user_is_asked(esx: Simulator, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "rd.db")
    args = add_args(esx)
    code, out = answer_on_a_terminal(cli, args, b"n")
    assert code == ServerCheckError.exit_code and "not accepted: not added" in out, out
    assert esx.thumbprint in out and stored(cli) == []
    code, out = answer_on_a_terminal(cli, args, b"y")
    assert code == 0 and "added esxi" in out, out
    assert [s.thumbprint for s in stored(cli)] == [esx.thumbprint]


def test_a_new_certificate_is_refused_until_trusted(launcher: Path, tmp_path: Path) -> None:  # noqa: F811
    cli = Cli(tmp_path / "rd.db")
    first = Simulator(SPEC, launcher=launcher, tls=True).start()
    try:
        assert add(cli, first, "--accept-certificate").returncode == 0
        host, port, old = first.host, first.port, first.thumbprint
    finally:
        first.stop()
    second = Simulator(
        dataclasses.replace(SPEC, listen=f"{host}:{port}"), launcher=launcher, tls=True
    )
    with second:
        assert second.port == port and second.thumbprint != old
        with Store.open(cli.db) as store, pytest.raises(VSphereCertificateError) as e:
            connect_stored(store, host, keepalive=False)
        text = str(e.value)
        assert f"{host}:{port}" in text and "not trusted" in text, text
        assert vsphere_notation(second.thumbprint) in text, text  # what it presents now
        assert f"replicadesk server trust {host}" in text, text
        line = cli.fails(e.value.exit_code, "inventory", "--server", host)
        assert "not the pinned one" in line, line

        # Trusting with the old thumbprint is refused; accepting the new one pins it.
        line = cli.fails(ServerCheckError.exit_code, "server", "trust", host, "--thumbprint", old)
        assert f"thumbprint {second.thumbprint}, not the expected {old}: not pinned" in line
        assert [s.thumbprint for s in stored(cli)] == [old]
        trusted = cli.json("server", "trust", host, "--accept-certificate")
        assert (trusted["thumbprint"], trusted["previous_thumbprint"]) == (second.thumbprint, old)
        with Store.open(cli.db) as store, connect_stored(store, host, keepalive=False) as client:
            assert client.thumbprint == second.thumbprint
        assert "already pinned" in cli.ok("server", "trust", host, "--accept-certificate")


def test_an_unpinned_server_connects_with_a_warning(
    esx: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A server stored before pinning existed (no thumbprint): connected to unverified, said."""
    cli = Cli(tmp_path / "rd.db")
    with Store.open(cli.db) as store:
        store.credentials.put(Credential("server:old", Secret("pw")))
        store.servers.add(
            ManagedServer(ServerKind.ESXI, esx.host, "root", "server:old", port=esx.port)
        )
        with (
            caplog.at_level(logging.WARNING, "core.jobs.servers"),
            connect_stored(store, esx.host, keepalive=False) as client,
        ):
            assert client.about.api_type == "HostAgent" and not client.thumbprint
    [warning] = [r.getMessage() for r in caplog.records]
    assert f"managed server {esx.host}: its TLS certificate is not pinned" in warning
    assert f"`replicadesk server trust {esx.host}`" in warning
    [server] = cli.json("server", "list")
    assert (server["certificate"], server["thumbprint"]) == ("not pinned", "")
    proc = cli.run("inventory", "--server", esx.host)
    assert proc.returncode == 0 and "is not pinned" in proc.stderr, proc.stderr
    assert (
        cli.json("server", "trust", esx.host, "--accept-certificate")["previous_thumbprint"] == ""
    )
    [server] = cli.json("server", "list")
    assert (server["certificate"], server["thumbprint"]) == ("pinned", esx.thumbprint)


def test_http_to_the_https_port_is_refused(esx: Simulator, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "rd.db")
    line = cli.fails(
        ServerCheckError.exit_code, "server", "add", esx.host, "--port", str(esx.port),
        "--protocol", "http", "--kind", "esxi", "--user", "root", password="pw",
    )  # fmt: skip
    assert f"{esx.host}:{esx.port}" in line and "no vSphere API answers over http" in line, line
    assert cli.json("server", "list") == []
