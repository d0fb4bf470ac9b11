"""Logging in to the managed servers a job names, with the credentials kept in the store.

The only place where a stored secret is revealed: to hand it to the vSphere session, never to a
log. `check_server` is what `replicadesk server add` runs before storing a server.

Trust over https: a server whose certificate was accepted when it was added (or by `replicadesk
server trust`) is connected to with that thumbprint pinned, checked at every TLS connection; a
certificate that changed is a `VSphereCertificateError` saying how to accept the new one. An https
server stored before pinning existed has no thumbprint: it is connected to without verification,
as before, and every such connection logs a warning (`pin_warning`) saying how to pin it. The
warning goes to the log rather than into job sessions, where it would turn every run's result
into "warning" for a setting only an administrator can change.
"""

from __future__ import annotations

import logging

from core.errors import VSphereCertificateError
from core.model.infra import ManagedServer, Protocol, ServerKind
from core.model.secret import Secret
from core.store.store import Store
from core.vsphere.connection import VSphereClient

log = logging.getLogger(__name__)

KEEPALIVE = 300.0  # seconds between keep-alive calls on long runs


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
    from core.errors import ServerCheckError

    with connect(server, password, keepalive=False) as client:
        about = client.about
    is_vcenter = about.is_vcenter
    if (server.kind == ServerKind.VCENTER) != is_vcenter:
        found = "a vCenter Server" if is_vcenter else "a standalone ESXi host"
        raise ServerCheckError(server.address, f"it is {found}, not a {server.kind}")
    return f"{about.full_name}"
