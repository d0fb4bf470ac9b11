"""`replicadesk service` as a script or cron runs it: `--once` in a subprocess runs what is due
and exits, one service per database, and SIGTERM stops the foreground service cleanly."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace

from core.errors import ServiceRunningError
from core.model.runs import RunStatus, RunTrigger
from core.model.schedule import IntervalUnit, JobSchedule, Periodic
from core.service.scheduler import Scheduler
from core.store.store import Store
from tests.core.service.conftest import state


def service(store: Store, *args: str) -> list[str]:
    return [sys.executable, "-m", "core", "--db", str(store.path), "service", *args]


def test_service_once_runs_what_is_due_and_exits(store: Store, add_job: Callable[..., str]) -> None:
    job = add_job("cron job", ["dc01"], JobSchedule(Periodic(1, IntervalUnit.HOURS)))
    idle = add_job("not yet", ["web 02 (canary)"], JobSchedule(Periodic(1, IntervalUnit.HOURS)))
    now = dt.datetime.now(dt.UTC)
    # What a service running earlier left: this job's slot has passed, the other's has not.
    store.jobs.set_schedule_state(
        replace(state(store, job), next_run=now - dt.timedelta(minutes=3))
    )
    later = now + dt.timedelta(hours=1)
    store.jobs.set_schedule_state(replace(state(store, idle), next_run=later))

    proc = subprocess.run(
        service(store, "--once", "--json"), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(e["event"], e["job"]) for e in lines] == [("started", job), ("finished", job)]
    assert lines[1]["status"] in ("success", "warning")
    (run,) = store.sessions.list(job)
    assert run.trigger == RunTrigger.SCHEDULE and run.status != RunStatus.FAILED
    assert lines[1]["session"] == run.id
    assert state(store, job).next_run > now  # type: ignore[operator]
    assert not store.sessions.list(idle)
    assert state(store, idle).next_run == later

    # Nothing due now: it says nothing and exits at once.
    again = subprocess.run(service(store, "--once"), capture_output=True, text=True, timeout=60)
    assert (again.returncode, again.stdout) == (0, "")


def test_one_service_per_database_and_sigterm_stops_it(store: Store) -> None:
    with Scheduler(store.path) as running:
        assert running.running() == []
        proc = subprocess.run(service(store, "--once"), capture_output=True, text=True, timeout=60)
        assert proc.returncode == ServiceRunningError.exit_code
        assert "Another ReplicaDesk service already schedules the jobs of" in proc.stderr

    foreground = subprocess.Popen(
        service(store), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert foreground.stderr is not None
        banner = foreground.stderr.readline()
        assert "replicadesk service: scheduling the jobs of" in banner
        foreground.send_signal(signal.SIGTERM)
        _, err = foreground.communicate(timeout=15)
    finally:
        foreground.kill()
        foreground.wait()
    assert foreground.returncode == 0, err
    assert "stopping the service" in err
