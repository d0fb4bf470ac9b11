"""Adding a backup proxy: what `replicadesk proxy add` and the console's Add Proxy dialog both run.

A proxy is a host running `replicadesk mover serve`. Before it is stored, `check_proxy` connects
to its mover service: a TCP connection, plus a full TLS handshake when the proxy has TLS files (the
certificate ReplicaDesk presents, its key, and the CA the mover's certificate is checked against).
A mover that cannot be reached, or a handshake either side refuses, is a `ProxyCheckError` saying
why, and nothing is stored. A name already stored is an `InvalidSettingError` on "name", which the
CLI prints and the dialog shows beside that field.
"""

from __future__ import annotations

import socket
import ssl

from core.errors import InvalidSettingError, ProxyCheckError
from core.model.infra import BackupProxy
from core.mover.tls import client_context
from core.store.store import Store

CHECK_TIMEOUT = 10.0  # seconds to reach a proxy's mover service


def refuse_duplicate_proxy(store: Store, name: str) -> None:
    if any(p.name == name for p in store.proxies.list()):
        raise InvalidSettingError("name", f"a proxy named {name!r} exists already")


def check_proxy(proxy: BackupProxy, *, hint: str = "", timeout: float = CHECK_TIMEOUT) -> str:
    """Connect to the proxy's mover service (and shake hands over TLS when we have the files);
    what answered. An unreachable mover says `hint` after its question."""
    where = f"{proxy.address}:{proxy.port}"
    try:
        raw = socket.create_connection((proxy.address, proxy.port), timeout=timeout)
    except OSError as e:
        raise ProxyCheckError(
            proxy.name,
            f"cannot reach its mover service at {where}: {e.strerror or e}: not added "
            f"(is `replicadesk mover serve` running there?{hint})",
        ) from e
    with raw:
        if proxy.tls is None:
            return f"mover service answers at {where} (no TLS files: handshake not checked)"
        ctx = client_context(proxy.tls)
        try:
            with ctx.wrap_socket(raw, server_hostname=proxy.address):
                pass
        except ssl.SSLCertVerificationError as e:
            raise ProxyCheckError(
                proxy.name,
                f"the mover at {where} has a certificate {proxy.tls.ca} does not trust: "
                f"{e.verify_message}: not added",
            ) from e
        except (ssl.SSLError, OSError) as e:
            raise ProxyCheckError(
                proxy.name,
                f"TLS handshake with the mover at {where} failed: {e} (does it trust "
                f"{proxy.tls.cert}?): not added",
            ) from e
    return f"mover service at {where} accepted our TLS certificate"


def add_proxy(store: Store, proxy: BackupProxy, *, check: bool = True, hint: str = "") -> str:
    """Store `proxy`; with `check`, its mover service is connected to first (`check_proxy`).
    What answered, or "not checked". Nothing is stored when it fails. `replicadesk proxy add`
    and the console's Add Proxy dialog both end here."""
    refuse_duplicate_proxy(store, proxy.name)
    answered = check_proxy(proxy, hint=hint) if check else "not checked"
    store.proxies.add(proxy)
    return answered
