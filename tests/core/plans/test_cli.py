"""The plan and estimate commands end to end on the lab, through `replicadesk` with --json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.cli.main import main
from tests.core.plans.conftest import PlanLab


def cli(capsys: pytest.CaptureFixture[str], planlab: PlanLab, *argv: str) -> tuple[int, Any]:
    code = main([*argv, "--db", str(planlab.store.path), "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def test_plan_commands(
    planlab: PlanLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan_file = tmp_path / "core.yaml"
    plan_file.write_text(
        "name: CLI plan\n"
        "items:\n"
        "  - {vm: dc01, priority: 1, delay_after: 0.5, heartbeat_timeout: 20}\n"
        "  - {vm: 'db [primary]', priority: 2, delay_after: 0}\n"
        "  - {vm: app-02, priority: 2, delay_after: 0, depends_on: ['db [primary]']}\n",
        encoding="utf-8",
    )
    code, doc = cli(capsys, planlab, "plan", "create", str(plan_file))
    assert code == 0 and doc["name"] == "CLI plan"
    code, doc = cli(capsys, planlab, "plan", "edit", "CLI plan", "--set", "app-02:delay_after=2")
    assert code == 0 and doc["items"][2]["delay_after"] == 2.0
    code, report = cli(capsys, planlab, "plan", "check", "CLI plan")
    assert not {p["check"] for p in report["problems"]} & {"rpo", "network", "replica"}
    code, session = cli(capsys, planlab, "plan", "run", "CLI plan", "--reip-timeout", "30")
    assert code == 0 and session["status"] == "success"
    kinds = [(s["kind"], s["item"]) for s in session["steps"]]
    assert kinds.index(("up", "db [primary]")) < kinds.index(("start", "app-02"))
    code, session = cli(capsys, planlab, "plan", "undo", "CLI plan")
    assert code == 0 and session["action"] == "undo"
    code, sessions = cli(capsys, planlab, "plan", "sessions", "CLI plan")
    assert [s["action"] for s in sessions] == ["undo", "run"]
    code, made = cli(capsys, planlab, "plan", "auto", "Auto CLI", "--vm", "web-01", "--vm", "dc02")
    assert [i["vm"] for i in made["plan"]["items"]] == ["dc02", "web-01"]
    code, _ = cli(capsys, planlab, "plan", "delete", "CLI plan")
    assert code == 0 and "CLI plan" not in planlab.store.plans.names()

    # A bad plan file is refused with the key path and the reason.
    plan_file.write_text(
        "name: Loop\nitems:\n  - {vm: a, depends_on: [b]}\n  - {vm: b, depends_on: [a]}\n",
        encoding="utf-8",
    )
    assert main(["plan", "create", str(plan_file), "--db", str(planlab.store.path)]) == 40
    assert "dependency loop: 'a' -> 'b' -> 'a'" in capsys.readouterr().err


def test_estimate_commands(planlab: PlanLab, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = cli(
        capsys,
        planlab,
        "estimate",
        "bandwidth",
        "--job",
        planlab.job,
        "--link-mbit",
        "100",
        "--throttle",
        "20@8-18",
    )
    assert code == 0 and doc[0]["sessions"] >= 2 and doc[0]["first_copy_bytes"] > 0
    code, doc = cli(capsys, planlab, "estimate", "rpo")
    assert code == 0 and doc == []
    replica = planlab.replicas["dc01"].replica_name
    code = main(["estimate", "backup-from-replica", replica, "--db", str(planlab.store.path)])
    assert code == 40
    assert "changed block tracking (CBT) cannot be used" in capsys.readouterr().err
