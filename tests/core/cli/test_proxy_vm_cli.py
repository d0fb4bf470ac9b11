"""`replicadesk proxy add --vm`: the proxy's own VM (for hot-add) looked up by name or moref
on a stored managed server, against the real lab."""

from __future__ import annotations

from pathlib import Path

from core.errors import NotFoundError, UsageError
from core.lab.lab import LabState
from core.lab.register import inventories
from tests.core.cli.conftest import Cli, add_lab_servers


def test_a_proxy_vm_is_resolved_when_the_proxy_is_added(lab: LabState, tmp_path: Path) -> None:
    prod = lab.production
    cli = Cli(tmp_path / "rd.db")
    add_lab_servers(cli, lab)
    inv, _ = inventories(lab)
    (wanted,) = inv.vms_named("web 02 (canary)")
    common = ("--address", prod.proxy_address, "--port", str(prod.proxy_port), "--site", "prod")

    doc = cli.json(
        "proxy", "add", "by-name", *common, "--vm", "web 02 (canary)", "--vm-server", prod.address
    )
    assert doc["vm"] == {"moref": wanted.moref, "server": prod.address}
    doc = cli.json(
        "proxy", "add", "by-moref", *common, "--vm", wanted.moref, "--vm-server", prod.address
    )
    assert doc["vm"] == {"moref": wanted.moref, "server": prod.address}
    listed = {p["name"]: p["vm"] for p in cli.json("proxy", "list")}
    assert listed == {"by-name": doc["vm"], "by-moref": doc["vm"]}

    line = cli.fails(
        UsageError.exit_code, "proxy", "add", "p3", *common, "--vm", "no such vm",
        "--vm-server", prod.address,
    )  # fmt: skip
    assert f"no VM named 'no such vm' (or with that moref) on {prod.address}" in line
    line = cli.fails(UsageError.exit_code, "proxy", "add", "p4", *common, "--vm", "dc01")
    assert "give --vm-server" in line  # two servers are stored
    line = cli.fails(
        NotFoundError.exit_code, "proxy", "add", "p5", *common, "--vm", "dc01",
        "--vm-server", "vc.example.net",
    )  # fmt: skip
    assert "vc.example.net" in line
    assert [p["name"] for p in cli.json("proxy", "list")] == ["by-moref", "by-name"]
