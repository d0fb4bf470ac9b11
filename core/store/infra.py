"""Managed servers, credentials, proxies and repositories in the database.

Each repository class takes and returns the model's dataclasses (`core.model.infra`,
`core.model.secret`); rows never leave this module. Removing something still in use is refused
with the name of what uses it. Whether a server or proxy is reachable is checked by the caller
(the CLI's `add`) before it is stored: this module only keeps records.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from core.errors import AlreadyExistsError, InUseError, NotFoundError
from core.model.infra import (
    BackupProxy,
    ManagedServer,
    Protocol,
    Repository,
    ServerKind,
    TransportMode,
)
from core.model.secret import Credential
from core.mover.tls import TlsFiles
from core.store.connection import Connection
from core.store.secrets import SecretBox
from core.store.timefmt import now, to_db

Row = dict[str, Any]


def _one(db: Database, sql: str, params: tuple[object, ...]) -> Row | None:
    return next(iter(db.query(sql, params)), None)


def _jobs_where(db: Database, match: Callable[[Row], bool]) -> list[str]:
    return [
        row["name"]
        for row in db.query("SELECT name, definition FROM jobs ORDER BY name")
        if match(json.loads(row["definition"]))
    ]


def _names(what: list[str]) -> str:
    return ", ".join(repr(w) for w in what)


class Credentials:
    def __init__(self, conn: Connection, box: SecretBox) -> None:
        self._conn = conn
        self._box = box

    def put(self, credential: Credential) -> None:
        """Store a credential, replacing the password of an existing one of that name."""
        token = self._box.encrypt(credential.secret)
        with self._conn.write() as db:
            db.execute(
                "INSERT INTO credentials (name, secret, description, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "secret = excluded.secret, description = excluded.description, "
                "updated_at = excluded.updated_at",
                (credential.name, token, credential.description, to_db(now())),
            )

    def get(self, name: str) -> Credential:
        row = _one(self._conn.db(), "SELECT * FROM credentials WHERE name = ?", (name,))
        if row is None:
            raise NotFoundError("credential", name)
        secret = self._box.decrypt(row["secret"], f"credential {name!r}")
        return Credential(row["name"], secret, row["description"])

    def names(self) -> list[str]:
        return [r["name"] for r in self._conn.db().query("SELECT name FROM credentials ORDER BY 1")]

    def remove(self, name: str) -> None:
        with self._conn.write() as db:
            users = [
                r["address"]
                for r in db.query("SELECT address FROM servers WHERE credential = ?", (name,))
            ]
            if users:
                raise InUseError("Credential", name, f"server {_names(users)}")
            if db.execute("DELETE FROM credentials WHERE name = ?", (name,)).rowcount == 0:
                raise NotFoundError("credential", name)


def _server_row(s: ManagedServer) -> Row:
    return {
        "address": s.address,
        "kind": str(s.kind),
        "port": s.port,
        "protocol": str(s.protocol),
        "user": s.user,
        "credential": s.credential,
        "description": s.description,
        "thumbprint": s.thumbprint,
    }


def _server(row: Row) -> ManagedServer:
    return ManagedServer(
        kind=ServerKind(row["kind"]),
        address=row["address"],
        user=row["user"],
        credential=row["credential"],
        port=row["port"],
        protocol=Protocol(row["protocol"]),
        description=row["description"],
        thumbprint=row["thumbprint"],
    )


class Servers:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def _check_credential(self, db: Database, server: ManagedServer) -> None:
        if server.credential is not None and not _one(
            db, "SELECT 1 FROM credentials WHERE name = ?", (server.credential,)
        ):
            raise NotFoundError("credential", server.credential)

    def add(self, server: ManagedServer) -> None:
        with self._conn.write() as db:
            if _one(db, "SELECT 1 FROM servers WHERE address = ?", (server.address,)):
                raise AlreadyExistsError("server", server.address)
            self._check_credential(db, server)
            db.table("servers").insert({**_server_row(server), "added_at": to_db(now())})

    def update(self, server: ManagedServer) -> None:
        with self._conn.write() as db:
            self._check_credential(db, server)
            cur = db.execute(
                "UPDATE servers SET kind = :kind, port = :port, protocol = :protocol, "
                "user = :user, credential = :credential, description = :description, "
                "thumbprint = :thumbprint "
                "WHERE address = :address",
                _server_row(server),
            )
            if cur.rowcount == 0:
                raise NotFoundError("server", server.address)

    def get(self, address: str) -> ManagedServer:
        row = _one(self._conn.db(), "SELECT * FROM servers WHERE address = ?", (address,))
        if row is None:
            raise NotFoundError("server", address)
        return _server(row)

    def list(self) -> list[ManagedServer]:
        return [_server(r) for r in self._conn.db().query("SELECT * FROM servers ORDER BY 1")]

    def remove(self, address: str) -> None:
        with self._conn.write() as db:
            users = [
                r["name"]
                for r in db.query(
                    "SELECT name FROM jobs WHERE source_server = ? OR target_server = ? "
                    "ORDER BY name",
                    (address, address),
                )
            ]
            if users:
                raise InUseError("Server", address, f"job {_names(users)}")
            if db.execute("DELETE FROM servers WHERE address = ?", (address,)).rowcount == 0:
                raise NotFoundError("server", address)


def _proxy_row(p: BackupProxy) -> Row:
    return {
        "name": p.name,
        "address": p.address,
        "port": p.port,
        "site": p.site,
        "max_tasks": p.max_tasks,
        "transport_modes": json.dumps([str(m) for m in p.transport_modes]),
        "tls_cert": str(p.tls.cert) if p.tls else None,
        "tls_key": str(p.tls.key) if p.tls else None,
        "tls_ca": str(p.tls.ca) if p.tls else None,
        "description": p.description,
        "vm": p.vm,
        "vm_server": p.vm_server,
    }


def _proxy(row: Row) -> BackupProxy:
    tls = None
    if row["tls_cert"] is not None:
        tls = TlsFiles(Path(row["tls_cert"]), Path(row["tls_key"]), Path(row["tls_ca"]))
    return BackupProxy(
        name=row["name"],
        address=row["address"],
        site=row["site"],
        port=row["port"],
        max_tasks=row["max_tasks"],
        transport_modes=tuple(TransportMode(m) for m in json.loads(row["transport_modes"])),
        tls=tls,
        description=row["description"],
        vm=row["vm"],
        vm_server=row["vm_server"],
    )


def _uses_proxy(name: str) -> Callable[[Row], bool]:
    def match(doc: Row) -> bool:
        transfer = doc.get("transfer", {})
        chosen = [transfer.get("source_proxies"), transfer.get("target_proxies")]
        return any(isinstance(c, list) and name in c for c in chosen)

    return match


class Proxies:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, proxy: BackupProxy) -> None:
        with self._conn.write() as db:
            if _one(db, "SELECT 1 FROM proxies WHERE name = ?", (proxy.name,)):
                raise AlreadyExistsError("proxy", proxy.name)
            db.table("proxies").insert({**_proxy_row(proxy), "added_at": to_db(now())})

    def update(self, proxy: BackupProxy) -> None:
        row = _proxy_row(proxy)
        sets = ", ".join(f"{k} = :{k}" for k in row if k != "name")
        with self._conn.write() as db:
            if db.execute(f"UPDATE proxies SET {sets} WHERE name = :name", row).rowcount == 0:
                raise NotFoundError("proxy", proxy.name)

    def get(self, name: str) -> BackupProxy:
        row = _one(self._conn.db(), "SELECT * FROM proxies WHERE name = ?", (name,))
        if row is None:
            raise NotFoundError("proxy", name)
        return _proxy(row)

    def list(self, site: str | None = None) -> list[BackupProxy]:
        db = self._conn.db()
        if site is None:
            return [_proxy(r) for r in db.query("SELECT * FROM proxies ORDER BY name")]
        rows = db.query("SELECT * FROM proxies WHERE site = ? ORDER BY name", (site,))
        return [_proxy(r) for r in rows]

    def remove(self, name: str) -> None:
        with self._conn.write() as db:
            repos = [
                r["name"]
                for r in db.query("SELECT name FROM repositories WHERE proxy = ?", (name,))
            ]
            if repos:
                raise InUseError("Proxy", name, f"repository {_names(repos)}")
            jobs = _jobs_where(db, _uses_proxy(name))
            if jobs:
                raise InUseError("Proxy", name, f"job {_names(jobs)}")
            if db.execute("DELETE FROM proxies WHERE name = ?", (name,)).rowcount == 0:
                raise NotFoundError("proxy", name)


def _repo_row(r: Repository) -> Row:
    return {
        "name": r.name,
        "path": r.path,
        "site": r.site,
        "proxy": r.proxy,
        "description": r.description,
    }


def _repo(row: Row) -> Repository:
    return Repository(row["name"], row["path"], row["site"], row["proxy"], row["description"])


class Repositories:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def _check_proxy(self, db: Database, repo: Repository) -> None:
        if repo.proxy is not None and not _one(
            db, "SELECT 1 FROM proxies WHERE name = ?", (repo.proxy,)
        ):
            raise NotFoundError("proxy", repo.proxy)

    def add(self, repo: Repository) -> None:
        with self._conn.write() as db:
            if _one(db, "SELECT 1 FROM repositories WHERE name = ?", (repo.name,)):
                raise AlreadyExistsError("repository", repo.name)
            self._check_proxy(db, repo)
            db.table("repositories").insert({**_repo_row(repo), "added_at": to_db(now())})

    def update(self, repo: Repository) -> None:
        with self._conn.write() as db:
            self._check_proxy(db, repo)
            cur = db.execute(
                "UPDATE repositories SET path = :path, site = :site, proxy = :proxy, "
                "description = :description WHERE name = :name",
                _repo_row(repo),
            )
            if cur.rowcount == 0:
                raise NotFoundError("repository", repo.name)

    def get(self, name: str) -> Repository:
        row = _one(self._conn.db(), "SELECT * FROM repositories WHERE name = ?", (name,))
        if row is None:
            raise NotFoundError("repository", name)
        return _repo(row)

    def list(self) -> list[Repository]:
        return [_repo(r) for r in self._conn.db().query("SELECT * FROM repositories ORDER BY 1")]

    def remove(self, name: str) -> None:
        with self._conn.write() as db:
            jobs = [
                r["name"]
                for r in db.query(
                    "SELECT name FROM jobs WHERE repository = ? ORDER BY name", (name,)
                )
            ]
            if jobs:
                raise InUseError("Repository", name, f"job {_names(jobs)}")
            if db.execute("DELETE FROM repositories WHERE name = ?", (name,)).rowcount == 0:
                raise NotFoundError("repository", name)
