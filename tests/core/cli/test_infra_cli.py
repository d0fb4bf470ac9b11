"""`replicadesk server|proxy|repo` and `replicadesk inventory` against the real lab.

Servers are logged in to before they are stored, passwords never reach the database file in
clear, unreachable servers and proxies are refused with the reason and leave nothing behind,
and the inventory shows the lab's awkward VM names exactly as vSphere has them.
"""

from __future__ import annotations

import socket
import stat
from pathlib import Path

from core.errors import (
    InUseError,
    NotFoundError,
    ProxyCheckError,
    ServerCheckError,
    UsageError,
)
from core.lab.lab import LabState
from core.lab.topology import DR_NETWORKS, vm_names
from core.store.store import Store
from tests.core.cli.conftest import LAB_VMS, Cli, add_lab_proxies, add_lab_servers


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_add_list_remove_infrastructure(lab: LabState, tmp_path: Path) -> None:
    prod, dr = lab.production.address, lab.dr.address
    cli = Cli(tmp_path / "rd.db")
    add_lab_servers(cli, lab)
    servers = cli.json("server", "list")
    assert [(s["address"], s["kind"], s["protocol"]) for s in servers] == [
        (prod, "vcenter", "http"),
        (dr, "vcenter", "http"),
    ]
    assert servers[0]["port"] == lab.production.port
    assert servers[0]["credential"] == f"server:{prod}"
    add_lab_proxies(cli, lab, tmp_path / "meta")
    proxies = {p["name"]: p for p in cli.json("proxy", "list")}
    assert proxies["prod-proxy"]["site"] == "production"
    assert proxies["dr-proxy"]["port"] == lab.dr.proxy_port
    assert proxies["dr-proxy"]["tls"]["ca"] == lab.client_tls["ca"]
    assert [p["name"] for p in cli.json("proxy", "list", "--site", "dr")] == ["dr-proxy"]
    (repo,) = cli.json("repo", "list")
    assert (repo["name"], repo["site"], repo["proxy"]) == ("metadata", "production", "prod-proxy")
    text = cli.ok("server", "list")
    assert f"http://{prod}:{lab.production.port}/sdk" in text

    # Passwords are encrypted at rest, with the key in a private file beside the database.
    cli.ok("server", "list")  # a checkpointing open
    for f in tmp_path.glob("rd.db*"):
        data = f.read_bytes()
        assert b"secret p@ss" not in data, f
    key = tmp_path / "rd.db.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    with Store.open(tmp_path / "rd.db") as store:
        assert store.credentials.get(f"server:{prod}").secret.reveal() == "prod secret p@ss"
        assert store.credentials.get(f"server:{dr}").secret.reveal() == "dr secret p@ss"

    # In use: refused with what uses it; then removed in order.
    line = cli.fails(InUseError.exit_code, "proxy", "remove", "prod-proxy")
    assert "Proxy 'prod-proxy' is still used by repository 'metadata'" in line
    cli.ok("repo", "remove", "metadata")
    cli.ok("proxy", "remove", "prod-proxy")
    line = cli.fails(NotFoundError.exit_code, "proxy", "remove", "prod-proxy")
    assert "There is no proxy 'prod-proxy'" in line
    cli.ok("server", "remove", dr)
    assert [s["address"] for s in cli.json("server", "list")] == [prod]
    with Store.open(tmp_path / "rd.db") as store:
        assert store.credentials.names() == [f"server:{prod}"]


def test_adding_twice_is_refused(lab: LabState, tmp_path: Path) -> None:
    prod = lab.production.address
    cli = Cli(tmp_path / "rd.db")
    add_lab_servers(cli, lab)
    line = cli.fails(
        50, "server", "add", prod, "--port", str(lab.dr.port), "--protocol", "http",
        "--user", "u", password="x",
    )  # fmt: skip
    assert f"A server named '{prod}' already exists" in line


