"""The lab's WAN: the DR site in its own network namespace behind a rate-limited veth link.

`replicadesk lab up` (as root) and the offsite tests put the DR site's simulator and mover
service in a namespace of their own, reached from the production side only through a veth pair
whose both ends are shaped with `tc tbf` (LAB.md: the kernel here has no netem, and tbf shapes
egress only, so each end gets one; 100 Mbit/s gave 96 Mbit/s for one TCP stream).

Names and addresses are made by this module, never taken from the machine: the namespace is
`rdesk-<tag>`, the veth ends `rd<tag>h` / `rd<tag>s`, and the /30 is picked inside 10.199.0.0/16
among subnets no interface of this machine uses. `WanLink.close()` removes everything it made,
and `sweep_stale()` removes what a killed lab left behind (its owner process is gone).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from core.errors import LabNetworkError

PREFIX = "rdesk-"
_POOL = ipaddress.IPv4Network("10.199.0.0/16")
_STATE_DIR = Path("/run/replicadesk-netns")


@dataclass(frozen=True)
class LinkShape:
    """The WAN's shape: a token bucket on each end of the link."""

    rate_mbit: float = 100.0
    burst_kb: int = 256
    latency_ms: int = 50

    def tbf_args(self) -> list[str]:
        if self.rate_mbit <= 0:
            raise LabNetworkError("link", f"rate {self.rate_mbit} Mbit/s is not positive")
        return [
            "tbf",
            "rate",
            f"{self.rate_mbit:g}mbit",
            "burst",
            f"{self.burst_kb}kb",
            "latency",
            f"{self.latency_ms}ms",
        ]


def can_create() -> bool:
    """True when this process may make namespaces (root with `ip` and `tc` installed)."""
    return os.geteuid() == 0 and shutil.which("ip") is not None and shutil.which("tc") is not None


def _run(args: Sequence[str], what: str) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LabNetworkError(
            what, (proc.stderr or proc.stdout).strip() or f"exit {proc.returncode}"
        )
    return proc.stdout


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = _run(["ip", "-j", "-4", "addr", "show"], "listing addresses")
    nets: list[ipaddress.IPv4Network] = []
    for link in json.loads(out or "[]"):
        for a in link.get("addr_info", []):
            nets.append(ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False))
    return nets


def _free_subnet(tag: int) -> ipaddress.IPv4Network:
    used = _used_networks()
    subnets = list(_POOL.subnets(new_prefix=30))
    start = tag % len(subnets)
    for i in range(len(subnets)):
        net = subnets[(start + i) % len(subnets)]
        if not any(net.overlaps(u) for u in used):
            return net
    raise LabNetworkError("addresses", f"no free /30 left in {_POOL}")


class WanLink:
    """A namespace for the DR site, joined to this host's namespace by a shaped veth pair."""

    def __init__(self, shape: LinkShape | None = None, tag: int | None = None) -> None:
        self.shape = shape or LinkShape()
        self.tag = tag if tag is not None else os.getpid() % 100000
        self.namespace = f"{PREFIX}{self.tag}"
        self.host_if = f"rd{self.tag}h"
        self.site_if = f"rd{self.tag}s"
        self.host_address = ""
        self.site_address = ""
        self._made = False

    # -- life cycle ------------------------------------------------------------------------------

    def open(self) -> WanLink:
        if not can_create():
            raise LabNetworkError(
                "namespace", "making a network namespace needs root and iproute2 (ip, tc)"
            )
        net = _free_subnet(self.tag)
        host, site = list(net.hosts())[:2]
        self.host_address, self.site_address = str(host), str(site)
        ns = self.namespace
        self._made = True
        try:
            _run(["ip", "netns", "add", ns], f"creating namespace {ns}")
            _record_owner(ns)
            _run(
                ["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.site_if],
                "creating the veth pair",
            )
            _run(["ip", "link", "set", self.site_if, "netns", ns], "moving the site end")
            _run(["ip", "addr", "add", f"{host}/30", "dev", self.host_if], "host address")
            _run(["ip", "link", "set", self.host_if, "up"], "host end up")
            _run(["ip", "-n", ns, "addr", "add", f"{site}/30", "dev", self.site_if], "site address")
            _run(["ip", "-n", ns, "link", "set", self.site_if, "up"], "site end up")
            _run(["ip", "-n", ns, "link", "set", "lo", "up"], "site loopback up")
            self.shape_link(self.shape)
        except BaseException:
            self.close()
            raise
        return self

    def shape_link(self, shape: LinkShape) -> None:
        """Set (or change) the rate of both ends."""
        args = shape.tbf_args()
        _run(["tc", "qdisc", "replace", "dev", self.host_if, "root", *args], "shaping host end")
        _run(
            [
                "ip",
                "netns",
                "exec",
                self.namespace,
                "tc",
                "qdisc",
                "replace",
                "dev",
                self.site_if,
                "root",
                *args,
            ],
            "shaping site end",
        )
        self.shape = shape

    def close(self) -> None:
        """Remove the link and the namespace; idempotent, and waits until they are gone."""
        if not self._made:
            return
        _remove(self.namespace, self.host_if)
        self._made = False

    def __enter__(self) -> WanLink:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- use ---------------------------------------------------------------------------------------

    def exec_prefix(self) -> list[str]:
        """Prepend to a command to run it inside the DR site's namespace."""
        return ["ip", "netns", "exec", self.namespace]

    def processes(self) -> list[int]:
        """PIDs of processes running inside the namespace."""
        out = subprocess.run(
            ["ip", "netns", "pids", self.namespace], capture_output=True, text=True, check=False
        ).stdout
        return [int(p) for p in out.split()]


def _record_owner(namespace: str) -> None:
    _STATE_DIR.mkdir(parents=True, exist_ok=True)
    (_STATE_DIR / namespace).write_text(str(os.getpid()))


def _remove(namespace: str, host_if: str | None) -> None:
    for pid in _namespace_pids(namespace):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    if host_if:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
    (_STATE_DIR / namespace).unlink(missing_ok=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if namespace not in namespaces() and not (
            host_if and Path(f"/sys/class/net/{host_if}").exists()
        ):
            return
        time.sleep(0.05)
    raise LabNetworkError(f"removing namespace {namespace}", "it is still there after 5 s")


def _namespace_pids(namespace: str) -> list[int]:
    out = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False
    ).stdout
    return [int(p) for p in out.split()]


def namespaces() -> list[str]:
    """Names of this machine's network namespaces made by ReplicaDesk."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    names = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith(PREFIX)]


def sweep_stale() -> list[str]:
    """Remove ReplicaDesk namespaces whose owner process is gone; return their names."""
    removed = []
    for ns in namespaces():
        owner_file = _STATE_DIR / ns
        try:
            owner = int(owner_file.read_text())
        except (OSError, ValueError):
            owner = 0
        if owner and _alive(owner):
            continue
        tag = ns[len(PREFIX) :]
        _remove(ns, f"rd{tag}h")
        removed.append(ns)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
