"""`replicadesk job run` as an administrator runs it, against the real lab."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from core.lab.lab import LabState
from core.lab.register import lab_job
from core.store.store import Store


def rd(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core", "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_job_run_prints_each_vm_and_exits_by_status(
    lab: LabState, store: Store, tmp_path: Path
) -> None:
    job = lab_job(lab, "CLI run", ["web 02 (canary)", "Zürich fileserver [fs]"])
    store.jobs.add(job)
    db = tmp_path / "replicadesk.db"
    first = rd(db, "job", "run", job.name)
    assert first.returncode == 0, first.stderr
    assert "web 02 (canary): success" in first.stdout
    assert "Zürich fileserver [fs]: success" in first.stdout
    second = rd(db, "job", "run", job.name, "--json")
    assert second.returncode == 0, second.stderr
    doc = json.loads(second.stdout)
    assert doc["status"] == "success" and len(doc["tasks"]) == 2
    shown = json.loads(rd(db, "replica", "list", "--json").stdout)
    assert {r["vm_name"] for r in shown} == {"web 02 (canary)", "Zürich fileserver [fs]"}
    missing = rd(db, "job", "run", "no such job")
    assert missing.returncode != 0 and "no such job" in missing.stderr
