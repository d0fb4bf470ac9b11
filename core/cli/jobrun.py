"""`replicadesk job run NAME`: run a replication job now, showing its VMs as they finish.

The run is the same as the service's (`core.jobs.runner.run_job`); when the service (or another
`job run`) is running the job, this one is refused with a clear message. Ctrl-C cancels the run
cleanly: nothing of it is kept, every existing restore point stays. The exit code says how it
ended: 0 success, 3 warning, 4 failed.

`--events` prints the runner's events instead, one JSON line each as it happens
(`core.jobs.events.event_to_json`), and nothing else on stdout; an error of core's that ends the
command is its last line (`RunError`), and goes to stderr as usual. The console runs its jobs
this way in a child process. SIGTERM cancels like Ctrl-C; the run is cancelled the same way when
the reader goes away (stdout closed) or the process that started it dies (it sends SIGTERM:
`core.procutil.die_with_parent`).
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import TYPE_CHECKING

from core.cli.context import db_arg, open_store
from core.cli.main import CANCEL, emit_json
from core.errors import ReplicaDeskError

if TYPE_CHECKING:
    from core.jobs.events import Record

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
    output = run.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the session as JSON at the end")
    output.add_argument(
        "--events",
        action="store_true",
        help="print the run's events as JSON lines as they happen (what the console reads)",
    )
    db_arg(run)
    run.set_defaults(handler=cmd_run)


class EventLines:
    """The `--events` sink: one line per event, whole and flushed, whichever VM thread calls."""

    def __init__(self, cancel: threading.Event) -> None:
        self._lock = threading.Lock()
        self._cancel = cancel
        self._closed = False

    def __call__(self, record: Record) -> None:
        from core.jobs.events import event_to_json

        line = event_to_json(record) + "\n"
        with self._lock:
            if self._closed:
                return
            try:
                sys.stdout.write(line)
                sys.stdout.flush()
            except OSError:
                # The reader is gone (the console died): nobody watches, stop as on Ctrl-C.
                self._closed = True
                self._cancel.set()


def cmd_run(args: argparse.Namespace) -> int:
    if not args.events:
        return _run(args, None)
    from core.procutil import die_with_parent

    die_with_parent()
    lines = EventLines(CANCEL.event)
    try:
        return _run(args, lines)
    except ReplicaDeskError as e:
        from core.jobs.events import RunError

        lines(RunError(str(e), type(e).__name__, e.exit_code))
        raise


def _run(args: argparse.Namespace, lines: EventLines | None) -> int:
    # Imported on use: the runner pulls in the vSphere adapter and the engine.
    from core.jobs.events import Event, SessionStarted, TaskFinished, TaskLog
    from core.jobs.runner import run_job
    from core.model.runs import RunStatus, Severity

    def show(event: Event) -> None:
        if lines is not None:
            lines(event)
            return
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
        elif lines is None:  # with --events, SessionFinished said it
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
