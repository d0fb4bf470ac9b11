"""`replicadesk replica failover|planned-failover|undo-failover|permanent-failover|failback|
commit-failback|undo-failback|test-failover|test-cleanup ID`: the replica operations.

Each runs `core.failover` once, as a session of the replica's job, and prints how it ended with
its log (or, with `--json`, the session, the replica, its warnings and the VM it brought up:
the replica's, the test VM's or the failback target's moref). Nothing asks for
confirmation: the console asks before it calls these. Exit codes: 0 done, 3 done with warnings
(e.g. Re-IP failed: the failover stands), and an error's own code when the operation was refused
or failed (everything it had changed is put back).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from core.cli.context import db_arg, open_store, when
from core.cli.main import emit_json, positive_int

if TYPE_CHECKING:
    from core.failover import failback
    from core.failover.session import OperationResult
    from core.store.store import Store

EXIT_WARNING = 3

_ACTIONS = {
    "failover": "failover now: revert the replica to a restore point and power it on",
    "planned-failover": "incremental run, source guest shutdown, final run, failover: no data lost",
    "undo-failover": "power the replica off and discard what changed since the failover",
    "permanent-failover": "the failed-over replica becomes production; its points are removed",
    "failback": "send the replica's changes back to the original VM, to the original VM "
    "restored in another place, or to a new VM",
    "commit-failback": "the failback target is production again; the replica returns to Ready",
    "undo-failback": "switch back to the failed-over replica",
    "test-failover": "bring a copy of the replica up on an isolated network",
    "test-cleanup": "remove everything a test failover made",
}


def register(rsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for action, text in _ACTIONS.items():
        p = rsub.add_parser(action, help=text, description=f"{text}. {__doc__}")
        p.add_argument("id", type=positive_int, help="the replica (`replicadesk replica list`)")
        if action in ("failover", "test-failover"):
            p.add_argument("--point", type=positive_int, help="restore point (default latest)")
        if action in ("failover", "planned-failover"):
            p.add_argument(
                "--reip-timeout",
                type=float,
                default=300.0,
                help="seconds to wait for the guest's new addresses (300)",
            )
        if action in ("planned-failover", "failback"):
            p.add_argument(
                "--shutdown-timeout",
                type=float,
                default=300.0,
                help="seconds the guest has to shut down before it is powered off (300)",
            )
        if action == "failback":
            p.add_argument(
                "--to",
                choices=("original", "restored", "new"),
                help="original: the source VM itself (default); restored: the original VM "
                "restored in another place (--vm, or found by its instance UUID); new: a new "
                "VM (--new-name, --host, --datastore)",
            )
            p.add_argument("--vm", help="the restored VM (moref) for --to restored")
            p.add_argument("--new-name", help="fail back to a new VM of this name")
            p.add_argument("--host", help="the new VM's host (moref)")
            p.add_argument("--datastore", help="the new VM's datastore (moref)")
            p.add_argument("--folder", default="", help="the new VM's folder (moref)")
            p.add_argument("--pool", default="", help="the new VM's resource pool (moref)")
        p.add_argument("--json", action="store_true", help="print JSON")
        db_arg(p)
        p.set_defaults(handler=cmd_operation, action=action)


def _run(store: Store, args: argparse.Namespace) -> OperationResult:
    from core.failover import drill, failback, operations

    a, rid = args.action, args.id
    if a == "failover":
        return operations.failover(store, rid, args.point, reip_timeout=args.reip_timeout)
    if a == "planned-failover":
        return operations.planned_failover(
            store, rid, shutdown_timeout=args.shutdown_timeout, reip_timeout=args.reip_timeout
        )
    if a == "undo-failover":
        return operations.undo_failover(store, rid)
    if a == "permanent-failover":
        return operations.permanent_failover(store, rid)
    if a == "failback":
        return failback.failback(
            store, rid, to=_failback_target(args), shutdown_timeout=args.shutdown_timeout
        )
    if a == "commit-failback":
        return failback.commit_failback(store, rid)
    if a == "undo-failback":
        return failback.undo_failback(store, rid)
    if a == "test-failover":
        return drill.start_test_failover(store, rid, args.point)
    return drill.cleanup_test_failover(store, rid)


def _failback_target(
    args: argparse.Namespace,
) -> failback.NewLocation | failback.Restored | None:
    from core.errors import UsageError
    from core.failover import failback

    new = bool(args.new_name or args.host or args.datastore)
    to = args.to or ("new" if new else "original")
    if to == "new":
        if args.vm or not (args.new_name and args.host and args.datastore):
            raise UsageError("a failback to a new VM needs --new-name, --host and --datastore")
        return failback.NewLocation(
            args.new_name, args.host, args.datastore, args.folder, args.pool
        )
    if new:
        raise UsageError(f"--new-name, --host and --datastore are for --to new, not --to {to}")
    if to == "restored":
        return failback.Restored(args.vm or "")
    if args.vm:
        raise UsageError("--vm names the restored VM: use it with --to restored")
    return None


def cmd_operation(args: argparse.Namespace) -> int:
    from core.cli.history import log_doc, replica_doc, session_doc
    from core.model.runs import RunStatus

    with open_store(args) as store:
        result = _run(store, args)
        session = store.sessions.get(result.session_id)
        tasks = store.sessions.tasks(session.id)
    log = [*session.log, *(e for t in tasks for e in t.log)]
    if args.json:
        emit_json(
            {
                "session": session_doc(session),
                "replica": replica_doc(result.replica),
                "warnings": list(result.warnings),
                "vm": result.vm or None,
                "log": log_doc(tuple(log)),
            }
        )
    else:
        r = result.replica
        print(
            f'replica {r.id} "{r.replica_name}": {r.state} '
            f"({args.action}, session {session.id}: {session.status})"
        )
        for e in log:
            mark = {"warning": "!", "error": "X"}.get(str(e.severity), " ")
            print(f"  {mark} {when(e.time)}  {e.message}")
    return EXIT_WARNING if result.status == RunStatus.WARNING else 0
