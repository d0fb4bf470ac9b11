"""`replicadesk server|proxy|repo add|list|remove`: the infrastructure jobs run on.

Adding a managed server logs in to it once (`core.jobs.servers.check_server`) and says why that
failed; adding a proxy connects to its mover service, with a TLS handshake when TLS files are
given (`core.jobs.proxies.check_proxy`); adding a local repository makes its folder. `--no-check`
stores without checking.
Passwords come from `--password-stdin` or `$REPLICADESK_PASSWORD`, never from a flag value (which
`ps` shows), and are stored encrypted as a credential named `server:<address>`. Removing
something a job or a repository still uses is refused by the store, naming the users.

An https server's certificate is pinned when it is added, as Veeam asks at "Add server": its
SHA-256 thumbprint is read from the server (unverified) and must equal `--thumbprint`, or be
accepted with `--accept-certificate`, or at a y/N question on a terminal; otherwise nothing is
stored and the message gives the thumbprint. `server trust` pins the certificate of a stored
server again, after it changed or for a server added before pinning existed.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cli.context import db_arg, open_store, table
from core.cli.main import emit_json, positive_int
from core.errors import (
    AlreadyExistsError,
    ServerCheckError,
    UsageError,
    VSphereError,
)

if TYPE_CHECKING:
    from core.model.infra import BackupProxy, ManagedServer, Repository
    from core.model.secret import Secret
    from core.store.store import Store

PASSWORD_ENV = "REPLICADESK_PASSWORD"
CHECK_TIMEOUT = 10.0  # seconds to read a server's certificate


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    _register_servers(sub)
    _register_proxies(sub)
    _register_repos(sub)


def _json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


# --- managed servers --------------------------------------------------------------------------


def _register_servers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    server = sub.add_parser("server", help="managed servers: vCenter Servers and ESXi hosts")
    ssub = server.add_subparsers(dest="server_command", metavar="ACTION", required=True)

    add = ssub.add_parser(
        "add",
        help="add a vCenter Server or a standalone ESXi host (logs in once to check it)",
        description="Add a managed server. The password is read from standard input "
        f"(--password-stdin) or from ${PASSWORD_ENV}, and stored encrypted.",
    )
    add.add_argument("address", help="host name or IP address")
    add.add_argument("--kind", choices=("vcenter", "esxi"), default="vcenter")
    add.add_argument("--user", required=True, help="the vSphere user name")
    add.add_argument("--port", type=int, help="default 443 (https) or 80 (http)")
    add.add_argument(
        "--protocol",
        choices=("https", "http"),
        default="https",
        help="https (default); http only for the lab's simulator",
    )
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add.add_argument("--description", default="")
    add.add_argument(
        "--no-check",
        action="store_true",
        help="store it without logging in (an https server's certificate is still read, unless "
        "--thumbprint gives its SHA-256)",
    )
    _certificate_args(add)
    add.add_argument("--json", action="store_true", help="print the server as JSON")
    db_arg(add)
    add.set_defaults(handler=cmd_server_add)

    trust = ssub.add_parser(
        "trust",
        help="pin the TLS certificate an https server presents now (after it changed)",
        description="Read the certificate the managed server presents and pin its SHA-256 "
        "thumbprint: every later connection checks it. Check the thumbprint with the server's "
        "administrator first (vSphere client: the host's or vCenter's certificate).",
    )
    trust.add_argument("address")
    _certificate_args(trust)
    trust.add_argument("--json", action="store_true", help="print the server as JSON")
    db_arg(trust)
    trust.set_defaults(handler=cmd_server_trust)

    ls = ssub.add_parser("list", help="list the managed servers")
    _json_arg(ls)
    db_arg(ls)
    ls.set_defaults(handler=cmd_server_list)

    rm = ssub.add_parser("remove", help="remove a managed server no job uses, and its password")
    rm.add_argument("address")
    db_arg(rm)
    rm.set_defaults(handler=cmd_server_remove)


def _certificate_args(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--thumbprint",
        metavar="HEX",
        help="the thumbprint (SHA-256, SHA-1 or SHA-512, colons allowed) the server's "
        "certificate must have, as its administrator gave it",
    )
    group.add_argument(
        "--accept-certificate",
        action="store_true",
        help="pin whatever certificate the server presents now",
    )


def _interactive(args: argparse.Namespace) -> bool:
    return not args.json and sys.stdin.isatty() and sys.stdout.isatty()


def accepted_thumbprint(
    address: str, port: int, args: argparse.Namespace, action: str, *, contact: bool = True
) -> str:
    """The SHA-256 thumbprint of the certificate the server at `address`:`port` presents, once
    accepted by `--thumbprint`, `--accept-certificate` or the user at a terminal; otherwise a
    `ServerCheckError` giving the thumbprint and saying nothing was `action` ("added"). Without
    `contact`, a SHA-256 `--thumbprint` is taken as it is (the server is not reached)."""
    import hashlib

    from core.vsphere.connection import (
        normalize_thumbprint,
        presented_certificate,
        thumbprint_matches,
    )

    expected = normalize_thumbprint(args.thumbprint) if args.thumbprint else ""
    if not contact and len(expected) == 64:
        return expected  # not contacted: the administrator's word is the pin
    try:
        der = presented_certificate(address, port, CHECK_TIMEOUT)
    except VSphereError as e:
        raise ServerCheckError(
            address, f"cannot read its TLS certificate: {e}: not {action}"
        ) from e
    presented = hashlib.sha256(der).hexdigest()
    if expected:
        if not thumbprint_matches(der, expected):
            raise ServerCheckError(
                address,
                f"it presents a certificate with SHA-256 thumbprint {presented}, not the "
                f"expected {expected}: not {action} (someone may be posing as the server, or "
                "its certificate was replaced: ask its administrator)",
            )
        return presented
    if args.accept_certificate:
        return presented
    if _interactive(args):
        print(f"{address}:{port} presents a TLS certificate with SHA-256 thumbprint\n  {presented}")
        answer = input("Check it with the server's administrator. Trust it? [y/N] ")
        if answer.strip().lower() in ("y", "yes"):
            return presented
        raise ServerCheckError(address, f"its certificate was not accepted: not {action}")
    raise ServerCheckError(
        address,
        f"it presents a TLS certificate with SHA-256 thumbprint {presented}, not accepted yet: "
        f"not {action}. Once its administrator confirms it, give --thumbprint {presented} or "
        "--accept-certificate",
    )


def read_password(args: argparse.Namespace) -> Secret:
    from core.model.secret import Secret

    if args.password_stdin:
        if sys.stdin.isatty():
            import getpass

            text = getpass.getpass("Password: ")
        else:
            text = sys.stdin.readline().rstrip("\r\n")
        if not text:
            raise UsageError("--password-stdin: standard input gave no password")
    else:
        text = os.environ.get(PASSWORD_ENV, "")
        if not text:
            raise UsageError(
                f"give the password on standard input with --password-stdin, or in ${PASSWORD_ENV}"
            )
    return Secret(text)


def server_doc(s: ManagedServer) -> dict[str, Any]:
    return {
        "address": s.address,
        "kind": str(s.kind),
        "port": s.port,
        "protocol": str(s.protocol),
        "user": s.user,
        "credential": s.credential,
        "url": s.url,
        "description": s.description,
        "thumbprint": s.thumbprint,
        "certificate": certificate_words(s),
    }


def certificate_words(s: ManagedServer) -> str:
    """Whether the server's certificate is checked: "pinned", "not pinned" or "http"."""
    from core.model.infra import Protocol

    if s.protocol != Protocol.HTTPS:
        return "http"
    return "pinned" if s.pinned else "not pinned"


