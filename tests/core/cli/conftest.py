"""Fixtures for the command-line tests that need vSphere: one small two-site lab for the session
(production vCenter with odd VM names, DR vCenter, a mover per site), and a database with that
lab's servers, proxies and repository added through the real `replicadesk` command.

The lab is started in-process and stopped at the end of the session; every database lives under
pytest's tmp dirs (`--db`), and `REPLICADESK_HOME` points there too, so nothing touches ~.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.lab.lab import Lab, LabState
from core.lab.topology import LabOptions

LAB_VMS = 6  # the first six lab names carry every character that breaks scripts


@dataclass(frozen=True)
class Cli:
    """`replicadesk --db DB ...` in a subprocess, as a script runs it."""

    db: Path

    def run(
        self, *args: str, password: str | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "REPLICADESK_PASSWORD"}
        env["REPLICADESK_HOME"] = str(self.db.parent / "home")
        if password is not None:
            env["REPLICADESK_PASSWORD"] = password
        return subprocess.run(
            [sys.executable, "-m", "core", "--db", str(self.db), *args],
            capture_output=True,
            text=True,
            input=stdin,
            env=env,
            timeout=120,
        )

    def ok(self, *args: str, **kw: Any) -> str:
        proc = self.run(*args, **kw)
        assert proc.returncode == 0, f"{args}: {proc.stderr}"
        return proc.stdout

    def json(self, *args: str, **kw: Any) -> Any:
        return json.loads(self.ok(*args, "--json", **kw))

    def fails(self, code: int, *args: str, **kw: Any) -> str:
        """Run, expect exit `code` and one `replicadesk: error:` line; return that line."""
        proc = self.run(*args, **kw)
        assert proc.returncode == code, f"{args}: exit {proc.returncode}: {proc.stderr}"
        lines = proc.stderr.strip().splitlines()
        assert lines and lines[-1].startswith("replicadesk:"), proc.stderr
        return lines[-1]


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    folder = tmp_path_factory.mktemp("cli-lab") / "lab"
    with Lab(LabOptions(vms=LAB_VMS, disk_mib=(8, 24)), folder=folder, wan=False) as state:
        yield state


def add_lab_servers(cli: Cli, lab: LabState) -> None:
    p, d = lab.production, lab.dr
    cli.ok(
        "server", "add", p.address, "--port", str(p.port), "--protocol", "http",
        "--user", lab.user, "--password-stdin", stdin="prod secret p@ss\n",
    )  # fmt: skip
    cli.ok(
        "server", "add", d.address, "--port", str(d.port), "--protocol", "http",
        "--user", lab.user, password="dr secret p@ss",
    )  # fmt: skip


def add_lab_proxies(cli: Cli, lab: LabState, repo_path: Path) -> None:
    tls = lab.client_tls
    for name, site, address, port in (
        ("prod-proxy", "production", lab.production.proxy_address, lab.production.proxy_port),
        ("dr-proxy", "dr", lab.dr.proxy_address, lab.dr.proxy_port),
    ):
        cli.ok(
            "proxy", "add", name, "--address", address, "--port", str(port), "--site", site,
            "--max-tasks", "2", "--tls-cert", tls["cert"], "--tls-key", tls["key"],
            "--tls-ca", tls["ca"],
        )  # fmt: skip
    cli.ok("repo", "add", "metadata", "--path", str(repo_path), "--proxy", "prod-proxy")


@pytest.fixture(scope="session")
def infra(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """A database with the lab's two vCenters, a proxy per site and a repository."""
    folder = tmp_path_factory.mktemp("cli-db")
    cli = Cli(folder / "replicadesk.db")
    add_lab_servers(cli, lab)
    add_lab_proxies(cli, lab, folder / "metadata")
    return cli


@pytest.fixture(scope="session")
def prod_inventory(infra: Cli, lab: LabState) -> dict[str, Any]:
    inventories: list[dict[str, Any]] = infra.json("inventory", "--server", lab.production.address)
    return inventories[0]
