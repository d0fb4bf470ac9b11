"""`replicadesk plan create|edit|show|list|check|run|undo|test|delete|auto|sessions`.

Failover plans. A plan comes from a plan file (YAML or JSON, core.model.plans) or from one-click
planning (`plan auto --job J | --folder PATH | --vm NAME...`); `edit` replaces it from a file or
changes items in place (`--set "dc01:priority=1"`, `--set "web-01:depends_on=app-01,app-02"`).
`check` is the readiness report (exit 3 when a problem is found). `run` fails the plan over (`--at`
a point in time), `undo` brings it back, `test` runs it on isolated networks and cleans up
(`--keep`, then `test --cleanup`). Each prints the plan session's steps (or, with `--json`, the
session). Exit codes: 0 done, 3 done with warnings, 4 failed items, an error's own code when
refused.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cli.context import db_arg, open_store, table, when
from core.cli.main import emit_json

if TYPE_CHECKING:
    from core.model.plans import FailoverPlan, PlanSession
    from core.plans.readiness import Readiness

EXIT_WARNING = 3
EXIT_FAILED = 4


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    plan = sub.add_parser("plan", help="failover plans: VMs brought up together, in order")
    psub = plan.add_subparsers(dest="plan_command", metavar="ACTION", required=True)

    def add(name: str, help_text: str, handler: Any, named: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = psub.add_parser(
            name, help=help_text, description=f"{help_text}. {__doc__}"
        )
        if named:
            p.add_argument("name", help="the plan's name")
        p.add_argument("--json", action="store_true", help="print JSON")
        db_arg(p)
        p.set_defaults(handler=handler)
        return p

    p = add("create", "add a plan from a plan file", cmd_create, named=False)
    p.add_argument("file", type=Path, help="the plan file (.yaml, .yml or .json)")
    p = add("edit", "replace a plan from a file, or change some of its items", cmd_edit)
    p.add_argument("--file", type=Path, help="the new plan file")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="ITEM:FIELD=VALUE",
        help="change one field of one item (priority, order, delay_after, depends_on, "
        "wait_heartbeat, heartbeat_timeout); repeatable",
    )
    p.add_argument("--max-parallel", type=int, help="VMs starting at once (1-10)")
    p.add_argument("--description", help="the plan's description")
    p = add("show", "a plan: its groups, items and scripts", cmd_show)
    p.add_argument("--format", choices=("yaml", "json"), help="print the plan file instead")
    add("list", "the plans", cmd_list, named=False)
    p = add("check", "the readiness report: can it run now, and how long will it take", cmd_check)
    p = add("run", "fail the plan's VMs over, group by group", cmd_run)
    p.add_argument("--at", help="point in time (ISO 8601, e.g. 2026-03-02T14:00+01:00)")
    p.add_argument(
        "--reip-timeout", type=float, default=300.0, help="seconds to wait for re-IP (300)"
    )
    add("undo", "undo the failover of the plan's VMs, in batches", cmd_undo)
    p = add("test", "test failover of the whole plan on isolated networks, then clean up", cmd_test)
    p.add_argument("--keep", action="store_true", help="leave the test VMs running")
    p.add_argument("--cleanup", action="store_true", help="clean up a kept test")
    p.add_argument("--at", help="point in time (ISO 8601)")
    add("delete", "remove a plan (its sessions stay)", cmd_delete)
    p = add("sessions", "the plan's sessions, or one with its steps", cmd_sessions)
    p.add_argument("--id", type=int, help="one session, with its steps")
    p = add("auto", "one-click planning: a plan from a job, a folder or VMs", cmd_auto)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--job", help="every replicated VM of this job")
    src.add_argument("--folder", help="every replicated VM in this production folder (a/b)")
    src.add_argument("--vm", action="append", help="a VM (name or moref); repeatable")
    p.add_argument("--delay", type=float, default=60.0, help="delay after each VM (60 s)")
    p.add_argument("--save", action="store_true", help="store the plan (else only show it)")


def _time(text: str | None) -> dt.datetime | None:
    from core.errors import UsageError

    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a time like 2026-03-02T14:00+01:00") from None
    return value if value.tzinfo else value.astimezone()  # local time when no zone is given


def plan_doc(plan: FailoverPlan) -> dict[str, Any]:
    from core.model.plans import plan_to_document

    return plan_to_document(plan)


def session_doc(s: PlanSession) -> dict[str, Any]:
    return {
        "id": s.id,
        "plan": s.plan,
        "action": str(s.action),
        "status": str(s.status),
        "started": s.started.isoformat(),
        "ended": s.ended.isoformat() if s.ended else None,
        "point_in_time": s.point_in_time.isoformat() if s.point_in_time else None,
        "steps": [
            {
                "time": x.time.isoformat(),
                "kind": str(x.kind),
                "item": x.item,
                "replica_id": x.replica_id,
                "severity": str(x.severity),
                "message": x.message,
                "op_session": x.op_session,
                "seconds": x.seconds,
            }
            for x in s.steps
        ],
    }


def _print_session(s: PlanSession) -> None:
    print(f"plan {s.plan!r}: {s.action} session {s.id}: {s.status}")
    for x in s.steps:
        mark = {"warning": "!", "error": "X"}.get(str(x.severity), " ")
        item = f"[{x.item}] " if x.item else ""
        print(f"  {mark} {when(x.time)}  {x.kind:<10} {item}{x.message}")


def _exit(s: PlanSession) -> int:
    from core.model.runs import RunStatus

    if s.status == RunStatus.FAILED:
        return EXIT_FAILED
    return EXIT_WARNING if s.status == RunStatus.WARNING else 0


def _show_session(args: argparse.Namespace, session_id: int) -> int:
    with open_store(args) as store:
        s = store.plan_sessions.get(session_id)
    if args.json:
        emit_json(session_doc(s))
    else:
        _print_session(s)
    return _exit(s)


def cmd_create(args: argparse.Namespace) -> int:
    from core.model.plans import load_plan

    plan = load_plan(args.file)
    with open_store(args) as store:
        store.plans.add(plan)
    if args.json:
        emit_json(plan_doc(plan))
    else:
        print(f"plan {plan.name!r} added ({len(plan.items)} VMs)")
    return 0


def _set(plan: FailoverPlan, specs: list[str]) -> FailoverPlan:
    from core.errors import UsageError
    from core.model.plans import replace_items

    changes: dict[str, dict[str, Any]] = {}
    for spec in specs:
        item, sep, rest = spec.rpartition(":")
        field, eq, value = rest.partition("=")
        if not sep or not eq or not item:
            raise UsageError(f"{spec!r} is not ITEM:FIELD=VALUE")
        conv: dict[str, Any] = {
            "priority": int,
            "order": int,
            "delay_after": float,
            "heartbeat_timeout": float,
            "wait_heartbeat": lambda v: v.lower() in ("true", "yes", "1"),
            "depends_on": lambda v: tuple(x.strip() for x in v.split(",") if x.strip()),
        }
        if field not in conv:
            raise UsageError(f"{field!r} cannot be set: use one of {', '.join(conv)}")
        try:
            changes.setdefault(item, {})[field] = conv[field](value)
        except ValueError:
            raise UsageError(f"{value!r} is not a value for {field}") from None
    return replace_items(plan, changes)


def cmd_edit(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from core.model.plans import load_plan

    with open_store(args) as store:
        plan = load_plan(args.file) if args.file else store.plans.get(args.name)
        plan = _set(plan, args.set)
        if args.max_parallel is not None:
            plan = replace(plan, max_parallel=args.max_parallel)
        if args.description is not None:
            plan = replace(plan, description=args.description)
        store.plans.update(plan, old_name=args.name)
    if args.json:
        emit_json(plan_doc(plan))
    else:
        print(f"plan {plan.name!r} updated")
    return 0


def _print_plan(plan: FailoverPlan) -> None:
    print(f"plan {plan.name!r}: {len(plan.items)} VMs, at most {plan.max_parallel} starting")
    if plan.description:
        print(f"  {plan.description}")
    for label, script in (("pre-script", plan.pre_script), ("post-script", plan.post_script)):
        if script is not None:
            print(f"  {label}: {script.command} (timeout {script.timeout:g} s)")
    rows = []
    for p, items in plan.groups():
        for it in items:
            rows.append(
                [
                    str(p),
                    str(plan.boot_order(it)),
                    it.name,
                    it.job or "-",
                    f"{it.delay_after:g} s",
                    ", ".join(it.depends_on) or "-",
                    f"{it.heartbeat_timeout:g} s" if it.wait_heartbeat else "no",
                ]
            )
    table(["GROUP", "ORDER", "VM", "JOB", "DELAY", "DEPENDS ON", "HEARTBEAT"], rows)


def cmd_show(args: argparse.Namespace) -> int:
    from core.model.plans import dump_plan

    with open_store(args) as store:
        plan = store.plans.get(args.name)
    if args.format:
        print(dump_plan(plan, args.format), end="")
    elif args.json:
        emit_json(plan_doc(plan))
    else:
        _print_plan(plan)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        plans = store.plans.list()
    if args.json:
        emit_json([plan_doc(p) for p in plans])
    else:
        table(
            ["PLAN", "VMS", "GROUPS", "DESCRIPTION"],
            [[p.name, str(len(p.items)), str(len(p.groups())), p.description[:60]] for p in plans],
        )
    return 0


def readiness_doc(r: Readiness) -> dict[str, Any]:
    return {
        "plan": r.plan,
        "ready": r.ready,
        "problems": [
            {"check": p.check, "item": p.item, "message": p.message, "fix": p.fix}
            for p in r.problems
        ],
        "notes": list(r.notes),
        "timings": [
            {"item": t.item, "seconds": t.seconds, "measured": t.measured} for t in r.timings
        ],
        "estimated_seconds": r.estimated_seconds,
        "delays_seconds": r.delays_seconds,
        "capacity": r.capacity,
    }


def cmd_check(args: argparse.Namespace) -> int:
    from core.plans.readiness import check_plan

    with open_store(args) as store:
        report = check_plan(store, args.name)
    if args.json:
        emit_json(readiness_doc(report))
    else:
        state = "ready" if report.ready else f"{len(report.problems)} problem(s)"
        print(f"plan {report.plan!r}: {state}")
        for p in report.problems:
            where = f"[{p.item}] " if p.item else ""
            print(f"  X {p.check:<9} {where}{p.message}\n      fix: {p.fix}")
        for n in report.notes:
            print(f"  - {n}")
        measured = sum(1 for t in report.timings if t.measured)
        print(
            f"  estimated recovery time: {report.estimated_seconds:.0f} s "
            f"(of which delays {report.delays_seconds:.0f} s; {measured} of "
            f"{len(report.timings)} VMs' start-to-up times measured)"
        )
    return 0 if report.ready else EXIT_WARNING


def cmd_run(args: argparse.Namespace) -> int:
    from core.plans.run import run_plan

    with open_store(args) as store:
        result = run_plan(
            store, args.name, point_in_time=_time(args.at), reip_timeout=args.reip_timeout
        )
    return _show_session(args, result.session_id)


def cmd_undo(args: argparse.Namespace) -> int:
    from core.plans.run import undo_plan

    with open_store(args) as store:
        result = undo_plan(store, args.name)
    return _show_session(args, result.session_id)


def cmd_test(args: argparse.Namespace) -> int:
    from core.plans.run import cleanup_plan_test, run_plan_test

    with open_store(args) as store:
        if args.cleanup:
            result = cleanup_plan_test(store, args.name)
        else:
            result = run_plan_test(store, args.name, keep=args.keep, point_in_time=_time(args.at))
    return _show_session(args, result.session_id)


def cmd_delete(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        store.plans.remove(args.name)
    if args.json:
        emit_json({"deleted": args.name})
    else:
        print(f"plan {args.name!r} deleted")
    return 0


def cmd_sessions(args: argparse.Namespace) -> int:
    if args.id is not None:
        return _show_session(args, args.id)
    with open_store(args) as store:
        sessions = store.plan_sessions.list(args.name)
    if args.json:
        emit_json([session_doc(s) for s in sessions])
    else:
        table(
            ["ID", "ACTION", "STATUS", "STARTED", "ENDED"],
            [
                [str(s.id), str(s.action), str(s.status), when(s.started), when(s.ended)]
                for s in sessions
            ],
        )
    return 0


def cmd_auto(args: argparse.Namespace) -> int:
    from core.plans import auto

    with open_store(args) as store:
        if args.job:
            made = auto.from_job(store, args.name, args.job, delay_after=args.delay)
        elif args.folder:
            made = auto.from_folder(store, args.name, args.folder, delay_after=args.delay)
        else:
            made = auto.from_vms(store, args.name, args.vm, delay_after=args.delay)
        if args.save:
            store.plans.add(made.plan)
    if args.json:
        emit_json(
            {
                "plan": plan_doc(made.plan),
                "reasons": {c.vm: c.reason for c in made.choices},
                "saved": args.save,
            }
        )
    else:
        _print_plan(made.plan)
        for c in made.choices:
            print(f"  {c.vm}: group {c.priority}, {c.reason}")
        print("saved" if args.save else "not saved (add --save)")
    return 0
