"""A target data mover service (`replicadesk mover serve`) run as a child process.

The lab starts one per site (the DR one inside the site's network namespace), and the tests
start their own. The service prints one JSON line with the address it listens on when it is
ready; `stop()` ends it with SIGTERM (it finishes or discards the point in progress) and, if it
does not exit in time, SIGKILL. It never outlives `stop()`.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from core.errors import MoverConnectionError
from core.mover.tls import TlsFiles
from core.procutil import die_with_parent, stop_process


class MoverServiceProcess:
    def __init__(
        self,
        root: Path,
        tls: TlsFiles,
        *,
        listen: str = "127.0.0.1",
        port: int = 0,
        prefix: Sequence[str] = (),
        log: Path | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.root = Path(root)
        self.tls = tls
        self.listen = listen
        self.port = port
        self.prefix = list(prefix)
        self.log = log or self.root.parent / f"{self.root.name}-mover.log"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._logf: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> MoverServiceProcess:
        self.root.mkdir(parents=True, exist_ok=True)
        self._logf = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        cmd = [
            *self.prefix,
            sys.executable,
            "-m",
            "core",
            "-v",
            "mover",
            "serve",
            "--listen",
            f"{self.listen}:{self.port}",
            "--root",
            str(self.root),
            "--tls-cert",
            str(self.tls.cert),
            "--tls-key",
            str(self.tls.key),
            "--tls-ca",
            str(self.tls.ca),
            "--json",
        ]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._logf,
            preexec_fn=die_with_parent,
        )
        try:
            self.port = int(str(self._ready()["port"]))
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> dict[str, object]:
        assert self.proc is not None and self.proc.stdout is not None
        out = self.proc.stdout
        deadline = time.monotonic() + self.start_timeout
        text = b""
        with selectors.DefaultSelector() as sel:
            sel.register(out, selectors.EVENT_READ)
            while not text.endswith(b"}\n"):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._failed(f"no answer within {self.start_timeout:.0f} s")
                if not sel.select(left):
                    continue
                chunk = os.read(out.fileno(), 65536)
                if not chunk:
                    raise self._failed("it exited")
                text += chunk
        # The pipe stays open until stop(): a service writing to a closed pipe would die.
        info: dict[str, object] = json.loads(text)
        return info

    def _failed(self, why: str) -> MoverConnectionError:
        return MoverConnectionError(
            f"{self.listen}:{self.port}", f"the mover service did not start: {why}{self._tail()}"
        )

    def _tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return ": " + " | ".join(lines[-5:]) if lines else ""

    def stop(self, timeout: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc, timeout)
        if self._logf is not None:
            self._logf.close()
            self._logf = None

    def kill(self) -> None:
        """SIGKILL, as a crash would (the tests' way of killing a mover mid-run)."""
        if self.proc is not None:
            self.proc.kill()
        self.stop()

    def __enter__(self) -> MoverServiceProcess:
        return self.start() if self.proc is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
