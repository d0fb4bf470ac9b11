"""Who owns a lock or a running session: host, PID and the PID's start time.

A PID alone is not an identity: after a crash and a reboot, or simply much later, the same
number belongs to another process. Linux's /proc/<pid>/stat gives the process start time in
clock ticks since boot, which with the boot ID makes (host, boot, pid, start) unique. An owner
on another host cannot be checked from here, so it is never declared dead.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (comm) is in parentheses and may contain spaces; fields after it are plain.
    rest = stat[stat.rindex(")") + 2 :].split()
    return int(rest[19])  # field 22 overall: starttime


@dataclass(frozen=True)
class ProcessId:
    host: str
    pid: int
    started: int  # start time in clock ticks since boot; 0 when unknown
    boot: str = ""

    def __str__(self) -> str:
        return f"process {self.pid} on {self.host}"


def current() -> ProcessId:
    pid = os.getpid()
    return ProcessId(socket.gethostname(), pid, _start_ticks(pid) or 0, _boot_id())


def is_alive(owner: ProcessId) -> bool | None:
    """True or False for a process of this host; None when it cannot be known (another host)."""
    me = current()
    if owner.host != me.host:
        return None
    if owner.boot and me.boot and owner.boot != me.boot:
        return False  # the host rebooted since
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, belongs to another user
    if owner.started:
        ticks = _start_ticks(owner.pid)
        if ticks is not None and ticks != owner.started:
            return False  # the PID was reused
    return True
