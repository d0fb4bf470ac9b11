"""`replicadesk mover serve`: the target data mover as a TLS service on a proxy of the DR site.

Each connection is one disk's run: a thread drives a `LocalTarget` on a replica folder under the
service's root. The TLS handshake (mutual: the client must present a certificate signed by the
deployment's CA) happens before any application byte is read; a refused peer is logged and
dropped. A connection that ends without COMMIT discards its point; every error goes back to the
client as an ERROR message naming the problem.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ProtocolError, ReplicaDeskError
from core.mover import protocol as p
from core.mover.remote import replica_folder
from core.mover.stats import StageClock
from core.mover.target import LocalTarget, OpenRequest
from core.mover.tls import TlsFiles, server_context
from core.replica import digestfile
from core.replica.maintenance import maintain

log = logging.getLogger("replicadesk.mover")

HANDSHAKE_TIMEOUT = 15.0
IDLE_TIMEOUT = 600.0
DRAIN_SECONDS = 10.0
DIGEST_CHUNK = 8 << 20


@dataclass(frozen=True)
class ServiceConfig:
    root: Path
    host: str
    port: int
    tls: TlsFiles


class MoverService:
    """Accepts connections until `stop()`; one thread per connection."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.root = Path(config.root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._ctx = server_context(config.tls)
        self._listener = socket.create_server((config.host, config.port), reuse_port=False)
        self._listener.settimeout(0.5)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def serve_forever(self) -> None:
        log.info("mover listening on %s:%d, replicas under %s", *self.address, self.root)
        try:
            while not self._stop.is_set():
                try:
                    raw, peer = self._listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    if self._stop.is_set():
                        break
                    raise
                t = threading.Thread(
                    target=self._handle, args=(raw, f"{peer[0]}:{peer[1]}"), daemon=True
                )
                t.start()
                self._threads = [x for x in self._threads if x.is_alive()] + [t]
        finally:
            self._listener.close()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float = 10.0) -> None:
        for t in list(self._threads):
            t.join(timeout)

    # -- one connection ------------------------------------------------------------------------

    def _handle(self, raw: socket.socket, peer: str) -> None:
        raw.settimeout(HANDSHAKE_TIMEOUT)
        try:
            sock = self._ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as e:
            log.warning("refused %s: TLS handshake failed (%s)", peer, e)
            raw.close()
            return
        sock.settimeout(IDLE_TIMEOUT)
        target: LocalTarget | None = None
        try:
            target = self._session(sock, peer)
        except ReplicaDeskError as e:
            log.warning("%s: %s", peer, e)
            self._send_error(sock, e)
        except (OSError, ssl.SSLError) as e:
            log.warning("%s: connection lost (%s)", peer, e)
        finally:
            if target is not None:
                target.close()
            try:
                sock.close()
            except OSError:
                log.debug("%s: close failed", peer)

    def _send_error(self, sock: ssl.SSLSocket, error: ReplicaDeskError) -> None:
        """Tell the client, then read and discard until it hangs up (so it sees the message)."""
        try:
            p.send_json(
                sock,
                p.ERROR,
                {
                    "error": type(error).__name__,
                    "message": str(error),
                    "exit_code": error.exit_code,
                },
            )
            sock.settimeout(1.0)
            deadline = time.monotonic() + DRAIN_SECONDS
            buf = bytearray(1 << 20)
            while time.monotonic() < deadline:
                try:
                    if sock.recv_into(buf) == 0:
                        break
                except TimeoutError:
                    continue
        except (OSError, ssl.SSLError):
            return

    def _session(self, sock: ssl.SSLSocket, peer: str) -> LocalTarget | None:
        frame = p.recv_frame(sock)
        if frame is None:
            return None
        kind, body = frame
        if kind not in (p.HELLO, p.MAINTAIN):
            raise ProtocolError(f"expected HELLO, got message type {kind}")
        if kind == p.MAINTAIN:
            self._maintain(sock, p.parse_json(body), peer)
            return None
        hello = p.parse_json(body)
        if hello.get("protocol") != p.PROTOCOL_VERSION:
            raise ProtocolError(f"protocol version {hello.get('protocol')!r} is not supported")
        name = str(hello.get("replica", ""))
        folder = replica_folder(self.root, name)
        if folder is None:
            raise ProtocolError(f"replica {name!r} is not a path inside this mover's root")
        try:
            request = OpenRequest(
                int(hello["disk_size"]),
                int(hello["block_size"]),
                int(hello["keep"]),
                str(hello.get("source", "")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ProtocolError(f"HELLO is missing or has a bad field: {e}") from e
        clock = StageClock()
        target = LocalTarget(folder, clock)
        try:
            state = target.open(request)
        except BaseException:
            target.close()
            raise
        log.info("%s: replica %s opened (latest point %s)", peer, name, state.latest_point)
        p.send_json(
            sock,
            p.READY,
            {
                "replica_id": str(state.replica_id),
                "latest_point": state.latest_point,
                "point_count": state.point_count,
            },
        )
        try:
            self._loop(sock, target, clock, peer, name)
        except BaseException:
            target.abort()
            target.close()
            raise
        return target

    def _maintain(self, sock: ssl.SSLSocket, request: dict[str, Any], peer: str) -> None:
        if request.get("protocol") != p.PROTOCOL_VERSION:
            raise ProtocolError(f"protocol version {request.get('protocol')!r} is not supported")
        name = str(request.get("replica", ""))
        folder = replica_folder(self.root, name)
        if folder is None:
            raise ProtocolError(f"replica {name!r} is not a path inside this mover's root")
        if request.get("op") == "seed":
            # The disk to seed from must be one this mover may read: inside its root too.
            disk = replica_folder(self.root, str(request.get("disk", "")))
            if disk is None:
                raise ProtocolError(
                    f"disk {request.get('disk')!r} is not a path inside this mover's root"
                )
            request = {**request, "disk": str(disk)}
        answer = maintain(folder, request)
        p.send_json(sock, p.MAINTAINED, answer)
        log.info("%s: replica %s: %s done", peer, name, request.get("op"))

    def _loop(
        self, sock: ssl.SSLSocket, target: LocalTarget, clock: StageClock, peer: str, name: str
    ) -> None:
        while True:
            start = time.perf_counter()
            frame = p.recv_frame(sock)
            clock.add("network", time.perf_counter() - start)
            if frame is None:
                log.info("%s: connection closed without commit; point discarded", peer)
                target.abort()
                return
            kind, body = frame
            if kind == p.BATCH:
                target.put(p.decode_batch(body))
            elif kind == p.REBUILD:
                self._rebuild(sock, target)
            elif kind == p.COMMIT:
                checksum = str(p.parse_json(body).get("checksum", ""))
                result = target.commit(checksum)
                p.send_json(
                    sock,
                    p.COMMITTED,
                    {
                        "point_id": result.point_id,
                        "created": result.created,
                        "path": str(Path(result.path).relative_to(self.root)),
                        "kind": result.kind,
                        "merged": result.merged,
                        "written_bytes": result.written_bytes,
                        "busy": result.busy,
                    },
                )
                log.info("%s: replica %s: restore point %d committed", peer, name, result.point_id)
                return
            elif kind == p.ABORT:
                target.abort()
                log.info("%s: run aborted by the source; point discarded", peer)
                return
            else:
                raise ProtocolError(f"unexpected message type {kind}")

    def _rebuild(self, sock: ssl.SSLSocket, target: LocalTarget) -> None:
        done = 0
        last = 0.0

        def progress(n: int) -> None:
            nonlocal done, last
            done += n
            now = time.monotonic()
            if now - last > 0.5:
                last = now
                p.send_json(sock, p.PROGRESS, {"done": done})

        data = digestfile.encode(target.rebuild_digests(progress))
        for pos in range(0, len(data), DIGEST_CHUNK):
            p.send_frame(sock, p.DIGESTS, data[pos : pos + DIGEST_CHUNK])
        p.send_frame(sock, p.DIGESTS_END)
