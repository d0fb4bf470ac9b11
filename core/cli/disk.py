"""`replicadesk disk ...`: replicate a disk file, list, verify and export its restore points."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from core.cli.main import CANCEL, emit_json, host_port, positive_int
from core.cli.progress import Progress
from core.engine import (
    BLOCK_SIZES,
    DEFAULT_KEEP,
    RemoteSpec,
    ReplicationRequest,
    ReplicationResult,
    parse_block_size,
    replicate_disk,
)
from core.errors import UsageError
from core.mover.tls import TlsFiles
from core.replica.chain import MAX_POINTS, ReplicaChain
from core.replica.verify import export_point, verify_replica


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    disk = sub.add_parser("disk", help="replicate disk files and work with their restore points")
    dsub = disk.add_subparsers(dest="disk_command", metavar="ACTION", required=True)

    rep = dsub.add_parser(
        "replicate",
        help="replicate a disk into a replica folder (new restore point)",
        description="Copy SOURCE (raw image or VMDK) into REPLICA_DIR as a new restore point: "
        "the first run copies the whole disk, later runs only the changed blocks.",
    )
    rep.add_argument("source", type=Path, help="the source disk: raw image or VMDK descriptor/KDMV")
    rep.add_argument(
        "replica",
        help="the replica folder (with --target: a name under the mover service's root)",
    )
    rep.add_argument(
        "--metadata-dir",
        type=Path,
        help="replica metadata folder on the source side (default: REPLICA_DIR.metadata "
        "beside a local replica, or ~/.local/share/replicadesk/metadata/<name> for a remote one)",
    )
    rep.add_argument(
        "--keep",
        type=int,
        default=DEFAULT_KEEP,
        help=f"restore points to keep, 1 to {MAX_POINTS} (default {DEFAULT_KEEP})",
    )
    rep.add_argument(
        "--block-size",
        default="1M",
        help=f"block size: {', '.join(BLOCK_SIZES)} (default 1M; LAN 512K, WAN 256K)",
    )
    rep.add_argument(
        "--changed-areas",
        type=Path,
        help="JSON file with a list of [offset, length]: read only these (what CBT reports)",
    )
    rep.add_argument("--target", type=host_port, help="HOST:PORT of a `mover serve` (offsite)")
    rep.add_argument("--tls-cert", type=Path, help="this proxy's certificate (PEM)")
    rep.add_argument("--tls-key", type=Path, help="this proxy's private key (PEM)")
    rep.add_argument("--tls-ca", type=Path, help="the CA that signed the target's certificate")
    rep.add_argument("--tls-server-name", help="name to expect in the target's certificate")
    comp = rep.add_mutually_exclusive_group()
    comp.add_argument(
        "--compress",
        dest="compress",
        action="store_true",
        default=None,
        help="compress blocks (default: on with --target, off onsite)",
    )
    comp.add_argument("--no-compress", dest="compress", action="store_false")
    rep.add_argument(
        "--rebuild-metadata",
        action="store_true",
        help="when the metadata belongs to another replica, rebuild it from the replica",
    )
    rep.add_argument(
        "--format",
        choices=("auto", "raw", "vmdk"),
        default="auto",
        help="source format (default: detect)",
    )
    rep.add_argument("--json", action="store_true", help="print the result as JSON")
    rep.set_defaults(handler=cmd_replicate)

    pts = dsub.add_parser(
        "points",
        help="list the restore points of a replica",
        description="List restore points: id, created, and the VMDK that "
        "opens each point (in qemu-img or VMware).",
    )
    pts.add_argument("replica", type=Path, help="the replica folder")
    pts.add_argument("--json", action="store_true", help="print a JSON list")
    pts.set_defaults(handler=cmd_points)

    ver = dsub.add_parser(
        "verify",
        help="check restore points block by block",
        description="Read each restore point through its chain, digest every "
        "block and compare with the digests recorded at commit (and with "
        "SOURCE if --against is given). Exit code 1 if any point fails.",
    )
    ver.add_argument("replica", type=Path, help="the replica folder")
    ver.add_argument("--point", type=positive_int, help="only this restore point")
    ver.add_argument("--against", type=Path, help="also compare with this source disk")
    ver.add_argument("--json", action="store_true", help="print the result as JSON")
    ver.set_defaults(handler=cmd_verify)

    exp = dsub.add_parser(
        "export",
        help="write a restore point as a raw image",
        description="Write restore point ID of REPLICA_DIR to OUTPUT as a raw "
        "(sparse) image. OUTPUT must not exist.",
    )
    exp.add_argument("replica", type=Path, help="the replica folder")
    exp.add_argument("--point", type=positive_int, required=True, help="restore point id")
    exp.add_argument("output", type=Path, help="the raw image to create")
    exp.add_argument("--json", action="store_true", help="print the result as JSON")
    exp.set_defaults(handler=cmd_export)


def _load_areas(path: Path) -> list[tuple[int, int]]:
    try:
        untrusted = json.loads(path.read_text())
    except OSError as e:
        raise UsageError(f"cannot read changed areas {path}: {e.strerror}") from e
    except ValueError as e:
        raise UsageError(f"changed areas {path} is not JSON: {e}") from e
    if not isinstance(untrusted, list):
        raise UsageError(f"changed areas {path} must be a JSON list of [offset, length]")
    areas: list[tuple[int, int]] = []
    for item in untrusted:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in item)
        ):
            raise UsageError(f"changed areas {path}: {item!r} is not [offset, length]")
        areas.append((item[0], item[1]))
    return areas


def _default_metadata_dir(args: argparse.Namespace) -> Path:
    if args.target is None:
        replica = Path(args.replica).resolve()
        return replica.with_name(replica.name + ".metadata")
    key = hashlib.sha256(f"{args.target[0]}:{args.target[1]}/{args.replica}".encode()).hexdigest()
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share"))
    return base / "replicadesk" / "metadata" / key[:16]


def request_from_args(args: argparse.Namespace) -> ReplicationRequest:
    remote = None
    if args.target is not None:
        missing = [n for n in ("tls_cert", "tls_key", "tls_ca") if getattr(args, n) is None]
        if missing:
            raise UsageError(
                "--target needs " + ", ".join("--" + m.replace("_", "-") for m in missing)
            )
        remote = RemoteSpec(
            args.target[0],
            args.target[1],
            TlsFiles(args.tls_cert, args.tls_key, args.tls_ca),
            args.tls_server_name,
        )
    return ReplicationRequest(
        source=args.source,
        replica=str(args.replica),
        metadata_dir=args.metadata_dir or _default_metadata_dir(args),
        keep=args.keep,
        block_size=parse_block_size(args.block_size),
        changed_areas=_load_areas(args.changed_areas) if args.changed_areas else None,
        target=remote,
        compress=args.compress,
        rebuild_metadata=args.rebuild_metadata,
        source_format=args.format,
    )


def result_dict(result: ReplicationResult) -> dict[str, Any]:
    pt = result.point
    return {
        "point": {"id": pt.point_id, "created": pt.created, "path": pt.path, "kind": pt.kind},
        "full": result.full,
        "metadata_rebuilt": result.metadata_rebuilt,
        "merged_points": pt.merged,
        "warnings": result.warnings,
        "stats": result.stats.to_dict(),
    }


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def cmd_replicate(args: argparse.Namespace) -> int:
    request = request_from_args(args)
    with Progress(None if not args.json else False) as progress:
        result = replicate_disk(request, cancel=CANCEL.event, progress=progress)
    if args.json:
        emit_json(result_dict(result))
        return 0
    s = result.stats
    for w in result.warnings:
        print(f"warning: {w}")
    kind = "full copy" if result.full else "incremental"
    print(f"restore point {result.point.point_id} ({kind}) committed: {result.point.path}")
    print(
        f"  processed {_mib(s.processed_bytes)}, read {_mib(s.read_bytes)}, "
        f"transferred {_mib(s.transferred_bytes)}, written {_mib(s.written_bytes)} "
        f"in {s.duration:.2f} s ({s.rate / (1 << 20):.0f} MiB/s)"
    )
    share = ", ".join(f"{k.capitalize()} {v:.0%}" for k, v in s.busy_share.items())
    print(f"  busy: {share}; bottleneck: {s.bottleneck}")
    if result.point.merged:
        print(f"  retention merged restore point(s) {result.point.merged} into the base")
    return 0


def cmd_points(args: argparse.Namespace) -> int:
    with ReplicaChain.open_for_read(args.replica) as chain:
        points = chain.points
        manifest = chain.manifest
    rows = [
        {
            "id": p.id,
            "created": p.created,
            "path": str(p.path),
            "kind": p.kind,
            "changed_bytes": p.changed_bytes,
        }
        for p in points
    ]
    if args.json:
        emit_json(rows)
        return 0
    print(
        f"replica {manifest.replica_id}: {manifest.disk_size} bytes, "
        f"{manifest.block_size // 1024} KiB blocks, {len(rows)} restore point(s)"
    )
    for r in rows:
        print(f"  {r['id']:>4}  {r['created']}  {r['kind']:<5}  {r['path']}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    with Progress(None if not args.json else False) as progress:
        done = 0

        def report(n: int) -> None:
            nonlocal done
            done += n
            progress("verify", done, max(done, 1))

        checks = verify_replica(args.replica, args.point, args.against, report)
    if args.json:
        emit_json([c.__dict__ for c in checks])
    else:
        for c in checks:
            status = "ok" if c.ok else "FAILED"
            print(f"restore point {c.point_id}: {status}  {c.path}")
            for problem in c.problems:
                print(f"    {problem}")
    return 0 if all(c.ok for c in checks) else 1


def cmd_export(args: argparse.Namespace) -> int:
    written = export_point(args.replica, args.point, args.output)
    if args.json:
        emit_json({"point": args.point, "output": str(args.output), "data_bytes": written})
    else:
        print(f"restore point {args.point} exported to {args.output} ({_mib(written)} of data)")
    return 0