def cmd_server_add(args: argparse.Namespace) -> int:
    from core.jobs.servers import add_server, credential_name, refuse_duplicate
    from core.model.infra import ManagedServer, Protocol, ServerKind

    password = read_password(args)
    port = args.port if args.port is not None else (443 if args.protocol == "https" else 80)
    if args.protocol != "https" and (args.thumbprint or args.accept_certificate):
        raise UsageError("--thumbprint and --accept-certificate go with --protocol https")
    server = ManagedServer(
        kind=ServerKind(args.kind),
        address=args.address,
        user=args.user,
        credential=credential_name(args.address),
        port=port,
        protocol=Protocol(args.protocol),
        description=args.description,
    )
    with open_store(args) as store:
        refuse_duplicate(store, server.address)
        if server.protocol == Protocol.HTTPS:
            thumbprint = accepted_thumbprint(
                server.address, server.port, args, "added", contact=not args.no_check
            )
            server = replace(server, thumbprint=thumbprint)
        answered = add_server(
            store,
            server,
            password,
            check=not args.no_check,
            hint=" (--no-check stores it without logging in)",
        )
    if args.json:
        emit_json({**server_doc(server), "answered": answered})
    else:
        print(
            f"added {server.kind} {server.address} ({server.url}, user {server.user}): {answered}"
        )
    return 0


