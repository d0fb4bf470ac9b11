"""`replicadesk service [--once] [--json]`: the scheduler in the foreground.

Runs `core.service.scheduler.Scheduler` on the database (`--db`, before or after `service`)
until SIGTERM or Ctrl-C, which stops the jobs still running (their sessions say so) and exits;
a second signal kills. Each thing the scheduler does is one line on stdout (a job started,
finished, skipped, stopped, a retry planned), or one JSON object per line with `--json`.
`--once` starts what is due now (and the jobs chained after it), waits for those runs and exits:
0 when none failed, 1 otherwise; run from cron it keeps the same schedule state a service would.
"""

from __future__ import annotations

import argparse
import json
import sys

from core.cli.context import db_arg, db_path
from core.cli.main import CANCEL
from core.model.runs import RunStatus
from core.service.events import ServiceEvent, ServiceSink


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "service",
        help="run the scheduler: jobs on time, retries, chained jobs, backup windows",
        description="Run the job scheduler in the foreground until SIGTERM or Ctrl-C: start "
        "each job when its schedule says, retry failed VMs, start the jobs chained after one "
        "that finished, stop a job when its backup window closes. One service per database.",
    )
    p.add_argument(
        "--once",
        action="store_true",
        help="start what is due now, wait for those runs and exit (for cron)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line per event")
    db_arg(p)
    p.set_defaults(handler=run)


def _printer(as_json: bool) -> ServiceSink:
    def emit(event: ServiceEvent) -> None:
        if as_json:
            print(json.dumps(event.to_json(), ensure_ascii=False), flush=True)
        else:
            print(event.line(), flush=True)

    return emit


def run(args: argparse.Namespace) -> int:
    from core.service.scheduler import Scheduler

    path = db_path(args)
    CANCEL.message = "\nreplicadesk: stopping the service and its running jobs (again to kill)..."
    with Scheduler(path, cancel=CANCEL.event, events=_printer(args.json)) as scheduler:
        if args.once:
            sessions = scheduler.run_once()
            return 1 if any(s.status == RunStatus.FAILED for s in sessions) else 0
        if not args.json:
            print(
                f"replicadesk service: scheduling the jobs of {path} "
                f"(times in {scheduler.zone}); Ctrl-C or SIGTERM stops it",
                file=sys.stderr,
                flush=True,
            )
        scheduler.run_forever()
    return 0
