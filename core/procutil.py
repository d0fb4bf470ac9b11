"""Child processes that never outlive the process that started them.

The lab's simulators and mover services are children of a test run, a benchmark or the lab's
supervisor. If that parent is killed (a CI timeout, SIGKILL), Linux's parent-death signal ends
them too (prctl PR_SET_PDEATHSIG, kept across the `ip netns exec` that may sit in between), so
nothing is left running.
"""

from __future__ import annotations

import ctypes
import signal

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    """A `preexec_fn`: the child gets SIGTERM when its parent thread exits."""
    _libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
