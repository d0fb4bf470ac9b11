"""Servers, proxies, repositories and credentials: validation, and secrets that never show."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from core.errors import InvalidSettingError
from core.model.infra import (
    TRANSPORT_ORDER,
    BackupProxy,
    ManagedServer,
    Protocol,
    Repository,
    ServerKind,
    TransportMode,
)
from core.model.secret import Credential, Secret
from core.mover.tls import TlsFiles


def test_defaults_and_url() -> None:
    server = ManagedServer(ServerKind.VCENTER, "vc-prod.example.net", "administrator@vsphere.local")
    assert (server.port, server.protocol) == (443, Protocol.HTTPS)
    assert server.url == "https://vc-prod.example.net:443/sdk"
    esx = ManagedServer(
        ServerKind.ESXI, "fd00::10", "root", "dr-root", port=8989, protocol=Protocol.HTTP
    )
    assert esx.url == "http://[fd00::10]:8989/sdk"
    proxy = BackupProxy("proxy-dr", "10.1.0.5", "dr")
    assert (proxy.port, proxy.max_tasks, proxy.transport_modes) == (6160, 4, TRANSPORT_ORDER)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ManagedServer("vcsa", "vc", "u"), 'kind: "vcsa" is not one of: vcenter, esxi'),  # type: ignore[arg-type]
        (
            lambda: ManagedServer(ServerKind.ESXI, "esx_01!", "root"),
            'address: "esx_01!" is not a host name or an IP address',
        ),
        (
            lambda: ManagedServer(ServerKind.ESXI, "999.1.1.1", "root"),
            'address: "999.1.1.1" is not a host name or an IP address',
        ),
        (
            lambda: ManagedServer(ServerKind.ESXI, "esx1", "root", port=0),
            "port: 0 is out of range (1 to 65535)",
        ),
        (lambda: ManagedServer(ServerKind.ESXI, "esx1", ""), "user: must not be empty"),
        (
            lambda: ManagedServer(ServerKind.ESXI, "esx1", "root", thumbprint="AB:CD"),
            'thumbprint: "AB:CD" is not a SHA-256 thumbprint (64 lowercase hex)',
        ),
        (
            lambda: ManagedServer(
                ServerKind.ESXI, "esx1", "root", protocol=Protocol.HTTP, thumbprint="ab" * 32
            ),
            "thumbprint: a certificate is pinned over https only",
        ),
        (
            lambda: BackupProxy("p", "10.0.0.1", "dr", max_tasks=0),
            "max_tasks: 0 is out of range (1 to 64)",
        ),
        (
            lambda: BackupProxy("p", "10.0.0.1", "dr", transport_modes=()),
            "transport_modes: at least one transport mode is needed",
        ),
        (
            lambda: BackupProxy("p", "10.0.0.1", "dr", transport_modes=("san",)),  # type: ignore[arg-type]
            'transport_modes[0]: "san" is not one of: direct, hotadd, network',
        ),
        (
            lambda: BackupProxy(
                "p", "h", "dr", transport_modes=(TransportMode.HOTADD, TransportMode.HOTADD)
            ),
            'transport_modes[1]: transport mode "hotadd" is listed twice',
        ),
        (
            lambda: BackupProxy(
                "p", "h", "dr", tls=TlsFiles(Path("c.pem"), Path("/k"), Path("/ca"))
            ),
            'tls.cert: "c.pem" is not an absolute path',
        ),
        (lambda: BackupProxy("p\n2", "h", "dr"), 'name: "p\\n2" contains control characters'),
        (
            lambda: Repository("meta", "relative/path", "prod"),
            'path: "relative/path" is not an absolute path',
        ),
        (lambda: Repository("meta", "/srv/meta", ""), "site: must not be empty"),
        (lambda: Credential("", Secret("x")), "name: must not be empty"),
        (lambda: Secret(""), "secret: must be a non-empty text"),
    ],
)
def test_bad_infrastructure_is_refused(build: object, message: str) -> None:
    with pytest.raises(InvalidSettingError) as err:
        build()  # type: ignore[operator]
    assert str(err.value) == message


def test_a_secret_never_shows_its_value() -> None:
    secret = Secret("Sup3r$ecret!")
    cred = Credential("prod-admin", secret, "vCenter admin")
    shown = [repr(secret), str(secret), f"{secret}", f"{secret:>20}", repr(cred), str(cred)]
    assert all("Sup3r" not in text for text in shown)
    assert "********" in repr(cred)
    assert secret.reveal() == "Sup3r$ecret!"
    assert secret == Secret("Sup3r$ecret!") and secret != Secret("other")
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(cred)
