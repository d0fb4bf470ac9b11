"""Child processes that never outlive the process that started them.

The lab's simulators and mover services are children of a test run, a benchmark or the lab's
supervisor. If that parent is killed (a CI timeout, SIGKILL), Linux's parent-death signal ends
them too (prctl PR_SET_PDEATHSIG, kept across the `ip netns exec` that may sit in between), so
nothing is left running.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from typing import Any

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    """A `preexec_fn`: the child gets SIGTERM when its parent thread exits."""
    _libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def stop_process(proc: subprocess.Popen[Any], timeout: float, group: bool = False) -> None:
    """SIGTERM, wait up to `timeout`, then SIGKILL (the whole group if `group`); always reaped.
    The child's stdout pipe, if any, is closed."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                if group:
                    os.killpg(proc.pid, signal.SIGKILL)
                else:
                    proc.kill()
            proc.wait()
    if proc.stdout is not None and not proc.stdout.closed:
        proc.stdout.close()
