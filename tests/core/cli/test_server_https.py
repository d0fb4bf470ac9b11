"""`replicadesk server add` and `inventory` with an https managed server: a simulated ESXi host
serving TLS (its certificate from a CA of the test's own, which the store knows nothing about).

Stored servers are logged in to without certificate verification today (`core.jobs.servers`),
so an https server registers and answers; http asked of that https port is refused with the
reason and nothing is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import ServerCheckError
from core.lab.simulator import Simulator, SimulatorSpec
from tests.core.cli.conftest import Cli
from tests.core.lab.conftest import launcher  # noqa: F401  (the session's cached build)


@pytest.fixture(scope="module")
def esx(launcher: Path) -> Iterator[Simulator]:  # noqa: F811
    with Simulator(SimulatorSpec.esx(vms=2), launcher=launcher, tls=True) as sim:
        yield sim


def test_https_server_is_added_and_read(esx: Simulator, tmp_path: Path) -> None:
    assert esx.protocol == "https"
    cli = Cli(tmp_path / "rd.db")
    added = cli.json(
        "server", "add", esx.host, "--port", str(esx.port), "--protocol", "https",
        "--kind", "esxi", "--user", "root", password="pw",
    )  # fmt: skip
    assert added["answered"].startswith("VMware ESXi")
    [server] = cli.json("server", "list")
    assert (server["address"], server["protocol"], server["port"]) == (esx.host, "https", esx.port)
    assert server["url"] == f"https://{esx.host}:{esx.port}/sdk"
    [inventory] = cli.json("inventory", "--server", esx.host)
    assert sorted(vm["name"] for vm in inventory["vms"]) == ["VM0", "VM1"]


def test_http_to_the_https_port_is_refused(esx: Simulator, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "rd.db")
    line = cli.fails(
        ServerCheckError.exit_code, "server", "add", esx.host, "--port", str(esx.port),
        "--protocol", "http", "--kind", "esxi", "--user", "root", password="pw",
    )  # fmt: skip
    assert f"{esx.host}:{esx.port}" in line and "no vSphere API answers over http" in line, line
    assert cli.json("server", "list") == []
