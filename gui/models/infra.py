"""Backup infrastructure tables: managed servers, backup proxies, repositories."""

from __future__ import annotations

from collections.abc import Hashable

from core.model.infra import BackupProxy, ManagedServer, Repository, ServerKind
from gui.models.base import RIGHT, Column, RecordTableModel

KIND_WORDS = {ServerKind.VCENTER: "vCenter Server", ServerKind.ESXI: "ESXi host"}
MODE_WORDS = {
    "direct": "Direct storage access",
    "hotadd": "Virtual appliance",
    "network": "Network",
}


class ServersModel(RecordTableModel):
    ADDRESS, KIND, USER, PORT, PROTOCOL, CERTIFICATE, DESCRIPTION = range(7)
    columns = (
        Column("Name", lambda s: s.address),
        Column("Type", lambda s: KIND_WORDS[ServerKind(s.kind)]),
        Column("User", lambda s: s.user),
        Column("Port", lambda s: str(s.port), sort=lambda s: s.port, align=RIGHT),
        Column("Protocol", lambda s: str(s.protocol).upper()),
        # "Not pinned": an https server added before pinning, its certificate not verified.
        Column(
            "Certificate",
            lambda s: "Pinned" if s.pinned else "Not pinned" if s.protocol == "https" else "HTTP",
        ),
        Column("Description", lambda s: s.description),
    )

    def key(self, record: ManagedServer) -> Hashable:
        return record.address


class ProxiesModel(RecordTableModel):
    NAME, ADDRESS, SITE, MAX_TASKS, TRANSPORT, TLS, DESCRIPTION = range(7)
    columns = (
        Column("Name", lambda p: p.name),
        Column("Address", lambda p: f"{p.address}:{p.port}"),
        Column("Site", lambda p: p.site),
        Column("Max tasks", lambda p: str(p.max_tasks), sort=lambda p: p.max_tasks, align=RIGHT),
        Column(
            "Transport modes",
            lambda p: ", ".join(MODE_WORDS[str(m)] for m in p.transport_modes),
        ),
        Column("TLS", lambda p: "Certificate" if p.tls is not None else "None"),
        Column("Description", lambda p: p.description),
    )

    def key(self, record: BackupProxy) -> Hashable:
        return record.name


class RepositoriesModel(RecordTableModel):
    NAME, PATH, SITE, PROXY, DESCRIPTION = range(5)
    columns = (
        Column("Name", lambda r: r.name),
        Column("Path", lambda r: r.path),
        Column("Site", lambda r: r.site),
        Column("Served by", lambda r: r.proxy or "this server"),
        Column("Description", lambda r: r.description),
    )

    def key(self, record: Repository) -> Hashable:
        return record.name
