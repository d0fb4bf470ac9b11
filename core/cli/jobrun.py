"""`replicadesk job run NAME`: run a replication job now, showing its VMs as they finish.

The run is the same as the service's (`core.jobs.runner.run_job`); when the service (or another
`job run`) is running the job, this one is refused with a clear message. Ctrl-C cancels the run
cleanly: nothing of it is kept, every existing restore point stays. The exit code says how it
ended: 0 success, 3 warning, 4 failed.
"""

from __future__ import annotations

import argparse
import sys

from core.cli.context import db_arg, open_store
from core.cli.main import CANCEL, emit_json

EXIT_WARNING = 3
EXIT_FAILED = 4


def register(jsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = jsub.add_parser(
        "run",
        help="run a job now and wait for it",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("name", help="the job to run")
    run.add_argument("--vm", action="append", default=[], help="only this VM (moref; repeatable)")
    run.add_argument("--json", action="store_true", help="print the session as JSON at the end")
    db_arg(run)
    run.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    # Imported on use: the runner pulls in the vSphere adapter and the engine.
    from core.jobs.events import Event, SessionStarted, TaskFinished, TaskLog
    from core.jobs.runner import run_job
    from core.model.runs import RunStatus, Severity

    def show(event: Event) -> None:
        if args.json:
            return
        if isinstance(event, SessionStarted):
            print(f"session {event.session_id}: job {event.job!r}, {event.vms} VM(s)", flush=True)
        elif isinstance(event, TaskLog) and event.severity != Severity.INFO:
            print(f"  {event.vm or 'job'}: {event.severity}: {event.message}", flush=True)
        elif isinstance(event, TaskFinished):
            print(
                f"  {event.vm}: {event.status}, processed {event.processed_bytes / 2**20:,.1f} MiB,"
                f" transferred {event.transferred_bytes / 2**20:,.1f} MiB",
                flush=True,
            )

    with open_store(args) as store:
        session = run_job(
            store, args.name, only_vms=args.vm or None, cancel=CANCEL.event, events=show
        )
        if args.json:
            from dataclasses import asdict

            doc = asdict(session)
            doc["tasks"] = [asdict(t) for t in store.sessions.tasks(session.id)]
            emit_json(doc)
        else:
            s = session.stats
            print(
                f"session {session.id}: {session.status}: processed "
                f"{s.processed_bytes / 2**20:,.1f} MiB, read {s.read_bytes / 2**20:,.1f} MiB, "
                f"transferred {s.transferred_bytes / 2**20:,.1f} MiB"
            )
            for entry in session.log:
                if entry.severity != Severity.INFO:
                    print(f"  {entry.severity}: {entry.message}", file=sys.stderr)
    if session.status == RunStatus.FAILED:
        return EXIT_FAILED
    return EXIT_WARNING if session.status == RunStatus.WARNING else 0
