"""Logging in to the managed servers a job names, with the credentials kept in the store.

The only place where a stored secret is revealed: to hand it to the vSphere session, never to a
log. `check_server` is what `replicadesk server add` runs before storing a server.
"""

from __future__ import annotations

from core.model.infra import ManagedServer, ServerKind
from core.model.secret import Secret
from core.store.store import Store
from core.vsphere.connection import VSphereClient

KEEPALIVE = 300.0  # seconds between keep-alive calls on long runs


def connect(
    server: ManagedServer, password: Secret | None, keepalive: bool = True
) -> VSphereClient:
    return VSphereClient.connect(
        server.address,
        server.port,
        server.user,
        password.reveal() if password is not None else "",
        protocol=str(server.protocol),  # type: ignore[arg-type]
        verify_tls=False,
        keepalive=KEEPALIVE if keepalive else None,
    )


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
