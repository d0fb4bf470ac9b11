"""The infrastructure ReplicaDesk works with: managed servers, backup proxies, repositories.

Plain frozen dataclasses, validated when built (an invalid one cannot exist). The store
(`core.store`) persists them; the vSphere adapter and the job runner read them. A managed
server refers to its password by credential name (`core.model.secret.Credential`), so no
server object ever holds a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from core.errors import InvalidSettingError
from core.model import fields
from core.mover.tls import TlsFiles

DEFAULT_MOVER_PORT = 6160
MAX_PROXY_TASKS = 64
HEX_DIGITS = "0123456789abcdef"


class ServerKind(StrEnum):
    VCENTER = "vcenter"
    ESXI = "esxi"


class Protocol(StrEnum):
    HTTPS = "https"
    HTTP = "http"  # the lab's simulator only; a real vCenter or ESXi host speaks HTTPS


class TransportMode(StrEnum):
    """How a proxy reads source disks and writes replica disks (DOMAIN.md, step 6)."""

    DIRECT = "direct"  # Direct storage access: the proxy sees the datastore (SAN or NFS)
    HOTADD = "hotadd"  # Virtual appliance: the disk is attached to the proxy VM
    NETWORK = "network"  # through the host's management interface


# The order modes are tried in when a job does not say otherwise.
TRANSPORT_ORDER = (TransportMode.DIRECT, TransportMode.HOTADD, TransportMode.NETWORK)


@dataclass(frozen=True)
class ManagedServer:
    """A vCenter Server or a standalone ESXi host (the DR site's hosts may be added directly)."""

    kind: ServerKind
    address: str
    user: str
    credential: str | None = None  # the name of a stored Credential
    port: int = 443
    protocol: Protocol = Protocol.HTTPS
    description: str = ""
    # The SHA-256 (lowercase hex) of the certificate the administrator accepted: every https
    # connection checks it. "" over http, and for https servers added before pinning existed.
    thumbprint: str = ""

    def __post_init__(self) -> None:
        fields.choice("kind", self.kind, ServerKind)
        fields.address("address", self.address)
        fields.name("user", self.user)
        if self.credential is not None:
            fields.name("credential", self.credential)
        fields.port("port", self.port)
        fields.choice("protocol", self.protocol, Protocol)
        fields.text("description", self.description)
        if not isinstance(self.thumbprint, str) or (
            self.thumbprint
            and (len(self.thumbprint) != 64 or self.thumbprint.strip(HEX_DIGITS) != "")
        ):
            raise InvalidSettingError(
                "thumbprint",
                f"{fields.show(self.thumbprint)} is not a SHA-256 thumbprint (64 lowercase hex)",
            )
        if self.thumbprint and self.protocol != Protocol.HTTPS:
            raise InvalidSettingError("thumbprint", "a certificate is pinned over https only")

    @property
    def pinned(self) -> bool:
        """Whether its certificate is checked: https with an accepted thumbprint."""
        return self.protocol == Protocol.HTTPS and bool(self.thumbprint)

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.protocol}://{host}:{self.port}/sdk"


@dataclass(frozen=True)
class BackupProxy:
    """A host running `replicadesk mover serve`; tasks of jobs run on it up to `max_tasks`."""

    name: str
    address: str
    site: str
    port: int = DEFAULT_MOVER_PORT
    max_tasks: int = 4
    transport_modes: tuple[TransportMode, ...] = TRANSPORT_ORDER
    tls: TlsFiles | None = None
    description: str = ""
    # The proxy's own VM, for Virtual appliance (hot-add) mode: its moref on managed server
    # `vm_server` (a name is resolved to the moref when the proxy is added).
    vm: str | None = None
    vm_server: str | None = None

    def __post_init__(self) -> None:
        fields.name("name", self.name)
        fields.address("address", self.address)
        fields.name("site", self.site)
        fields.port("port", self.port)
        fields.integer("max_tasks", self.max_tasks, 1, MAX_PROXY_TASKS)
        if not isinstance(self.transport_modes, tuple) or not self.transport_modes:
            raise InvalidSettingError("transport_modes", "at least one transport mode is needed")
        for i, mode in enumerate(self.transport_modes):
            fields.choice(f"transport_modes[{i}]", mode, TransportMode)
        fields.unique("transport_modes", self.transport_modes, "transport mode")
        if self.tls is not None:
            for part in ("cert", "key", "ca"):
                path = getattr(self.tls, part)
                if not isinstance(path, Path) or not path.is_absolute():
                    raise InvalidSettingError(
                        f"tls.{part}", f"{fields.show(str(path))} is not an absolute path"
                    )
        fields.text("description", self.description)
        if (self.vm is None) != (self.vm_server is None):
            raise InvalidSettingError(
                "vm", "a proxy VM needs both its moref and the managed server it is on"
            )
        if self.vm is not None and self.vm_server is not None:
            fields.name("vm", self.vm)
            fields.address("vm_server", self.vm_server)


@dataclass(frozen=True)
class Repository:
    """Where replica metadata lives: a folder on a proxy of the source site (DOMAIN.md)."""

    name: str
    path: str  # absolute, on the proxy's host (or on this host when proxy is None)
    site: str
    proxy: str | None = None  # the name of the BackupProxy that serves the folder
    description: str = ""

    def __post_init__(self) -> None:
        fields.name("name", self.name)
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise InvalidSettingError("path", f"{fields.show(self.path)} is not an absolute path")
        fields.name("site", self.site)
        if self.proxy is not None:
            fields.name("proxy", self.proxy)
        fields.text("description", self.description)