def cmd_server_list(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        servers = store.servers.list()
    if args.json:
        emit_json([server_doc(s) for s in servers])
        return 0
    if not servers:
        print("no managed servers (`replicadesk server add` adds one)")
        return 0
    table(
        ["ADDRESS", "KIND", "URL", "USER", "CERTIFICATE", "DESCRIPTION"],
        [
            [s.address, str(s.kind), s.url, s.user, certificate_words(s), s.description]
            for s in servers
        ],
    )
    if any(s.protocol == "https" and not s.pinned for s in servers):
        print("not pinned: the certificate is not verified; `replicadesk server trust ADDRESS`")
    return 0


def cmd_server_trust(args: argparse.Namespace) -> int:
    from core.model.infra import Protocol

    with open_store(args) as store:
        server = store.servers.get(args.address)
        if server.protocol != Protocol.HTTPS:
            raise UsageError(f"server {server.address} speaks {server.protocol}: no certificate")
        thumbprint = accepted_thumbprint(server.address, server.port, args, "pinned")
        before = server.thumbprint
        if thumbprint != before:
            server = replace(server, thumbprint=thumbprint)
            store.servers.update(server)
    if args.json:
        emit_json({**server_doc(server), "previous_thumbprint": before})
    elif thumbprint == before:
        print(f"server {server.address}: certificate {thumbprint} was already pinned")
    else:
        was = f"replaces {before}" if before else "was not pinned"
        print(f"server {server.address}: certificate {thumbprint} pinned ({was})")
    return 0


def cmd_server_remove(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        server = store.servers.get(args.address)
        store.servers.remove(server.address)
        if server.credential is not None:
            users = [s.address for s in store.servers.list() if s.credential == server.credential]
            if not users:
                store.credentials.remove(server.credential)
    print(f"removed server {server.address} and its stored password")
    return 0


# --- proxies ----------------------------------------------------------------------------------


def _register_proxies(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from core.model.infra import DEFAULT_MOVER_PORT

    proxy = sub.add_parser("proxy", help="backup proxies: hosts running the data mover service")
    psub = proxy.add_subparsers(dest="proxy_command", metavar="ACTION", required=True)

    add = psub.add_parser(
        "add",
        help="add a proxy (connects to its mover service to check it)",
        description="Add a backup proxy: a host running `replicadesk mover serve`. The TLS "
        "files are what ReplicaDesk presents to the mover and the CA its certificate is checked "
        "against; with them the check makes a full TLS handshake.",
    )
    add.add_argument("name")
    add.add_argument("--address", required=True, help="host name or IP address of the mover")
    add.add_argument("--port", type=int, default=DEFAULT_MOVER_PORT)
    add.add_argument("--site", required=True, help="the site it is in (production, dr...)")
    add.add_argument("--max-tasks", type=positive_int, default=4, help="concurrent tasks (4)")
    add.add_argument(
        "--transport-modes",
        default="direct,hotadd,network",
        help="what it can do, in order: direct, hotadd, network (default all three)",
    )
    add.add_argument("--tls-cert", type=Path, help="certificate presented to the mover")
    add.add_argument("--tls-key", type=Path, help="its private key")
    add.add_argument("--tls-ca", type=Path, help="CA the mover's certificate is signed by")
    add.add_argument("--description", default="")
    add.add_argument(
        "--vm",
        metavar="NAME_OR_MOREF",
        help="the proxy's own VM, for virtual appliance (hot-add) mode (a name is looked up)",
    )
    add.add_argument(
        "--vm-server", help="the managed server the VM is on (default: the only one stored)"
    )
    add.add_argument("--no-check", action="store_true", help="store it without connecting")
    add.add_argument("--json", action="store_true", help="print the proxy as JSON")
    db_arg(add)
    add.set_defaults(handler=cmd_proxy_add)

    ls = psub.add_parser("list", help="list the proxies")
    ls.add_argument("--site", help="only the proxies of this site")
    _json_arg(ls)
    db_arg(ls)
    ls.set_defaults(handler=cmd_proxy_list)

    rm = psub.add_parser("remove", help="remove a proxy no job or repository uses")
    rm.add_argument("name")
    db_arg(rm)
    rm.set_defaults(handler=cmd_proxy_remove)


def proxy_doc(p: BackupProxy) -> dict[str, Any]:
    return {
        "name": p.name,
        "address": p.address,
        "port": p.port,
        "site": p.site,
        "max_tasks": p.max_tasks,
        "transport_modes": [str(m) for m in p.transport_modes],
        "tls": None
        if p.tls is None
        else {"cert": str(p.tls.cert), "key": str(p.tls.key), "ca": str(p.tls.ca)},
        "description": p.description,
        "vm": None if p.vm is None else {"moref": p.vm, "server": p.vm_server},
    }


def resolve_proxy_vm(store: Store, wanted: str, server: str | None, check: bool) -> tuple[str, str]:
    """(moref, server address) of the proxy's VM named or moref'd `wanted`."""
    from core.jobs.servers import connect_stored
    from core.vsphere.inventory import read_inventory

    if server is None:
        servers = store.servers.list()
        if len(servers) != 1:
            raise UsageError("give --vm-server: the managed server the proxy's VM is on")
        server = servers[0].address
    store.servers.get(server)
    if not check:
        if not wanted.startswith("vm-"):
            raise UsageError("--no-check needs the VM's moref (vm-N): a name is looked up")
        return wanted, server
    with connect_stored(store, server, keepalive=False) as client:
        inv = read_inventory(client)
    if any(v.moref == wanted for v in inv.vms):
        return wanted, server
    found = inv.vms_named(wanted)
    if len(found) != 1:
        raise UsageError(
            f"{len(found)} VMs on {server} are named {wanted!r}: give the VM's moref"
            if found
            else f"no VM named {wanted!r} (or with that moref) on {server}"
        )
    return found[0].moref, server


def cmd_proxy_add(args: argparse.Namespace) -> int:
    from core.jobs.proxies import add_proxy
    from core.model.fields import choice
    from core.model.infra import BackupProxy, TransportMode
    from core.mover.tls import TlsFiles

    tls_parts = (args.tls_cert, args.tls_key, args.tls_ca)
    if any(tls_parts) and not all(tls_parts):
        raise UsageError("give all of --tls-cert, --tls-key and --tls-ca, or none")
    tls = TlsFiles(*(Path(p).expanduser().resolve() for p in tls_parts)) if all(tls_parts) else None
    modes = tuple(
        choice("--transport-modes", m.strip(), TransportMode)
        for m in args.transport_modes.split(",")
        if m.strip()
    )
    proxy = BackupProxy(
        name=args.name,
        address=args.address,
        site=args.site,
        port=args.port,
        max_tasks=args.max_tasks,
        transport_modes=modes,
        tls=tls,
        description=args.description,
    )
    with open_store(args) as store:
        if any(p.name == proxy.name for p in store.proxies.list()):
            raise AlreadyExistsError("proxy", proxy.name)  # before looking up its VM
        if args.vm is not None:
            vm, server = resolve_proxy_vm(store, args.vm, args.vm_server, not args.no_check)
            proxy = replace(proxy, vm=vm, vm_server=server)
        elif args.vm_server is not None:
            raise UsageError("--vm-server goes with --vm")
        answered = add_proxy(
            store, proxy, check=not args.no_check, hint=" --no-check stores it anyway"
        )
    if args.json:
        emit_json({**proxy_doc(proxy), "answered": answered})
    else:
        print(f"added proxy {proxy.name} at site {proxy.site}: {answered}")
    return 0


def cmd_proxy_list(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        proxies = store.proxies.list(args.site)
    if args.json:
        emit_json([proxy_doc(p) for p in proxies])
        return 0
    if not proxies:
        print("no proxies (`replicadesk proxy add` adds one)")
        return 0
    table(
        ["NAME", "ADDRESS", "SITE", "TASKS", "TRANSPORT", "TLS"],
        [
            [
                p.name,
                f"{p.address}:{p.port}",
                p.site,
                str(p.max_tasks),
                ",".join(str(m) for m in p.transport_modes),
                "yes" if p.tls else "no",
            ]
            for p in proxies
        ],
    )
    return 0


def cmd_proxy_remove(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        store.proxies.remove(args.name)
    print(f"removed proxy {args.name}")
    return 0


# --- repositories -----------------------------------------------------------------------------


def _register_repos(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    repo = sub.add_parser("repo", help="repositories of replica metadata")
    rsub = repo.add_subparsers(dest="repo_command", metavar="ACTION", required=True)

    add = rsub.add_parser(
        "add",
        help="add a repository (a folder on a source-site proxy, or on this host)",
        description="Add a repository for replica metadata. It belongs on the source side, "
        "close to the source proxy. Without --proxy the folder is on this host and is made "
        "if missing.",
    )
    add.add_argument("name")
    add.add_argument("--path", required=True, help="absolute folder path")
    add.add_argument("--site", help="its site (default: the proxy's site)")
    add.add_argument("--proxy", help="the proxy that serves the folder")
    add.add_argument("--description", default="")
    add.add_argument("--no-check", action="store_true", help="do not make or check the folder")
    add.add_argument("--json", action="store_true", help="print the repository as JSON")
    db_arg(add)
    add.set_defaults(handler=cmd_repo_add)

    ls = rsub.add_parser("list", help="list the repositories")
    _json_arg(ls)
    db_arg(ls)
    ls.set_defaults(handler=cmd_repo_list)

    rm = rsub.add_parser("remove", help="remove a repository no job uses (its files stay)")
    rm.add_argument("name")
    db_arg(rm)
    rm.set_defaults(handler=cmd_repo_remove)


def repo_doc(r: Repository) -> dict[str, Any]:
    return {
        "name": r.name,
        "path": r.path,
        "site": r.site,
        "proxy": r.proxy,
        "description": r.description,
    }


def cmd_repo_add(args: argparse.Namespace) -> int:
    from core.jobs.repositories import add_repository, repository_site
    from core.model.infra import Repository

    with open_store(args) as store:
        site = repository_site(store, args.site, args.proxy)
        repo = Repository(args.name, args.path, site, args.proxy, args.description)
        add_repository(store, repo, check=not args.no_check)
    if args.json:
        emit_json(repo_doc(repo))
    else:
        where = f"on proxy {repo.proxy}" if repo.proxy else "on this host"
        print(f"added repository {repo.name} at {repo.path} {where} (site {repo.site})")
    return 0


def cmd_repo_list(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        repos = store.repositories.list()
    if args.json:
        emit_json([repo_doc(r) for r in repos])
        return 0
    if not repos:
        print("no repositories (`replicadesk repo add` adds one)")
        return 0
    table(
        ["NAME", "PATH", "SITE", "PROXY"],
        [[r.name, r.path, r.site, r.proxy or "(this host)"] for r in repos],
    )
    return 0


def cmd_repo_remove(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        store.repositories.remove(args.name)
    print(f"removed repository {args.name} (its files are left in place)")
    return 0
