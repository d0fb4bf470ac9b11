"""Logging in to the managed servers a job names, with the credentials kept in the store.

The only place where a stored secret is revealed: to hand it to the vSphere session, never to a
log. `check_server` is what `replicadesk server add` and the console's Add Server dialog run
before storing a server; `add_server` stores it and its password for both, and
`read_certificate` shows an https server's certificate before it is trusted.

Trust over https: a server whose certificate was accepted when it was added (or by `replicadesk
server trust`) is connected to with that thumbprint pinned, checked at every TLS connection; a
certificate that changed is a `VSphereCertificateError` saying how to accept the new one. An https
server stored before pinning existed has no thumbprint: it is connected to without verification,
as before, and every such connection logs a warning (`pin_warning`) saying how to pin it. The
warning goes to the log rather than into job sessions, where it would turn every run's result
into "warning" for a setting only an administrator can change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass

from core.errors import (
    AlreadyExistsError,
    InvalidSettingError,
    ServerCheckError,
    VSphereCertificateError,
    VSphereError,
)
from core.model.infra import ManagedServer, Protocol, ServerKind
from core.model.secret import Credential, Secret
from core.store.store import Store
from core.vsphere.connection import VSphereClient

log = logging.getLogger(__name__)

KEEPALIVE = 300.0  # seconds between keep-alive calls on long runs
CHECK_TIMEOUT = 10.0  # seconds to read a server's certificate


def trust_command(address: str) -> str:
    return f"replicadesk server trust {address}"


def pin_warning(server: ManagedServer) -> str | None:
    """What to tell an administrator about a server whose certificate is not checked: an https
    server with no accepted thumbprint (None when there is nothing to say)."""
    if server.protocol != Protocol.HTTPS or server.thumbprint:
        return None
    return (
        f"managed server {server.address}: its TLS certificate is not pinned, so it is not "
        f"verified (anyone in the path could pose as it): run `{trust_command(server.address)}` "
        "to see its thumbprint and accept it"
    )


def connect(
    server: ManagedServer, password: Secret | None, keepalive: bool = True
) -> VSphereClient:
    warning = pin_warning(server)
    if warning is not None:
        log.warning("%s", warning)
    try:
        return VSphereClient.connect(
            server.address,
            server.port,
            server.user,
            password.reveal() if password is not None else "",
            protocol=str(server.protocol),  # type: ignore[arg-type]
            verify_tls=bool(server.thumbprint),
            thumbprint=server.thumbprint or None,
            keepalive=KEEPALIVE if keepalive else None,
        )
    except VSphereCertificateError as e:
        where, why = e.args
        raise VSphereCertificateError(
            where,
            f"{why}; if the server's administrator confirms its new certificate, accept it with "
            f"`{trust_command(server.address)}`",
        ) from e


def connect_stored(store: Store, address: str, keepalive: bool = True) -> VSphereClient:
    server = store.servers.get(address)
    secret = store.credentials.get(server.credential).secret if server.credential else None
    return connect(server, secret, keepalive)


def check_server(server: ManagedServer, password: Secret | None) -> str:
    """Log in once and say what answered; a clear error when it is not what `server` says."""
    with connect(server, password, keepalive=False) as client:
        about = client.about
    is_vcenter = about.is_vcenter
    if (server.kind == ServerKind.VCENTER) != is_vcenter:
        found = "a vCenter Server" if is_vcenter else "a standalone ESXi host"
        raise ServerCheckError(server.address, f"it is {found}, not a {server.kind}")
    return f"{about.full_name}"


@dataclass(frozen=True)
class PresentedCertificate:
    """The TLS certificate a server presents, read before it is trusted, as an administrator
    checks it: its SHA-256 thumbprint (the pin), subject, issuer and validity."""

    thumbprint: str  # SHA-256, lowercase hex
    subject: str
    issuer: str
    not_after: dt.datetime  # UTC


def read_certificate(
    address: str, port: int, timeout: float = CHECK_TIMEOUT
) -> PresentedCertificate:
    """The certificate the https server at `address`:`port` presents (unverified);
    `ServerCheckError` saying why when none can be read."""
    from cryptography import x509

    from core.vsphere.connection import presented_certificate

    try:
        der = presented_certificate(address, port, timeout)
    except VSphereError as e:
        raise ServerCheckError(address, f"cannot read its TLS certificate: {e}") from e
    thumbprint = hashlib.sha256(der).hexdigest()
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return PresentedCertificate(thumbprint, "(unreadable)", "(unreadable)", dt.datetime.min)
    return PresentedCertificate(
        thumbprint,
        cert.subject.rfc4514_string(),
        cert.issuer.rfc4514_string(),
        cert.not_valid_after_utc,
    )


def credential_name(address: str) -> str:
    return f"server:{address}"


def refuse_duplicate(store: Store, address: str) -> None:
    """`AlreadyExistsError` when a server with this address is stored already."""
    if any(s.address == address for s in store.servers.list()):
        raise AlreadyExistsError("server", address)


def add_server(
    store: Store, server: ManagedServer, password: Secret, *, check: bool = True, hint: str = ""
) -> str:
    """Store `server` (its certificate already accepted: `server.thumbprint`) and its password,
    encrypted, as the credential `server.credential`; with `check`, log in first
    (`check_server`; a failed login says `hint` after the reason). What answered, or "not
    checked". Nothing is stored when it fails. `replicadesk server add` and the console's Add
    Server dialog both end here."""
    refuse_duplicate(store, server.address)
    answered = "not checked"
    if check:
        try:
            answered = check_server(server, password)
        except ServerCheckError:
            raise
        except VSphereError as e:
            raise ServerCheckError(server.address, f"{e}{hint}") from e
    if server.credential is None:
        raise InvalidSettingError("credential", "a managed server added here has a password")
    store.credentials.put(Credential(server.credential, password, server.user))
    try:
        store.servers.add(server)
    except BaseException:
        store.credentials.remove(server.credential)
        raise
    return answered
