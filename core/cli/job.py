"""`replicadesk job create|edit|list|show|delete`: replication jobs from flags or job files.

A job is built the way a job file is read: flags are written into a job document
(`core.model.jobfile`), over the file given with `--file` or over the stored job for `edit`, and
the document is then read by `job_from_document`, so a bad value is refused with the same
key-path error a file would get (`settings.restore_points: 29 is out of range (1 to 28)`), plus
the flag that set it. Names given in flags (`--vm "db #2 & replica"`, `--datastore`, ...) are
resolved against the live inventory of the server they belong to and stored as managed object
IDs with their names (`ObjectRef`); a target network named in `--network-map` must exist at
the target. A job file's objects are taken as written (no server is needed to import one): the
run's pre-flight checks them against vSphere. `show --json|--yaml` prints the job document,
which `create --file` reads back into an equal job.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from core.cli.context import db_arg, open_store, table, when
from core.cli.main import emit_json
from core.errors import InUseError, InvalidSettingError, UsageError

if TYPE_CHECKING:
    from core.model.job import ReplicationJob
    from core.model.schedule import JobSchedule
    from core.store.store import Store
    from core.vsphere.models import Inventory

Doc = dict[str, Any]
Candidate = tuple[str, str, tuple[str, ...]]  # moref, name, the names it answers to
_EVERY = re.compile(r"^\s*(\d+)\s*(m|min|mins|minutes|h|hr|hrs|hours)\s*$", re.IGNORECASE)
CONTAINER_KINDS = ("folder", "host", "cluster", "datacenter")

# Which flag sets which key of the job document, to name it in errors.
FLAG_OF_KEY = (
    ("name", "--name"),
    ("description", "--description"),
    ("source.server", "--source-server"),
    ("source.objects", "--vm/--container"),
    ("source.exclude_vms", "--exclude-vm"),
    ("destination.server", "--target-server"),
    ("destination.target", "--target-host/--target-cluster"),
    ("destination.datastore", "--datastore"),
    ("destination.resource_pool", "--resource-pool"),
    ("destination.folder", "--folder"),
    ("destination.disk_type", "--disk-type"),
    ("network.mappings", "--network-map"),
    ("settings.repository", "--repository"),
    ("settings.restore_points", "--keep"),
    ("settings.block_size", "--block-size"),
    ("settings.replica_suffix", "--suffix"),
    ("settings.compression", "--compression"),
    ("settings.enable_cbt", "--no-cbt/--cbt"),
    ("transfer.source_proxies", "--source-proxy"),
    ("transfer.target_proxies", "--target-proxy"),
    ("transfer.transport_modes", "--transport-modes"),
    ("schedule.daily", "--daily"),
    ("schedule.periodic", "--every"),
    ("schedule.after", "--after"),
    ("schedule.retry.times", "--retries"),
    ("schedule.retry.wait_minutes", "--retry-wait"),
)


def register(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    """Adds `job` and its actions; returns the actions so `job run` can be added beside them."""
    job = sub.add_parser("job", help="replication jobs: create, edit, list, show, delete")
    jsub = job.add_subparsers(dest="job_command", metavar="ACTION", required=True)

    create = jsub.add_parser(
        "create",
        help="create a job from a job file (YAML or JSON) or from flags",
        description="Create a replication job. With --file the job file is read (flags given "
        "as well override it); otherwise --name, --source-server, --vm or --container, "
        "--target-server, --datastore and --repository are needed. VM and object names are "
        "looked up in the live inventory and stored by managed object ID.",
    )
    create.add_argument("--file", type=Path, help="a job file: .yaml, .yml or .json")
    create.add_argument("--name", help="the job's name (its identity)")
    _definition_args(create)
    create.add_argument("--json", action="store_true", help="print the job document as JSON")
    db_arg(create)
    create.set_defaults(handler=cmd_create)

    edit = jsub.add_parser(
        "edit",
        help="change a job: replace it with a job file, or change the settings flags name",
        description="Change a job. --file replaces its definition (the file must name the "
        "same job); flags change only what they name (--vm/--container replace the source "
        "objects, --network-map replaces the mappings).",
    )
    edit.add_argument("name", help="the job to change")
    edit.add_argument("--file", type=Path, help="a job file with the new definition")
    _definition_args(edit)
    edit.add_argument("--json", action="store_true", help="print the job document as JSON")
    db_arg(edit)
    edit.set_defaults(handler=cmd_edit)

    ls = jsub.add_parser("list", help="list the jobs, their schedules and last results")
    ls.add_argument("--json", action="store_true", help="print JSON")
    db_arg(ls)
    ls.set_defaults(handler=cmd_list)

    show = jsub.add_parser("show", help="show a job's settings")
    show.add_argument("name")
    fmt = show.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the job document as JSON")
    fmt.add_argument("--yaml", action="store_true", help="print the job document as YAML")
    db_arg(show)
    show.set_defaults(handler=cmd_show)

    delete = jsub.add_parser(
        "delete", help="delete a job (its sessions and replicas stay as history)"
    )
    delete.add_argument("name")
    db_arg(delete)
    delete.set_defaults(handler=cmd_delete)
    return cast("argparse._SubParsersAction", jsub)  # type: ignore[type-arg]


def _object(kind: str) -> Any:
    def parse(text: str) -> tuple[str, str]:
        return kind, text

    return parse


def _container(text: str) -> tuple[str, str]:
    kind, sep, name = text.partition(":")
    if not sep or kind not in CONTAINER_KINDS or not name:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not KIND:NAME with KIND one of {', '.join(CONTAINER_KINDS)}"
        )
    return kind, name


def _mapping(text: str) -> tuple[str, str]:
    source, sep, target = text.partition("=")
    if not sep or not source or not target:
        raise argparse.ArgumentTypeError(f"{text!r} is not SOURCE_NETWORK=TARGET_NETWORK")
    return source, target


def _definition_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--description")
    src = p.add_argument_group("source (names or managed object IDs, resolved on the server)")
    src.add_argument("--source-server", help="address of the production vCenter or ESXi host")
    src.add_argument(
        "--vm",
        dest="objects",
        action="append",
        type=_object("vm"),
        metavar="NAME_OR_MOREF",
        help="a VM to replicate (repeatable; the order given is the processing order)",
    )
    src.add_argument(
        "--container",
        dest="objects",
        action="append",
        type=_container,
        metavar="KIND:NAME",
        help="a folder (by name or path), host, cluster or datacenter whose VMs are "
        "replicated, found at each run (repeatable)",
    )
    src.add_argument("--exclude-vm", action="append", metavar="NAME_OR_MOREF", help="a VM left out")
    dst = p.add_argument_group("destination")
    dst.add_argument("--target-server", help="address of the DR vCenter or ESXi host")
    where = dst.add_mutually_exclusive_group()
    where.add_argument("--target-host", help="the host replicas are registered on")
    where.add_argument(
        "--target-cluster", help="the cluster (each replica goes to its least loaded host)"
    )
    dst.add_argument("--datastore", help="datastore of the replicas' disks")
    dst.add_argument("--resource-pool", help="resource pool (name or path; default the root)")
    dst.add_argument("--folder", help="VM folder (name or path; default the datacenter's)")
    dst.add_argument("--disk-type", choices=("same", "thin", "thick"))
    dst.add_argument(
        "--network-map",
        action="append",
        type=_mapping,
        metavar="SRC=DST",
        help="connect NICs on source network SRC to target network DST (repeatable; networks "
        "of the same name map by themselves)",
    )
    st = p.add_argument_group("job settings")
    st.add_argument("--repository", help="the repository of replica metadata")
    st.add_argument("--keep", type=int, help="restore points to keep, 1 to 28 (default 7)")
    st.add_argument("--block-size", choices=("local", "lan", "wan"))
    st.add_argument("--suffix", help="replica name suffix (default _replica)")
    st.add_argument("--compression", choices=("auto", "none", "optimal"))
    cbt = st.add_mutually_exclusive_group()
    cbt.add_argument(
        "--no-cbt",
        dest="use_cbt",
        action="store_false",
        default=None,
        help="compare block digests instead of using changed block tracking",
    )
    cbt.add_argument("--cbt", dest="use_cbt", action="store_true", help="use CBT (default)")
    tr = p.add_argument_group("data transfer")
    tr.add_argument(
        "--source-proxy",
        action="append",
        metavar="NAME",
        help="a chosen source proxy (repeatable; 'automatic' for any)",
    )
    tr.add_argument(
        "--target-proxy",
        action="append",
        metavar="NAME",
        help="a chosen target proxy (repeatable; 'automatic' for any)",
    )
    tr.add_argument(
        "--transport-modes",
        metavar="MODES",
        help="modes to try in order: direct,hotadd,network, or 'automatic'",
    )
    sc = p.add_argument_group("schedule")
    trig = sc.add_mutually_exclusive_group()
    trig.add_argument("--daily", action="append", metavar="HH:MM", help="run daily at (repeatable)")
    trig.add_argument("--every", metavar="N{m,h}", help="run every N minutes or hours: 30m, 2h")
    trig.add_argument("--after", metavar="JOB", help="run when JOB finishes")
    trig.add_argument("--on-demand", action="store_true", help="no schedule: run when asked")
    sc.add_argument("--retries", type=int, help="retry failed VMs N times (default 3)")
    sc.add_argument("--retry-wait", type=int, metavar="MINUTES", help="between retries (10)")
    on = sc.add_mutually_exclusive_group()
    on.add_argument("--disable", dest="enabled", action="store_false", default=None)
    on.add_argument("--enable", dest="enabled", action="store_true")


# --- resolving names against the live inventory -----------------------------------------------


class Inventories:
    """Inventories read once per command, per server."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._read: dict[str, Inventory] = {}

    def get(self, address: str) -> Inventory:
        if address not in self._read:
            from core.cli.inventory import read_server_inventory

            self._read[address] = read_server_inventory(self.store, address)
        return self._read[address]


