"""A plan's pre- and post-scripts: a command line run on the backup server, with a timeout.

The command line is split as a POSIX shell would split it (quotes respected) and run without a
shell, so a VM or plan name can never inject a command; `sh -c '...'` gives a shell when one is
wanted. It gets the plan's name and action in REPLICADESK_PLAN and REPLICADESK_ACTION. Its
output (stdout and stderr, the last 100 lines) goes to the plan session's log. A script that
fails (exit status, timeout, or it cannot be started) raises PlanScriptError: a pre-script's
failure stops the plan before any VM is touched; a post-script's is a warning.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import PlanScriptError
from core.model.plans import PlanScript

MAX_LINES = 100


@dataclass(frozen=True)
class ScriptResult:
    seconds: float
    output: tuple[str, ...]


def run_script(
    plan: str, which: str, script: PlanScript, action: str, log: Callable[[str], None]
) -> ScriptResult:
    """Run `script`, its output lines given to `log` (also when it fails); PlanScriptError
    saying why it failed."""
    try:
        argv = shlex.split(script.command)
    except ValueError as e:
        raise PlanScriptError(plan, f"the {which} command line cannot be read: {e}") from None
    env = {**os.environ, "REPLICADESK_PLAN": plan, "REPLICADESK_ACTION": action}
    start = time.monotonic()
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=script.timeout,
            env=env,
            check=False,
        )
    except FileNotFoundError:
        raise PlanScriptError(plan, f"the {which} {argv[0]!r} was not found") from None
    except PermissionError:
        raise PlanScriptError(
            plan, f"the {which} {argv[0]!r} may not be run (permissions)"
        ) from None
    except subprocess.TimeoutExpired as e:
        lines = _lines(e.stdout, e.stderr)
        for line in lines:
            log(line)
        tail = f": {lines[-1]}" if lines else ""
        raise PlanScriptError(
            plan, f"the {which} did not finish within {script.timeout:g} s and was stopped{tail}"
        ) from None
    lines = _lines(proc.stdout, proc.stderr)
    for line in lines:
        log(line)
    if proc.returncode != 0:
        tail = f": {lines[-1]}" if lines else ""
        raise PlanScriptError(plan, f"the {which} ended with exit status {proc.returncode}{tail}")
    return ScriptResult(time.monotonic() - start, lines)


def _lines(*streams: bytes | str | None) -> tuple[str, ...]:
    out: list[str] = []
    for s in streams:
        if not s:
            continue
        text = s.decode("utf-8", "replace") if isinstance(s, bytes) else s
        out += [line for line in text.splitlines() if line.strip()]
    return tuple(out[-MAX_LINES:])
