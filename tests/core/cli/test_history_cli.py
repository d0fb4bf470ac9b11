"""`replicadesk session list|show` and `replicadesk replica list|show` over a real database.

The sessions and replicas are recorded through the store as a run records them (the runner is
tested on its own); the commands only read them, so no vSphere server is needed here.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from core.errors import NotFoundError
from core.model.replicas import DiskPoint
from core.model.runs import Bottleneck, RunStatus, RunTrigger, Severity, TransferStats
from core.store.store import Store
from tests.core.cli.conftest import Cli

MIB = 1 << 20
ODD = "db #2 & replica"


def record(db: Path) -> tuple[int, int]:
    """One finished run of a job over two VMs, and the replica of one with two points."""
    t0 = dt.datetime(2026, 3, 1, 22, 0, tzinfo=dt.UTC)
    with Store.open(db) as store:
        s = store.sessions.start("SQL tier", RunTrigger.SCHEDULE, at=t0)
        store.sessions.log(s.id, Severity.INFO, "Job started: 2 VMs", at=t0)
        a = store.sessions.start_task(s.id, "vm-90", ODD, at=t0)
        store.sessions.log(s.id, Severity.INFO, "Snapshot created", task_id=a.id, at=t0)
        store.sessions.finish_task(
            a.id,
            RunStatus.SUCCESS,
            TransferStats(64 * MIB, 8 * MIB, 3 * MIB, 4.0, Bottleneck.NETWORK),
            at=t0 + dt.timedelta(seconds=4),
        )
        b = store.sessions.start_task(s.id, "vm-96", "50% batch", at=t0)
        store.sessions.log(
            s.id, Severity.WARNING, 'NIC 4000 on "Prod Backup" left unmapped', task_id=b.id
        )
        store.sessions.finish_task(b.id, RunStatus.WARNING, TransferStats(32 * MIB, 32 * MIB))
        store.sessions.finish(
            s.id,
            RunStatus.WARNING,
            TransferStats(96 * MIB, 40 * MIB, 3 * MIB, 5.0, Bottleneck.NETWORK),
            at=t0 + dt.timedelta(seconds=5),
        )
        r = store.replicas.ensure("SQL tier", "127.0.0.1", "vm-90", ODD, ODD + "_replica", "dr")
        store.replicas.set_replica_vm(r.id, "vm-17", "host-21", "esx-d01.dr.lab")
        store.replicas.add_point(r.id, [DiskPoint(2000, 8 * MIB, "52 1a/3")], session_id=s.id)
        store.replicas.add_point(r.id, [DiskPoint(2000, 8 * MIB, None)], snapshot_moref="snap-9")
        return s.id, r.id


def test_sessions_and_replicas(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "rd.db")
    assert cli.json("session", "list") == [] and cli.json("replica", "list") == []
    session_id, replica_id = record(cli.db)

    (s,) = cli.json("session", "list", "--job", "SQL tier")
    assert (s["id"], s["status"], s["trigger"]) == (session_id, "warning", "schedule")
    assert s["stats"]["bottleneck"] == "Network" and s["stats"]["transferred_bytes"] == 3 * MIB
    assert cli.json("session", "list", "--job", "other") == []
    assert "SQL tier" in cli.ok("session", "list")

    shown = cli.json("session", "show", str(session_id))
    assert [t["vm_name"] for t in shown["tasks"]] == [ODD, "50% batch"]
    assert shown["tasks"][0]["stats"]["rate"] == 16 * MIB
    assert shown["tasks"][1]["log"][0]["severity"] == "warning"
    assert shown["log"][0]["message"] == "Job started: 2 VMs"
    text = cli.ok("session", "show", str(session_id))
    assert f'vm "{ODD}" [vm-90]: success' in text
    assert "bottleneck Network" in text and "left unmapped" in text

    (r,) = cli.json("replica", "list", "--job", "SQL tier")
    assert (r["id"], r["vm_name"], r["restore_points"]) == (replica_id, ODD, 2)
    detail = cli.json("replica", "show", str(replica_id))
    points = detail["restore_points"]
    assert [p["number"] for p in points] == [1, 2]
    assert points[0]["disks"] == [
        {"disk_key": 2000, "capacity_bytes": 8 * MIB, "change_id": "52 1a/3"}
    ]
    assert points[1]["snapshot_moref"] == "snap-9"
    text = cli.ok("replica", "show", str(replica_id))
    assert "change ID 52 1a/3" in text and "(no CBT: digests)" in text
    assert f"{ODD}_replica" in cli.ok("replica", "list")

    line = cli.fails(NotFoundError.exit_code, "session", "show", "999")
    assert "There is no session 999" in line
    line = cli.fails(NotFoundError.exit_code, "replica", "show", "999")
    assert "There is no replica 999" in line


def test_help_of_every_new_command(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "rd.db")
    for args in (
        ["server", "add"], ["server", "list"], ["server", "remove"],
        ["proxy", "add"], ["proxy", "list"], ["proxy", "remove"],
        ["repo", "add"], ["repo", "list"], ["repo", "remove"],
        ["inventory"],
        ["job", "create"], ["job", "edit"], ["job", "list"], ["job", "show"], ["job", "delete"],
        ["session", "list"], ["session", "show"], ["replica", "list"], ["replica", "show"],
    ):  # fmt: skip
        assert "usage: replicadesk" in cli.ok(*args, "--help")
    # --db works after the subcommand too, and the default follows $REPLICADESK_HOME.
    other = tmp_path / "other.db"
    proc = cli.run("server", "list", "--db", str(other))
    assert proc.returncode == 0 and other.exists()
    cli.ok("repo", "list")
    assert not (tmp_path / "home").exists()


def test_default_database_is_under_replicadesk_home(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "REPLICADESK_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "core", "job", "list"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "home" / "replicadesk.db").is_file()
