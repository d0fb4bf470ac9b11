"""Mutual TLS between the data movers: contexts and the lab's certificate authority.

Both ends present a certificate signed by the deployment's CA and check the other's; a peer
without one is refused during the handshake, before any application data is read. The server's
certificate names the hosts it is reached by (subjectAltName), and clients check it. Making the
certificates is `core.mover.certs` (it needs `cryptography`, 30 ms to import, which a run does not).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from core.errors import UsageError


@dataclass(frozen=True)
class TlsFiles:
    """A mover's own certificate and key, and the CA its peers must be signed by."""

    cert: Path
    key: Path
    ca: Path

    def check(self) -> None:
        for what, path in (("certificate", self.cert), ("key", self.key), ("CA", self.ca)):
            if not Path(path).is_file():
                raise UsageError(f"TLS {what} file {path} does not exist")


def _context(purpose: ssl.Purpose, files: TlsFiles) -> ssl.SSLContext:
    files.check()
    proto = (
        ssl.PROTOCOL_TLS_SERVER if purpose is ssl.Purpose.CLIENT_AUTH else ssl.PROTOCOL_TLS_CLIENT
    )
    ctx = ssl.SSLContext(proto)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(files.cert), str(files.key))
        ctx.load_verify_locations(cafile=str(files.ca))
    except (ssl.SSLError, OSError) as e:
        raise UsageError(f"cannot load TLS credentials ({files.cert}, {files.ca}): {e}") from e
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def server_context(files: TlsFiles) -> ssl.SSLContext:
    return _context(ssl.Purpose.CLIENT_AUTH, files)


def client_context(files: TlsFiles) -> ssl.SSLContext:
    ctx = _context(ssl.Purpose.SERVER_AUTH, files)
    ctx.check_hostname = True
    return ctx