def test_unreachable_server_is_refused_and_nothing_stored(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "rd.db")
    port = closed_port()
    line = cli.fails(
        ServerCheckError.exit_code, "server", "add", "127.0.0.1", "--port", str(port),
        "--protocol", "http", "--user", "admin", password="pw-not-stored",
    )  # fmt: skip
    assert "127.0.0.1" in line and f"Cannot reach vSphere at 127.0.0.1:{port}" in line
    assert "--no-check" in line
    assert cli.json("server", "list") == []
    with Store.open(tmp_path / "rd.db") as store:
        assert store.credentials.names() == []
    # --no-check stores it without logging in.
    cli.ok(
        "server", "add", "127.0.0.1", "--port", str(port), "--protocol", "http",
        "--user", "admin", "--no-check", password="pw",
    )  # fmt: skip
    assert [s["address"] for s in cli.json("server", "list")] == ["127.0.0.1"]


def test_wrong_kind_and_missing_password_are_refused(lab: LabState, tmp_path: Path) -> None:
    prod = lab.production.address
    cli = Cli(tmp_path / "rd.db")
    args = ["server", "add", prod, "--port", str(lab.production.port), "--protocol", "http"]
    line = cli.fails(
        ServerCheckError.exit_code, *args, "--kind", "esxi", "--user", lab.user, password="x"
    )
    assert "it is a vCenter Server" in line
    line = cli.fails(UsageError.exit_code, *args, "--user", lab.user)
    assert "--password-stdin" in line and "REPLICADESK_PASSWORD" in line
    proc = cli.run(*args, "--user", lab.user, "--password", "visible-in-ps")
    assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr
    assert cli.json("server", "list") == []


def test_unreachable_or_untrusting_proxy_is_refused(lab: LabState, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "rd.db")
    port = closed_port()
    line = cli.fails(
        ProxyCheckError.exit_code, "proxy", "add", "p1", "--address", "127.0.0.1",
        "--port", str(port), "--site", "production",
    )  # fmt: skip
    assert f"cannot reach its mover service at 127.0.0.1:{port}" in line
    # The mover does not trust a certificate from another CA.
    from core.mover.certs import create_certificates

    other = create_certificates(tmp_path / "other-ca", ["localhost", "127.0.0.1"])
    line = cli.fails(
        ProxyCheckError.exit_code, "proxy", "add", "p2", "--address", "127.0.0.1",
        "--port", str(lab.production.proxy_port), "--site", "production",
        "--tls-cert", str(other["client"]), "--tls-key", str(other["client_key"]),
        "--tls-ca", str(other["ca"]),
    )  # fmt: skip
    assert "not added" in line
    line = cli.fails(
        UsageError.exit_code, "proxy", "add", "p3", "--address", "127.0.0.1",
        "--site", "production", "--tls-cert", lab.client_tls["cert"],
    )  # fmt: skip
    assert "--tls-key" in line
    assert cli.json("proxy", "list") == []


def test_inventory_shows_odd_names_and_ids(
    lab: LabState,
    infra: Cli,
    prod_inventory: dict,  # type: ignore[type-arg]
) -> None:
    prod, dr = lab.production.address, lab.dr.address
    names = vm_names(LAB_VMS)
    vms = prod_inventory["vms"]
    assert sorted(v["name"] for v in vms) == sorted(names)
    assert all(v["moref"].startswith("vm-") and v["disks"] and v["nics"] for v in vms)
    text = infra.ok("inventory", "--server", prod)
    assert 'datacenter "Production DC"' in text and 'cluster "Prod Cluster"' in text
    for vm in vms:
        assert f'vm "{vm["name"]}"  [{vm["moref"]}]' in text
        for disk in vm["disks"]:
            assert disk["file_name"] in text
    assert 'vm "Zürich fileserver [fs]"' in text and '"pg-db [tier 2]"' in text
    dr_text = infra.ok("inventory", "--server", dr)
    for net in DR_NETWORKS:
        assert f'"{net}"' in dr_text
    both = infra.json("inventory")
    assert [i["server"] for i in both] == [prod, dr]
    line = infra.fails(NotFoundError.exit_code, "inventory", "--server", "nowhere.example")
    assert "There is no server 'nowhere.example'" in line
