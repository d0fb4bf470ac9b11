"""`replicadesk job run` as an administrator runs it, against the real lab."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from core.jobs import events as ev
from core.lab.lab import LabState
from core.lab.register import lab_job
from core.model.runs import RunStatus
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


def test_job_run_events_are_json_lines_and_sigterm_cancels_cleanly(
    lab: LabState, store: Store, tmp_path: Path
) -> None:
    """What the console reads: every stdout line an event, SessionStarted first and
    SessionFinished last; the first SIGTERM is a clean cancel (exit 4, the run failed)."""
    job = lab_job(lab, "Events", ["app+cache", "50% batch"])
    store.jobs.add(job)
    db = tmp_path / "replicadesk.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "core", "--db", str(db), "job", "run", job.name, "--events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    seen: list[ev.Record] = []
    signalled = False
    for line in proc.stdout:
        seen.append(ev.event_from_json(line))
        if isinstance(seen[-1], ev.TaskProgress) and not signalled:
            proc.send_signal(signal.SIGTERM)  # a disk is being copied
            signalled = True
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, err
    assert isinstance(seen[0], ev.SessionStarted) and seen[0].vms == 2
    end = seen[-1]
    assert isinstance(end, ev.SessionFinished) and end.status == RunStatus.FAILED
    stopped = store.sessions.get(end.session_id)
    assert any("cancel" in e.message for e in stopped.log)
    assert b"cancelling" in err
    # A first run stopped: no VM has a restore point.
    assert all(store.replicas.points(r.id) == [] for r in store.replicas.list(job.name))

    refused = rd(db, "job", "run", "no such job", "--events")
    assert refused.returncode == 50
    [line] = refused.stdout.splitlines()
    error = ev.event_from_json(line)
    assert isinstance(error, ev.RunError) and error.kind == "NotFoundError"
    assert error.exit_code == 50 and error.message in refused.stderr
