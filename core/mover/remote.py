"""The target mover seen from the source side across a WAN: a TLS client of `mover serve`.

Implements `TargetEndpoint` over core.mover.protocol. One thread both sends and, between
batches, polls for an ERROR the service may have sent (a block that failed its digest check,
a full file system): an SSL socket is never read and written from two threads at once.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time
import uuid
from pathlib import Path
from typing import Any

from core.errors import (
    AuthenticationError,
    MoverConnectionError,
    ProtocolError,
    RemoteError,
)
from core.mover import protocol as p
from core.mover.batch import BlockBatch
from core.mover.stats import StageClock
from core.mover.target import CommitResult, OpenRequest, ProgressFn, ReplicaState, TargetEndpoint
from core.mover.tls import TlsFiles, client_context
from core.replica import digestfile
from core.replica.digestfile import DigestFileError, DigestSet

CONNECT_TIMEOUT = 20.0
IO_TIMEOUT = 600.0


def remote_error(body: bytes | bytearray) -> RemoteError:
    info = p.parse_json(body)
    err = RemoteError(str(info.get("message", "unknown error")))
    err.kind = str(info.get("error", "RemoteError"))  # type: ignore[attr-defined]
    code = info.get("exit_code")
    if isinstance(code, int):
        err.exit_code = code
    return err


class RemoteTarget(TargetEndpoint):
    def __init__(
        self,
        host: str,
        port: int,
        tls: TlsFiles,
        replica: str,
        clock: StageClock | None = None,
        *,
        server_name: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.replica = replica
        self.clock = clock or StageClock()
        self._ctx = client_context(tls)
        self._server_name = server_name or host
        self._sock: ssl.SSLSocket | None = None
        self._committed = False
        self.sent_bytes = 0

    @property
    def description(self) -> str:
        return f"{self.host}:{self.port}/{self.replica}"

    @property
    def _address(self) -> str:
        return f"{self.host}:{self.port}"

    # -- connection ----------------------------------------------------------------------------

    def _connect(self) -> ssl.SSLSocket:
        try:
            raw = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT)
        except OSError as e:
            raise MoverConnectionError(self._address, e.strerror or str(e)) from e
        try:
            sock = self._ctx.wrap_socket(raw, server_hostname=self._server_name)
        except ssl.SSLCertVerificationError as e:
            raw.close()
            raise AuthenticationError(
                self._address, f"its certificate is not trusted: {e.verify_message}"
            ) from e
        except ssl.SSLError as e:
            raw.close()
            raise AuthenticationError(self._address, f"TLS handshake failed: {e}") from e
        except OSError as e:
            # A reset or timeout during the handshake is the network (or a dying service),
            # not a verdict on our credentials.
            raw.close()
            raise MoverConnectionError(self._address, f"during the TLS handshake: {e}") from e
        sock.settimeout(IO_TIMEOUT)
        return sock

    def _require(self) -> ssl.SSLSocket:
        if self._sock is None:
            raise ProtocolError("not connected")
        return self._sock

    def _recv(self, expect: set[int], first: bool = False) -> tuple[int, bytearray]:
        sock = self._require()
        try:
            frame = p.recv_frame(sock)
        except ssl.SSLError as e:
            if first:  # TLS 1.3 reports a refused client certificate on the first read
                raise AuthenticationError(self._address, f"the mover refused this peer: {e}") from e
            raise MoverConnectionError(self._address, f"TLS error: {e}") from e
        except OSError as e:
            raise MoverConnectionError(self._address, str(e)) from e
        if frame is None:
            raise MoverConnectionError(self._address, "the mover closed the connection")
        kind, body = frame
        if kind == p.ERROR:
            raise remote_error(body)
        if kind not in expect:
            raise ProtocolError(f"unexpected message type {kind}")
        return kind, body

    def _send(self, kind: int, *parts: bytes | memoryview) -> None:
        sock = self._require()
        try:
            self.sent_bytes += p.send_frame(sock, kind, *parts)
        except (OSError, ssl.SSLError) as e:
            pending = self._pending_error(wait=2.0)
            if pending is not None:
                raise pending from e
            raise MoverConnectionError(self._address, f"connection lost: {e}") from e

    def _pending_error(self, wait: float = 0.0) -> RemoteError | None:
        """An ERROR the service sent while we were streaming, if one is waiting."""
        sock = self._sock
        if sock is None:
            return None
        deadline = time.monotonic() + wait
        try:
            while True:
                if sock.pending() or select.select([sock], [], [], 0)[0]:
                    frame = p.recv_frame(sock)
                    if frame is not None and frame[0] == p.ERROR:
                        return remote_error(frame[1])
                    return None
                if time.monotonic() >= deadline:
                    return None
                time.sleep(0.05)
        except (OSError, ssl.SSLError, ProtocolError):
            return None

    # -- TargetEndpoint ------------------------------------------------------------------------

    def open(self, request: OpenRequest) -> ReplicaState:
        self._sock = self._connect()
        try:
            self._send(
                p.HELLO,
                p.json_bytes(
                    {
                        "protocol": p.PROTOCOL_VERSION,
                        "replica": self.replica,
                        "disk_size": request.disk_size,
                        "block_size": request.block_size,
                        "keep": request.keep,
                        "source": request.source,
                    }
                ),
            )
            _, body = self._recv({p.READY}, first=True)
        except MoverConnectionError as e:
            # The service closes the connection right after the handshake when it refuses the
            # certificate (TLS 1.3 sends its verdict after the client thinks it is done).
            self.close()
            raise AuthenticationError(self._address, f"the connection was closed: {e}") from e
        except BaseException:
            self.close()
            raise
        info = p.parse_json(body)
        latest = info.get("latest_point")
        return ReplicaState(
            uuid.UUID(str(info["replica_id"])),
            int(latest) if latest is not None else None,
            int(info.get("point_count", 0)),
        )

    def maintain(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one upkeep operation on the replica (see core.replica.maintenance)."""
        self._sock = self._connect()
        try:
            self._send(
                p.MAINTAIN,
                p.json_bytes({"protocol": p.PROTOCOL_VERSION, "replica": self.replica, **request}),
            )
            _, body = self._recv({p.MAINTAINED}, first=True)
            return dict(p.parse_json(body))
        finally:
            self.close()

    def rebuild_digests(self, progress: ProgressFn | None = None) -> DigestSet:
        self._send(p.REBUILD)
        chunks: list[bytes] = []
        last = 0
        while True:
            kind, body = self._recv({p.PROGRESS, p.DIGESTS, p.DIGESTS_END})
            if kind == p.PROGRESS:
                done = int(p.parse_json(body)["done"])
                if progress:
                    progress(done - last)
                last = done
            elif kind == p.DIGESTS:
                chunks.append(bytes(body))
            else:
                break
        try:
            return digestfile.decode(b"".join(chunks))
        except DigestFileError as e:
            raise ProtocolError(f"rebuilt digests arrived damaged: {e}") from e

    def put(self, batch: BlockBatch) -> None:
        pending = self._pending_error()
        if pending is not None:
            raise pending
        try:
            self._send(p.BATCH, *p.encode_batch(batch))
        finally:
            batch.done()

    def commit(self, checksum: str) -> CommitResult:
        self._send(p.COMMIT, p.json_bytes({"checksum": checksum}))
        _, body = self._recv({p.COMMITTED})
        info = p.parse_json(body)
        self._committed = True
        busy = {str(k): float(v) for k, v in dict(info.get("busy", {})).items()}
        return CommitResult(
            point_id=int(info["point_id"]),
            created=str(info["created"]),
            path=str(info["path"]),
            kind=str(info["kind"]),
            merged=[int(x) for x in info.get("merged", [])],
            written_bytes=int(info.get("written_bytes", 0)),
            busy=busy,
        )

    def abort(self) -> None:
        if self._sock is not None and not self._committed:
            # If this fails the service discards the uncommitted point when the connection drops.
            with contextlib.suppress(OSError, ssl.SSLError, ProtocolError):
                p.send_frame(self._sock, p.ABORT)

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None


def replica_folder(root: Path, name: str) -> Path | None:
    """Where a service rooted at `root` keeps the replica a client asks for, or None.

    A name is a path relative to the root, or an absolute path inside it (a job asks the target
    proxy to write where it sees the target datastore). Nothing outside the root, no '..'.
    """
    if not name or "\x00" in name:
        return None
    path = Path(name)
    if ".." in path.parts:
        return None
    if not path.is_absolute():
        return root / path
    try:
        rel = path.relative_to(root)
    except ValueError:
        return None
    return root / rel if rel.parts else None