def _ref(kind: str, moref: str, name: str) -> Doc:
    return {"kind": kind, "moref": moref, "name": name}


def _pick(
    flag: str,
    what: str,
    text: str,
    candidates: Sequence[Candidate],
    where: str,
) -> tuple[str, str]:
    """One of (moref, name, names it answers to) by moref, then by name; clear errors."""
    for moref, name, _ in candidates:
        if moref == text:
            return moref, name
    found = [(m, n) for m, n, keys in candidates if text in keys]
    if len(found) == 1:
        return found[0]
    if found:
        ids = ", ".join(f"{m}" for m, _ in found)
        raise InvalidSettingError(
            flag, f'{len(found)} {what}s are named "{text}" on {where} ({ids}): give the ID'
        )
    names = sorted({k for _, _, keys in candidates for k in keys})
    close = difflib.get_close_matches(text, names, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    raise InvalidSettingError(
        flag,
        f'no {what} named "{text}" on {where}{hint}: `replicadesk inventory --server {where}` '
        "lists them with their IDs",
    )


def resolve_source(inv: Inventory, where: str, flag: str, kind: str, text: str) -> Doc:
    cands: list[Candidate]
    if kind == "vm":
        cands = [(v.moref, v.name, (v.name,)) for v in inv.vms if not v.template]
    elif kind == "folder":
        cands = [(f.moref, f.name, (f.name, f.path_text)) for f in inv.folders if f.path]
    elif kind == "host":
        cands = [(h.moref, h.name, (h.name,)) for h in inv.hosts]
    elif kind == "cluster":
        cands = [(c.moref, c.name, (c.name,)) for c in inv.clusters]
    else:
        cands = [(d.moref, d.name, (d.name,)) for d in inv.datacenters]
    moref, name = _pick(flag, "VM" if kind == "vm" else kind, text, cands, where)
    if kind == "folder":
        name = next(f.path_text for f in inv.folders if f.moref == moref)
    return _ref(kind, moref, name)


def _apply_source(doc: Doc, args: argparse.Namespace, invs: Inventories) -> None:
    source: Doc = doc.setdefault("source", {})
    old_server = source.get("server")
    server = args.source_server or old_server
    if not (args.source_server or args.objects or args.exclude_vm):
        return
    if server is None:
        raise UsageError("give --source-server: the server the VMs are on")
    changed = old_server is not None and server != old_server
    if changed and not args.objects:
        raise UsageError(
            "--source-server changes the server: give the VMs or containers on it "
            "(--vm/--container)"
        )
    source["server"] = server
    if changed:
        # Exclusions and per-VM overrides name objects of the old server by their IDs.
        dropped = [k for k in ("exclude_vms", "exclude_disks") if source.pop(k, None)]
        if doc.get("destination", {}).pop("overrides", None):
            dropped.append("destination.overrides")
        if dropped:
            print(
                f"replicadesk: note: {', '.join(dropped)} named objects of {old_server}: removed",
                file=sys.stderr,
            )
    inv = invs.get(server)
    if args.objects:
        flags = {"vm": "--vm"}
        source["objects"] = [
            resolve_source(inv, server, flags.get(kind, "--container"), kind, text)
            for kind, text in args.objects
        ]
    if args.exclude_vm:
        source["exclude_vms"] = [
            resolve_source(inv, server, "--exclude-vm", "vm", text) for text in args.exclude_vm
        ]


def _apply_destination(doc: Doc, args: argparse.Namespace, invs: Inventories) -> None:
    dest: Doc = doc.setdefault("destination", {})
    touched = (
        args.target_server,
        args.target_host,
        args.target_cluster,
        args.datastore,
        args.resource_pool,
        args.folder,
        args.network_map,
    )
    if args.disk_type is not None:
        dest["disk_type"] = args.disk_type
    if not any(t is not None for t in touched):
        return
    old_server = dest.get("server")
    server = args.target_server or old_server
    if server is None:
        raise UsageError("give --target-server: the DR vCenter or ESXi host replicas go to")
    new_server = server != old_server
    dest["server"] = server
    inv = invs.get(server)

    # The target: a host or a cluster.
    if args.target_host is not None or args.target_cluster is not None:
        dest["target"] = _target(inv, server, args.target_host, args.target_cluster)
    elif new_server:
        clusters, hosts = inv.clusters, inv.hosts
        if not clusters and len(hosts) == 1:
            dest["target"] = _ref("host", hosts[0].moref, hosts[0].name)
        else:
            raise UsageError(f"give --target-host or --target-cluster: {server} has several")
    target = dest["target"]
    target_hosts, owner, datacenter = _target_scope(inv, server, target)
    target_changed = new_server or args.target_host is not None or args.target_cluster is not None

    if args.datastore is not None:
        cands: list[Candidate] = [(d.moref, d.name, (d.name,)) for d in inv.datastores]
        moref, name = _pick("--datastore", "datastore", args.datastore, cands, server)
        dest["datastore"] = _ref("datastore", moref, name)
    elif new_server:
        raise UsageError(f"give --datastore: where on {server} the replicas' disks go")
    ds_moref = dest["datastore"]["moref"]
    try:
        ds = inv.datastore(ds_moref)
    except KeyError:
        raise InvalidSettingError(
            "--datastore", f"datastore {ds_moref} is not on {server}: give --datastore"
        ) from None
    mounted = set(ds.hosts) | {h.moref for h in inv.hosts if ds.moref in h.datastores}
    if not mounted & set(target_hosts):
        raise InvalidSettingError(
            "--datastore",
            f'datastore "{ds.name}" is not mounted on any host of {target["kind"]} '
            f'"{target["name"]}"',
        )

    if args.resource_pool is not None:
        pools = [p for p in inv.resource_pools if p.owner == owner]
        cands = [(p.moref, p.name, (p.name, "/".join(p.path))) for p in pools]
        where = f'{target["kind"]} "{target["name"]}" on {server}'
        moref, name = _pick("--resource-pool", "resource pool", args.resource_pool, cands, where)
        dest["resource_pool"] = _ref("resource_pool", moref, name)
    elif target_changed:
        dest.pop("resource_pool", None)  # the old pool belonged to the old target

    if args.folder is not None:
        folders = [f for f in inv.folders if f.datacenter == datacenter]
        cands = [(f.moref, f.name, (f.name, f.path_text)) for f in folders]
        moref, name = _pick("--folder", "VM folder", args.folder, cands, server)
        dest["folder"] = _ref("folder", moref, name)
    elif new_server:
        dest.pop("folder", None)

    if args.network_map:
        known = sorted(
            {n.name for n in inv.networks if n.datacenter == datacenter or not n.datacenter}
        )
        rows = []
        for source_net, target_net in args.network_map:
            if target_net not in known:
                raise InvalidSettingError(
                    "--network-map",
                    f'target network "{target_net}" is not on {server} (its networks: '
                    f"{', '.join(known)})",
                )
            rows.append({"source": source_net, "target": target_net})
        doc.setdefault("network", {})["mappings"] = rows


def _target(inv: Inventory, server: str, host: str | None, cluster: str | None) -> Doc:
    if cluster is not None:
        cands: list[Candidate] = [(c.moref, c.name, (c.name,)) for c in inv.clusters]
        moref, name = _pick("--target-cluster", "cluster", cluster, cands, server)
        return _ref("cluster", moref, name)
    assert host is not None
    cands = [(h.moref, h.name, (h.name,)) for h in inv.hosts]
    moref, name = _pick("--target-host", "host", host, cands, server)
    return _ref("host", moref, name)


def _target_scope(inv: Inventory, server: str, target: Doc) -> tuple[list[str], str, str]:
    """The target's hosts, the owner of its resource pools, and its datacenter."""
    try:
        if target["kind"] == "cluster":
            c = inv.cluster(target["moref"])
            return list(c.hosts), c.moref, c.datacenter
        h = inv.host(target["moref"])
    except KeyError:
        raise InvalidSettingError(
            "--target-host/--target-cluster",
            f'{target["kind"]} "{target["name"]}" ({target["moref"]}) is not on {server}',
        ) from None
    owner = next((p.owner for p in inv.resource_pools if p.moref == h.resource_pool), "")
    return [h.moref], owner, h.datacenter


def _apply_settings(doc: Doc, args: argparse.Namespace) -> None:
    settings: Doc = doc.setdefault("settings", {})
    for attr, key in (
        ("repository", "repository"),
        ("keep", "restore_points"),
        ("block_size", "block_size"),
        ("suffix", "replica_suffix"),
        ("compression", "compression"),
    ):
        value = getattr(args, attr)
        if value is not None:
            settings[key] = value
    if args.use_cbt is not None:
        settings["use_cbt"] = args.use_cbt
        settings["enable_cbt"] = args.use_cbt
    if args.description is not None:
        doc["description"] = args.description
    transfer: Doc = doc.setdefault("transfer", {})
    for attr, key in (("source_proxy", "source_proxies"), ("target_proxy", "target_proxies")):
        names: list[str] | None = getattr(args, attr)
        if names is not None:
            transfer[key] = "automatic" if names == ["automatic"] else names
    if args.transport_modes is not None:
        modes = [m.strip() for m in args.transport_modes.split(",") if m.strip()]
        transfer["transport_modes"] = "automatic" if modes == ["automatic"] else modes


def _apply_schedule(doc: Doc, args: argparse.Namespace) -> None:
    schedule: Doc = doc.setdefault("schedule", {})
    trigger: tuple[str, object] | None = None
    if args.daily:
        trigger = ("daily", {"at": list(args.daily)})
    elif args.every is not None:
        m = _EVERY.match(args.every)
        if not m:
            raise UsageError(f"--every {args.every!r} is not N minutes or hours: 30m, 2h")
        unit = "hours" if m[2].lower().startswith("h") else "minutes"
        trigger = ("periodic", {"every": int(m[1]), "unit": unit})
    elif args.after is not None:
        trigger = ("after", args.after)
    if trigger is not None or args.on_demand:
        for key in ("daily", "periodic", "after"):
            schedule.pop(key, None)
        if trigger is not None:
            schedule[trigger[0]] = trigger[1]
    retry: Doc = schedule.setdefault("retry", {})
    if args.retries is not None:
        retry["times"] = args.retries
    if args.retry_wait is not None:
        retry["wait_minutes"] = args.retry_wait
    if args.enabled is not None:
        schedule["enabled"] = args.enabled


def _build(doc: Doc) -> ReplicationJob:
    from core.model.jobfile import job_from_document

    try:
        return job_from_document(doc)
    except InvalidSettingError as e:
        flag = next(
            (f for key, f in FLAG_OF_KEY if e.field == key or e.field.startswith(key + ".")),
            None,
        )
        if flag is None:
            flag = next((f for key, f in FLAG_OF_KEY if e.field.startswith(key + "[")), None)
        if flag is None:
            raise
        raise type(e)(e.field, f"{e.problem} ({flag})") from None


def _apply_flags(doc: Doc, args: argparse.Namespace, store: Store) -> Doc:
    invs = Inventories(store)
    _apply_settings(doc, args)
    _apply_schedule(doc, args)
    _apply_source(doc, args, invs)
    _apply_destination(doc, args, invs)
    return doc


def _from_file(path: Path) -> Doc:
    from core.model.jobfile import job_to_document, load_job

    return job_to_document(load_job(path))


def _print_saved(job: ReplicationJob, verb: str, as_json: bool) -> None:
    from core.model.jobfile import job_to_document

    if as_json:
        emit_json(job_to_document(job))
        return
    vms = len(job.source.objects)
    print(
        f'{verb} job "{job.name}": {vms} object(s) from {job.source.server} to '
        f"{job.destination.server}, {schedule_text(job.schedule)}"
    )


def cmd_create(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.file is not None:
            doc = _from_file(args.file)
        else:
            missing = [
                flag
                for flag, value in (
                    ("--name", args.name),
                    ("--source-server", args.source_server),
                    ("--vm or --container", args.objects),
                    ("--target-server", args.target_server),
                    ("--datastore", args.datastore),
                    ("--repository", args.repository),
                )
                if not value
            ]
            if missing:
                raise UsageError(f"job create: give --file, or {', '.join(missing)} (see --help)")
            doc = {}
        if args.name is not None:
            doc["name"] = args.name
        job = _build(_apply_flags(doc, args, store))
        store.jobs.add(job)
    _print_saved(job, "created", args.json)
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    from core.model.jobfile import job_to_document

    with open_store(args) as store:
        current = store.jobs.get(args.name)
        if args.file is not None:
            doc = _from_file(args.file)
            if doc["name"] != current.name:
                raise UsageError(
                    f'{args.file} defines job "{doc["name"]}", not "{current.name}": a job\'s '
                    "name is its identity (create the new job, then delete the old one)"
                )
        else:
            doc = job_to_document(current)
        job = _build(_apply_flags(doc, args, store))
        if job == current:
            print(f'job "{job.name}" unchanged', file=sys.stderr)
        store.jobs.update(job)
    _print_saved(job, "changed", args.json)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        jobs = [(job, store.jobs.schedule_state(job.name)) for job in store.jobs.list()]
    if args.json:
        emit_json(
            [
                {
                    "name": job.name,
                    "description": job.description,
                    "source_server": job.source.server,
                    "objects": [o.name for o in job.source.objects],
                    "target_server": job.destination.server,
                    "repository": job.settings.repository,
                    "enabled": job.schedule.enabled,
                    "schedule": schedule_text(job.schedule),
                    "last_run": state.last_run,
                    "last_status": state.last_status,
                    "next_run": state.next_run,
                }
                for job, state in jobs
            ]
        )
        return 0
    if not jobs:
        print("no jobs (`replicadesk job create` makes one)")
        return 0
    table(
        ["NAME", "SOURCE", "OBJECTS", "TARGET", "SCHEDULE", "LAST RUN", "STATUS", "NEXT RUN"],
        [
            [
                job.name,
                job.source.server,
                str(len(job.source.objects)),
                job.destination.server,
                schedule_text(job.schedule),
                when(state.last_run),
                str(state.last_status or "-"),
                when(state.next_run),
            ]
            for job, state in jobs
        ],
    )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from core.model.jobfile import dump_job

    with open_store(args) as store:
        job = store.jobs.get(args.name)
        state = store.jobs.schedule_state(job.name)
    if args.json or args.yaml:
        sys.stdout.write(dump_job(job, "json" if args.json else "yaml"))
        return 0
    print_job(job)
    print(
        f"  state        last run {when(state.last_run)} ({state.last_status or '-'}), "
        f"next run {when(state.next_run)}"
    )
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        job = store.jobs.get(args.name)
        running = [s.id for s in store.sessions.running() if s.job == job.name]
        if running:
            raise InUseError("Job", job.name, f"its running session {running[0]}: stop it first")
        store.jobs.remove(job.name)
    print(f'deleted job "{job.name}" (its sessions and replicas are kept)')
    return 0


# --- showing a job ----------------------------------------------------------------------------


def schedule_text(schedule: JobSchedule) -> str:
    from core.model.schedule import WEEKDAYS, AfterJob, Daily, Periodic

    t = schedule.trigger
    if isinstance(t, Daily):
        text = "daily at " + ", ".join(x.strftime("%H:%M") for x in t.at)
        if len(t.days) < 7:
            text += " (" + ",".join(WEEKDAYS[d] for d in sorted(t.days)) + ")"
    elif isinstance(t, Periodic):
        text = f"every {t.every} {t.unit}"
    elif isinstance(t, AfterJob):
        text = f'after job "{t.job}"'
    else:
        text = "on demand"
    return text if schedule.enabled else f"{text} (disabled)"


def _obj(ref: Any) -> str:
    return f'{ref.kind} "{ref.name}" [{ref.moref}]'


def print_job(job: ReplicationJob) -> None:
    s, d, p = job.settings, job.destination, job.destination.placement
    print(f'job "{job.name}"')
    if job.description:
        print(f"  description  {job.description.strip()}")
    print(f"  source       {job.source.server}")
    for i, o in enumerate(job.source.objects, 1):
        print(f"    {i}. {_obj(o)}")
    for o in job.source.exclude_vms:
        print(f"    excluded {_obj(o)}")
    for x in job.source.exclude_disks:
        print(f"    excluded disks {', '.join(map(str, x.disk_keys))} of {_obj(x.object)}")
    print(f"  destination  {d.server}: {_obj(p.target)}")
    print(f"    datastore {_obj(p.datastore)}, disk type {p.disk_type}")
    print(f"    resource pool {_obj(p.resource_pool) if p.resource_pool else '(root)'}")
    print(f"    VM folder {_obj(p.folder) if p.folder else '(the datacenter root)'}")
    for ov in d.overrides:
        parts = [
            f"datastore {_obj(ov.datastore)}" if ov.datastore else "",
            f"pool {_obj(ov.resource_pool)}" if ov.resource_pool else "",
            f"folder {_obj(ov.folder)}" if ov.folder else "",
            f"disk type {ov.disk_type}" if ov.disk_type else "",
        ]
        print(f"    for {_obj(ov.vm)}: {', '.join(x for x in parts if x)}")
    same = "same-name networks map by themselves" if job.network.same_name else "no same-name"
    print(f"  network      {same}")
    for row in job.network.mappings:
        print(f'    "{row.source}" -> "{row.target}"')
    for rule in job.reip:
        print(f"  re-IP        {rule.source} -> {rule.target}  {rule.description}".rstrip())
    cbt = "off (digests)" if not s.use_cbt else "on" + (", enabled automatically" * s.enable_cbt)
    print(
        f"  settings     repository {s.repository}, suffix {s.replica_suffix}, keep "
        f"{s.restore_points} restore points, block size {s.block_size} "
        f"({s.block_size.bytes >> 10} KiB), compression {s.compression}, CBT {cbt}"
    )
    guest = (
        f"quiesced through VMware Tools; when that fails: {s.quiesce_failure}"
        if s.quiesce
        else "off (crash-consistent snapshots)"
    )
    print(f"  guest        {guest}")
    for m in job.seeding.mappings:
        print(f"  seeding      {_obj(m.vm)} -> existing VM {_obj(m.replica)}")
    t = job.transfer
    modes = ",".join(str(m) for m in t.transport_modes) or "automatic"
    print(
        f"  transfer     source proxies {', '.join(t.source_proxies.proxies) or 'automatic'}; "
        f"target proxies {', '.join(t.target_proxies.proxies) or 'automatic'}; "
        f"transport {modes}"
    )
    r = job.schedule.retry
    window = "" if job.schedule.window is None else ", within a window"
    print(
        f"  schedule     {schedule_text(job.schedule)}; retry {r.times} times, "
        f"{r.wait_minutes} minutes apart{window}"
    )
