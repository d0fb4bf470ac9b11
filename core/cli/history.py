"""`replicadesk session list|show` and `replicadesk replica list|show`: what the runs did.

Sessions are job runs (newest first) with their per-VM tasks, statistics (processed, read and
transferred bytes, duration, rate, bottleneck) and logs; replicas are the copies the runs made,
with their restore points and each point's per-disk change IDs. Read from the store only: no
vSphere server is contacted.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, cast

from core.cli.context import db_arg, open_store, size, table, when
from core.cli.main import emit_json, positive_int

if TYPE_CHECKING:
    from core.model.replicas import Replica, RestorePoint
    from core.model.runs import LogEntry, Session, TaskSession, TransferStats


def register(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    """Register `session` and `replica`; returns the `replica` group (core.cli.failover adds
    the replica operations to it)."""
    session = sub.add_parser("session", help="job runs: their VMs, statistics and logs")
    ssub = session.add_subparsers(dest="session_command", metavar="ACTION", required=True)
    ls = ssub.add_parser("list", help="the latest sessions, newest first")
    ls.add_argument("--job", help="only this job's sessions")
    ls.add_argument("--limit", type=positive_int, default=50, help="at most this many (50)")
    ls.add_argument("--json", action="store_true", help="print JSON")
    db_arg(ls)
    ls.set_defaults(handler=cmd_session_list)
    show = ssub.add_parser("show", help="one session: per-VM tasks, statistics, bottleneck, log")
    show.add_argument("id", type=positive_int)
    show.add_argument("--json", action="store_true", help="print JSON")
    db_arg(show)
    show.set_defaults(handler=cmd_session_show)

    replica = sub.add_parser("replica", help="replicas and their restore points")
    rsub = replica.add_subparsers(dest="replica_command", metavar="ACTION", required=True)
    ls = rsub.add_parser("list", help="the replicas, by job and VM")
    ls.add_argument("--job", help="only this job's replicas")
    ls.add_argument(
        "--all", action="store_true", help="also those permanently failed over (gone from the list)"
    )
    ls.add_argument("--json", action="store_true", help="print JSON")
    db_arg(ls)
    ls.set_defaults(handler=cmd_replica_list)
    show = rsub.add_parser("show", help="one replica: its restore points and disks' change IDs")
    show.add_argument("id", type=positive_int)
    show.add_argument("--json", action="store_true", help="print JSON")
    db_arg(show)
    show.set_defaults(handler=cmd_replica_show)
    return cast("argparse._SubParsersAction", rsub)  # type: ignore[type-arg]


# --- sessions ---------------------------------------------------------------------------------


def stats_doc(s: TransferStats) -> dict[str, Any]:
    return {
        "processed_bytes": s.processed_bytes,
        "read_bytes": s.read_bytes,
        "transferred_bytes": s.transferred_bytes,
        "duration": s.duration,
        "rate": s.rate,
        "bottleneck": None if s.bottleneck is None else str(s.bottleneck),
    }


def log_doc(log: tuple[LogEntry, ...]) -> list[dict[str, Any]]:
    return [{"time": e.time, "severity": str(e.severity), "message": e.message} for e in log]


def session_doc(s: Session) -> dict[str, Any]:
    return {
        "id": s.id,
        "job": s.job,
        "trigger": str(s.trigger),
        "attempt": s.attempt,
        "status": str(s.status),
        "started": s.started,
        "ended": s.ended,
        "stats": stats_doc(s.stats),
    }


def task_doc(t: TaskSession) -> dict[str, Any]:
    return {
        "id": t.id,
        "vm_moref": t.vm_moref,
        "vm_name": t.vm_name,
        "status": str(t.status),
        "started": t.started,
        "ended": t.ended,
        "stats": stats_doc(t.stats),
        "log": log_doc(t.log),
    }


def _stats_text(s: TransferStats) -> str:
    bottleneck = f", bottleneck {s.bottleneck}" if s.bottleneck else ""
    return (
        f"processed {size(s.processed_bytes)}, read {size(s.read_bytes)}, transferred "
        f"{size(s.transferred_bytes)}, {s.duration:.1f} s at {size(s.rate)}/s{bottleneck}"
    )


def cmd_session_list(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        sessions = store.sessions.list(args.job, limit=args.limit)
    if args.json:
        emit_json([session_doc(s) for s in sessions])
        return 0
    if not sessions:
        print("no sessions" + (f' of job "{args.job}"' if args.job else ""))
        return 0
    table(
        [
            "ID",
            "JOB",
            "TRIGGER",
            "STATUS",
            "STARTED",
            "DURATION",
            "PROCESSED",
            "SENT",
            "BOTTLENECK",
        ],
        [
            [
                str(s.id),
                s.job,
                str(s.trigger) + (f" #{s.attempt}" if s.attempt else ""),
                str(s.status),
                when(s.started),
                f"{s.stats.duration:.1f} s",
                size(s.stats.processed_bytes),
                size(s.stats.transferred_bytes),
                str(s.stats.bottleneck or "-"),
            ]
            for s in sessions
        ],
    )
    return 0


def _print_log(log: tuple[LogEntry, ...], indent: str) -> None:
    for e in log:
        mark = {"info": " ", "warning": "!", "error": "X"}.get(str(e.severity), " ")
        print(f"{indent}{mark} {when(e.time)}  {e.message}")


def cmd_session_show(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        session = store.sessions.get(args.id)
        tasks = store.sessions.tasks(session.id)
    if args.json:
        emit_json(
            {
                **session_doc(session),
                "log": log_doc(session.log),
                "tasks": [task_doc(t) for t in tasks],
            }
        )
        return 0
    s = session
    attempt = f", retry {s.attempt}" if s.attempt else ""
    print(f'session {s.id} of job "{s.job}": {s.status} ({s.trigger}{attempt})')
    print(f"  started {when(s.started)}, ended {when(s.ended)}")
    print(f"  {_stats_text(s.stats)}")
    _print_log(s.log, "  ")
    for t in tasks:
        print(f'  vm "{t.vm_name}" [{t.vm_moref}]: {t.status}')
        print(f"    {when(t.started)} to {when(t.ended)}; {_stats_text(t.stats)}")
        _print_log(t.log, "    ")
    return 0


# --- replicas ---------------------------------------------------------------------------------


def replica_doc(r: Replica) -> dict[str, Any]:
    return {
        "id": r.id,
        "job": r.job,
        "source_server": r.source_server,
        "vm_moref": r.vm_moref,
        "vm_name": r.vm_name,
        "replica_name": r.replica_name,
        "target_server": r.target_server,
        "state": str(r.state),
        "created": r.created,
        "updated": r.updated,
        "replica_moref": r.replica_moref,
        "target_host_moref": r.target_host_moref,
        "target_host_name": r.target_host_name,
    }


def point_doc(p: RestorePoint) -> dict[str, Any]:
    return {
        "number": p.number,
        "created": p.created,
        "snapshot_moref": p.snapshot_moref,
        "session_id": p.session_id,
        "disks": [
            {"disk_key": d.disk_key, "capacity_bytes": d.capacity_bytes, "change_id": d.change_id}
            for d in p.disks
        ],
    }


def cmd_replica_list(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        replicas = store.replicas.list(args.job, include_permanent=args.all)
        points = {r.id: store.replicas.points(r.id) for r in replicas}
    if args.json:
        emit_json(
            [
                {
                    **replica_doc(r),
                    "restore_points": len(points[r.id]),
                    "latest_point": points[r.id][-1].created if points[r.id] else None,
                }
                for r in replicas
            ]
        )
        return 0
    if not replicas:
        print("no replicas" + (f' of job "{args.job}"' if args.job else ""))
        return 0
    table(
        ["ID", "JOB", "VM", "REPLICA", "TARGET", "HOST", "STATE", "POINTS", "LATEST"],
        [
            [
                str(r.id),
                r.job,
                r.vm_name,
                r.replica_name,
                r.target_server,
                r.target_host_name or "-",
                str(r.state),
                str(len(points[r.id])),
                when(points[r.id][-1].created) if points[r.id] else "-",
            ]
            for r in replicas
        ],
    )
    return 0


def cmd_replica_show(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        replica = store.replicas.get(args.id)
        points = store.replicas.points(replica.id)
    if args.json:
        emit_json({**replica_doc(replica), "restore_points": [point_doc(p) for p in points]})
        return 0
    r = replica
    print(f'replica {r.id} "{r.replica_name}" of vm "{r.vm_name}" [{r.vm_moref}]: {r.state}')
    print(f'  job "{r.job}", from {r.source_server} to {r.target_server}')
    vm = f"[{r.replica_moref}] on host {r.target_host_name} [{r.target_host_moref}]"
    print(f"  replica VM {vm if r.replica_moref else '(not created yet)'}")
    print(f"  {len(points)} restore point(s), oldest first")
    for p in points:
        snap = f", snapshot [{p.snapshot_moref}]" if p.snapshot_moref else ""
        session = f", session {p.session_id}" if p.session_id is not None else ""
        print(f"    point {p.number}  {when(p.created)}{snap}{session}")
        for d in p.disks:
            change = d.change_id if d.change_id is not None else "(no CBT: digests)"
            print(f"      disk {d.disk_key}  {size(d.capacity_bytes)}  change ID {change}")
    return 0
