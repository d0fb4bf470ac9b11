"""`replicadesk lab up|down|status|churn`: the built-in two-site lab from the command line.

`lab up` starts a supervisor process (`lab serve`, detached, logging to `<folder>/lab.log`) that
runs `core.lab.lab.Lab` until `lab down` sends it SIGTERM; `lab up` returns once the lab's
`state.json` is written and prints how to reach it. `lab down` waits for the supervisor to tear
everything down, and cleans up itself (processes, namespace, folder) if the supervisor is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from core.cli.main import CANCEL, emit_json, parse_bytes, positive_int
from core.errors import LabError, UsageError

if TYPE_CHECKING:
    from core.lab.lab import LabState
    from core.lab.topology import LabOptions

# The lab's modules (simulator, vSphere adapter, numpy) load when a lab command runs: every
# other command would pay 80 ms of start-up for them.

UP_TIMEOUT = 600.0  # the first `lab up` builds the simulator (about 30 s)
DOWN_TIMEOUT = 60.0


def default_folder() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "replicadesk" / "lab"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    lab = sub.add_parser("lab", help="the built-in two-site lab (simulated vCenters, proxies, WAN)")
    lsub = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True)

    def folder_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--dir",
            type=Path,
            default=None,
            help=f"the lab's folder (default {default_folder()})",
        )

    up = lsub.add_parser(
        "up",
        help="start the lab in the background and print how to reach it",
        description="Start a production vCenter (a cluster, standalone hosts, datastores, "
        "standard and distributed networks, VMs with real disk content) and a DR site (a "
        "vCenter, or a standalone ESXi host with --dr esx) with differently named networks, "
        "and a proxy (mover service) per site. As root the DR site runs in its own network "
        "namespace behind a link shaped to --wan-mbit.",
    )
    folder_arg(up)
    _options_args(up)
    up.add_argument("--json", action="store_true", help="print the lab's state as JSON")
    up.set_defaults(handler=cmd_up)

    serve = lsub.add_parser("serve", help="run the lab in the foreground until interrupted")
    folder_arg(serve)
    _options_args(serve)
    serve.set_defaults(handler=cmd_serve)

    down = lsub.add_parser("down", help="stop the lab and remove what it made")
    folder_arg(down)
    down.set_defaults(handler=cmd_down)

    status = lsub.add_parser("status", help="how to reach the running lab")
    folder_arg(status)
    status.add_argument("--json", action="store_true", help="print the lab's state as JSON")
    status.set_defaults(handler=cmd_status)

    churn = lsub.add_parser(
        "churn",
        help="make guest writes on running production VMs (logged for CBT)",
        description="Write into the disks of running production VMs, about RATE per second, "
        "for DURATION seconds; every write is logged for changed block tracking. VMs with a "
        "replication snapshot are left alone until it is removed.",
    )
    folder_arg(churn)
    churn.add_argument(
        "--rate", default="4M", help="bytes per second over the lab: 512K, 4M, 20M... (default 4M)"
    )
    churn.add_argument("--duration", type=float, default=5.0, help="seconds (default 5)")
    churn.add_argument("--vm", action="append", default=[], help="only this VM (repeatable)")
    churn.add_argument("--seed", type=int, default=11, help="random seed (default 11)")
    churn.add_argument("--json", action="store_true", help="print what was written as JSON")
    churn.set_defaults(handler=cmd_churn)


def _options_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vms", type=positive_int, default=24, help="production VMs (default 24)")
    p.add_argument(
        "--dr",
        choices=("vcenter", "esx"),
        default="vcenter",
        help="DR site: a vCenter with a cluster, or a standalone ESXi host (default vcenter)",
    )
    p.add_argument(
        "--disk-mib",
        default="64-256",
        help="capacity range of each thin disk in MiB, LOW-HIGH (default 64-256)",
    )
    p.add_argument("--wan-mbit", type=float, default=100.0, help="WAN rate (default 100)")
    p.add_argument("--no-wan", action="store_true", help="no namespace or shaped link")
    p.add_argument("--seed", type=int, default=7, help="random seed of the lab (default 7)")


def _options(args: argparse.Namespace) -> LabOptions:
    from core.lab.topology import LabOptions

    low, sep, high = str(args.disk_mib).partition("-")
    if not sep or not low.isdigit() or not high.isdigit():
        raise UsageError(f"--disk-mib {args.disk_mib!r} is not LOW-HIGH in MiB")
    options = LabOptions(
        vms=args.vms,
        dr=args.dr,
        disk_mib=(int(low), int(high)),
        seed=args.seed,
        wan_mbit=args.wan_mbit,
    )
    options.check()
    return options


def _folder(args: argparse.Namespace) -> Path:
    folder: Path = args.dir or default_folder()
    return folder.resolve()


def _option_argv(args: argparse.Namespace) -> list[str]:
    argv = [
        "--vms",
        str(args.vms),
        "--dr",
        args.dr,
        "--disk-mib",
        args.disk_mib,
        "--wan-mbit",
        str(args.wan_mbit),
        "--seed",
        str(args.seed),
    ]
    return [*argv, "--no-wan"] if args.no_wan else argv


def cmd_up(args: argparse.Namespace) -> int:
    from core.lab.lab import LabState

    _options(args)
    folder = _folder(args)
    if _state_file(folder).exists():
        state = LabState.load(folder)
        if _alive(state.supervisor_pid):
            raise LabError(f"a lab already runs in {folder} (`replicadesk lab down` stops it)")
        _cleanup(folder, state)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "lab.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "core",
                "lab",
                "serve",
                "--dir",
                str(folder),
                *_option_argv(args),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    deadline = time.monotonic() + UP_TIMEOUT
    while not _state_file(folder).exists():
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise LabError("the lab did not start: " + " | ".join(tail))
        if time.monotonic() > deadline or CANCEL.event.is_set():
            proc.terminate()
            proc.wait(DOWN_TIMEOUT)
            raise LabError(f"the lab did not start within {UP_TIMEOUT:.0f} s (see {log})")
        time.sleep(0.2)
    state = LabState.load(folder)
    if args.json:
        emit_json(_public(state))
    else:
        _print_state(state)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from core.lab.lab import Lab

    folder = _folder(args)
    lab = Lab(_options(args), folder=folder, wan=not args.no_wan)
    CANCEL.message = f"replicadesk: lab in {folder} stopping"
    lab.start()
    try:
        print(f"lab running in {folder}", flush=True)
        CANCEL.event.wait()
    finally:
        lab.stop()
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from core.lab.lab import LabState

    folder = _folder(args)
    state = LabState.load(folder)
    pid = state.supervisor_pid
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + DOWN_TIMEOUT
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    _cleanup(folder, state)
    print(f"lab in {folder} stopped")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from core.lab.lab import LabState

    state = LabState.load(_folder(args))
    if not _alive(state.supervisor_pid):
        raise LabError(
            f"the lab in {state.folder} is not running (`replicadesk lab down` cleans up)"
        )
    if args.json:
        emit_json(_public(state))
    else:
        _print_state(state)
    return 0


def cmd_churn(args: argparse.Namespace) -> int:
    from core.lab.churn import churn
    from core.lab.lab import LabState

    state = LabState.load(_folder(args))
    result = churn(
        state,
        rate=parse_bytes(args.rate),
        duration=args.duration,
        vm_names=args.vm,
        seed=args.seed,
        stop=CANCEL.event,
    )
    if args.json:
        emit_json(
            {
                "written_bytes": result.written_bytes,
                "writes": result.writes,
                "vms": sorted(result.vms),
                "skipped_with_snapshot": sorted(result.skipped_snapshot),
            }
        )
    else:
        print(
            f"wrote {result.written_bytes / (1 << 20):.1f} MiB in {result.writes} writes "
            f"on {len(result.vms)} VM(s)"
        )
        if result.skipped_snapshot:
            print(
                "left alone (replication snapshot present): "
                + ", ".join(sorted(result.skipped_snapshot))
            )
    return 0


# -- helpers -----------------------------------------------------------------------------------


def _state_file(folder: Path) -> Path:
    from core.lab.lab import STATE_FILE

    return folder / STATE_FILE


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def _cleanup(folder: Path, state: LabState) -> None:
    """What a supervisor that died without stopping leaves: namespace, files."""
    from core.lab import netns
    from core.lab.lab import remove_lab_files

    if state.dr.namespace and netns.can_create():
        netns.sweep_stale()
    remove_lab_files(folder, "lab.log")


def _public(state: LabState) -> dict[str, object]:
    from dataclasses import asdict

    doc = asdict(state)
    doc["password"] = "(any: the simulator accepts every password)"
    return doc


def _print_state(state: LabState) -> None:
    p, d = state.production, state.dr
    wan = f"{state.wan_mbit:g} Mbit/s link, namespace {d.namespace}" if state.wan_mbit else "none"
    kind = "vCenter" if d.model == "vpx" else "standalone ESXi host"
    print(f"lab running in {state.folder} (supervisor pid {state.supervisor_pid})")
    print(f"  production vCenter  {p.url}  ({state.vms} VMs, {state.disks} disks)")
    print(f"  DR site ({kind})  {d.url}")
    print(f"  user {state.user} (any password)")
    print(f"  production proxy    {p.proxy_address}:{p.proxy_port}")
    print(f"  DR proxy            {d.proxy_address}:{d.proxy_port}")
    print(f"  WAN                 {wan}")
    print(f"  mover client TLS    {state.client_tls['cert']}")
