"""Power and guest state of a VM: what failover, planned failover and undo need.

Power on/off are tasks (waited with a deadline); a guest shutdown is a request to VMware Tools
that returns at once, so `shutdown_guest` follows ``runtime.powerState`` itself and powers the VM
off when the guest does not stop in time (planned failover: "guest shutdown, power off after a
timeout"). `wait_for_guest_ips` polls what VMware Tools reports, for the re-IP check after boot.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass

from core.errors import VSphereError, VSphereStateError
from core.vsphere.connection import VSphereClient
from core.vsphere.models import GuestNic
from core.vsphere.props import retrieve_one
from core.vsphere.tasks import wait
from core.vsphere.vmparts import parse_guest_nics

POWER_TIMEOUT = 600.0
POLL = 0.25


@dataclass(frozen=True)
class GuestState:
    power_state: str
    tools_running: bool
    host_name: str
    ip_address: str
    nics: tuple[GuestNic, ...]

    @property
    def ips(self) -> tuple[str, ...]:
        ips = [ip for n in self.nics for ip in n.ip_addresses]
        if self.ip_address and self.ip_address not in ips:
            ips.insert(0, self.ip_address)
        return tuple(ips)


@dataclass(frozen=True)
class ShutdownResult:
    graceful: bool  # the guest shut itself down; False: powered off after the timeout
    seconds: float
    reason: str  # why it was powered off ("" when graceful)


def power_state(client: VSphereClient, vm: str) -> str:
    p = retrieve_one(
        client, client.obj("VirtualMachine", vm), ["runtime.powerState"], f"read VM {vm}"
    )
    return str(p.get("runtime.powerState", ""))


def power_on(client: VSphereClient, vm: str, timeout: float = POWER_TIMEOUT) -> None:
    """Power the VM on; nothing to do when it is on already."""
    if power_state(client, vm) == "poweredOn":
        return
    obj = client.obj("VirtualMachine", vm)
    what = f"power on VM {vm}"
    wait(client, client.call(what, obj.PowerOnVM_Task), what, timeout)


def power_off(client: VSphereClient, vm: str, timeout: float = POWER_TIMEOUT) -> None:
    """Power the VM off (hard); nothing to do when it is off already."""
    if power_state(client, vm) == "poweredOff":
        return
    obj = client.obj("VirtualMachine", vm)
    what = f"power off VM {vm}"
    wait(client, client.call(what, obj.PowerOffVM_Task), what, timeout)


def shutdown_guest(
    client: VSphereClient, vm: str, timeout: float = 300.0, force_after: bool = True
) -> ShutdownResult:
    """Ask the guest to shut down; wait up to `timeout`, then power off (if `force_after`)."""
    start = time.monotonic()
    if power_state(client, vm) == "poweredOff":
        return ShutdownResult(True, 0.0, "")
    obj = client.obj("VirtualMachine", vm)
    what = f"shut down the guest of VM {vm}"
    reason = ""
    try:
        client.call(what, obj.ShutdownGuest)
    except VSphereError as e:  # no VMware Tools, or Tools not running
        if not force_after:
            raise
        reason = str(e)
    if not reason:
        while time.monotonic() - start < timeout:
            if power_state(client, vm) == "poweredOff":
                return ShutdownResult(True, time.monotonic() - start, "")
            time.sleep(POLL)
        reason = f"the guest was still running after {timeout:.0f} s"
        if not force_after:
            raise VSphereStateError(what, reason)
    power_off(client, vm)
    return ShutdownResult(False, time.monotonic() - start, reason)


def guest_state(client: VSphereClient, vm: str) -> GuestState:
    p = retrieve_one(
        client,
        client.obj("VirtualMachine", vm),
        [
            "runtime.powerState",
            "guest.toolsRunningStatus",
            "guest.hostName",
            "guest.ipAddress",
            "guest.net",
        ],
        f"read the guest of VM {vm}",
    )
    return GuestState(
        power_state=str(p.get("runtime.powerState", "")),
        tools_running=str(p.get("guest.toolsRunningStatus", "")) == "guestToolsRunning",
        host_name=str(p.get("guest.hostName", "") or ""),
        ip_address=str(p.get("guest.ipAddress", "") or ""),
        nics=parse_guest_nics(p.get("guest.net")),
    )


def wait_for_guest_ips(
    client: VSphereClient, vm: str, expected: Collection[str] = (), timeout: float = 300.0
) -> GuestState:
    """The guest's state once it reports every address in `expected` (or any address when
    empty); VSphereStateError after `timeout`, naming what it reported."""
    deadline = time.monotonic() + timeout
    while True:
        state = guest_state(client, vm)
        ips = set(state.ips)
        if (expected and set(expected) <= ips) or (not expected and ips):
            return state
        if time.monotonic() >= deadline:
            want = ", ".join(expected) if expected else "any address"
            seen = ", ".join(sorted(ips)) or "none"
            raise VSphereStateError(
                f"wait for the guest addresses of VM {vm}",
                f"after {timeout:.0f} s it reports {seen}, not {want}",
            )
        time.sleep(POLL)
