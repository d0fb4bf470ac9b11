"""`replicadesk estimate bandwidth|rpo|backup-from-replica`: planning from what runs measured.

`bandwidth --job J --link-mbit 100 [--throttle 20@8-18] [--probe]`: the change per RPO interval
(from past sessions, or a CBT probe that copies nothing), the compression ratio seen, the
bandwidth the RPO needs against the slowest hour the job's window allows, the first full copy's
time and whether a run fits. Several `--job` share the link equally. `rpo [--job J]`: the RPO
violations (exit 3 when there is one). `backup-from-replica VM`: whether a VM may be a backup
source; a replica VM is refused with the reason (exit code of the error).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from core.cli.context import db_arg, open_store, size, table
from core.cli.main import emit_json

if TYPE_CHECKING:
    from core.planning.bandwidth import Estimate, Throttle

EXIT_VIOLATION = 3


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    est = sub.add_parser("estimate", help="planning: bandwidth, RPO violations, backup sources")
    esub = est.add_subparsers(dest="estimate_command", metavar="WHAT", required=True)
    p = esub.add_parser("bandwidth", help="what a job's RPO needs from a link", description=__doc__)
    p.add_argument("--job", action="append", required=True, help="a job (repeatable: shared)")
    p.add_argument("--link-mbit", type=float, required=True, help="the link's speed, Mbit/s")
    p.add_argument(
        "--throttle",
        action="append",
        default=[],
        metavar="MBIT@H1-H2",
        help="a traffic rule's limit from hour H1 to H2 (e.g. 20@8-18); repeatable",
    )
    p.add_argument("--probe", action="store_true", help="measure changes through CBT now")
    p.add_argument("--json", action="store_true", help="print JSON")
    db_arg(p)
    p.set_defaults(handler=cmd_bandwidth)
    p = esub.add_parser("rpo", help="VMs whose newest restore point is older than their RPO")
    p.add_argument("--job", help="only this job")
    p.add_argument("--json", action="store_true", help="print JSON")
    db_arg(p)
    p.set_defaults(handler=cmd_rpo)
    p = esub.add_parser(
        "backup-from-replica", help="may this VM be a backup source? (replicas are refused)"
    )
    p.add_argument("vm", help="the VM's name or moref")
    p.add_argument("--server", help="the server it is on (default: any)")
    p.add_argument("--json", action="store_true", help="print JSON")
    db_arg(p)
    p.set_defaults(handler=cmd_backup_source)


def parse_throttle(text: str) -> Throttle:
    from core.errors import UsageError
    from core.planning.bandwidth import Throttle

    rate, at, span = text.partition("@")
    first, dash, last = span.partition("-")
    try:
        mbit = float(rate)
        h1, h2 = int(first), int(last)
    except ValueError:
        raise UsageError(f"{text!r} is not MBIT@H1-H2 (e.g. 20@8-18)") from None
    if not at or not dash or not (0 <= h1 <= 24 and 0 <= h2 <= 24) or h1 == h2:
        raise UsageError(f"{text!r} is not MBIT@H1-H2 with hours 0 to 24")
    hours = range(h1, h2) if h1 < h2 else [*range(h1, 24), *range(0, h2)]
    return Throttle(mbit, frozenset(hours))


def estimate_doc(e: Estimate) -> dict[str, Any]:
    m = e.measured
    return {
        "job": e.job,
        "rpo_minutes": e.rpo_minutes,
        "source": m.source,
        "sessions": m.sessions,
        "first_copy_bytes": m.full_bytes,
        "changed_bytes": m.changed_bytes,
        "over_seconds": m.span_seconds,
        "compression_ratio": m.ratio,
        "changed_per_rpo_bytes": e.changed_per_rpo,
        "required_mbit": e.required_mbit,
        "worst_window_mbit": e.worst_mbit,
        "meets_rpo": e.meets_rpo,
        "first_copy_hours": e.first_copy_hours,
        "run_hours": e.run_hours,
        "fits_window": e.fits_window,
        "notes": list(e.notes),
    }


def cmd_bandwidth(args: argparse.Namespace) -> int:
    from core.planning.bandwidth import Link, estimate

    link = Link(
        args.link_mbit, tuple(parse_throttle(t) for t in args.throttle), max(1, len(args.job))
    )
    with open_store(args) as store:
        results = [estimate(store, j, link, probe=args.probe) for j in args.job]
    if args.json:
        emit_json([estimate_doc(e) for e in results])
        return 0
    for e in results:
        m = e.measured
        seed = "more than a year" if e.first_copy_hours is None else f"{e.first_copy_hours:.2f} h"
        print(f"job {e.job!r} (RPO {e.rpo_minutes / 60:g} h; from {m.source}, {m.sessions} runs)")
        print(f"  changed per RPO interval  {size(e.changed_per_rpo)}")
        print(f"  compression ratio seen    {m.ratio:.2f} (bytes sent per byte read)")
        print(
            f"  required bandwidth        {e.required_mbit:.2f} Mbit/s; slowest hour of its "
            f"window {e.worst_mbit:.2f} Mbit/s: {'meets' if e.meets_rpo else 'MISSES'} the RPO"
        )
        print(f"  first full copy           {size(m.full_bytes * m.ratio)} in {seed}")
        print(f"  a run fits its window     {'yes' if e.fits_window else 'NO'}")
        for n in e.notes:
            print(f"  - {n}")
    return 0


def cmd_rpo(args: argparse.Namespace) -> int:
    from core.planning.rpo import violations

    with open_store(args) as store:
        found = violations(store, args.job)
    if args.json:
        emit_json(
            [
                {
                    "job": v.job,
                    "replica_id": v.replica_id,
                    "vm": v.vm,
                    "rpo_minutes": v.rpo_minutes,
                    "newest": v.newest.isoformat() if v.newest else None,
                    "age_seconds": v.age_seconds,
                    "message": v.message,
                }
                for v in found
            ]
        )
    elif found:
        table(
            ["JOB", "VM", "RPO", "AGE"],
            [
                [
                    v.job,
                    v.vm,
                    f"{v.rpo_minutes / 60:g} h",
                    "-" if v.age_seconds is None else f"{v.age_seconds / 3600:.1f} h",
                ]
                for v in found
            ],
        )
    else:
        print("no RPO violation")
    return EXIT_VIOLATION if found else 0


def cmd_backup_source(args: argparse.Namespace) -> int:
    from core.planning.backup_source import check_backup_source

    with open_store(args) as store:
        check_backup_source(store, args.vm, args.server)
    if args.json:
        emit_json({"vm": args.vm, "allowed": True})
    else:
        print(f"{args.vm!r} is not a replica: it may be a backup source (CBT can be used)")
    return 0
