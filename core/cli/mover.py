"""`replicadesk mover ...`: run the target data mover service; make its TLS credentials."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from core.cli.main import CANCEL, emit_json, host_port
from core.mover.service import MoverService, ServiceConfig
from core.mover.tls import TlsFiles


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    mover = sub.add_parser("mover", help="the data mover service of a proxy")
    msub = mover.add_subparsers(dest="mover_command", metavar="ACTION", required=True)

    serve = msub.add_parser(
        "serve",
        help="run the target data mover (TLS, mutual authentication)",
        description="Accept replication streams from source proxies and write restore points "
        "into replica folders under --root. Peers must present a certificate signed by --tls-ca.",
    )
    serve.add_argument(
        "--listen",
        type=host_port,
        default=("127.0.0.1", 6160),
        help="HOST:PORT to listen on (default 127.0.0.1:6160; port 0 picks one)",
    )
    serve.add_argument("--root", type=Path, required=True, help="folder holding the replicas")
    serve.add_argument("--tls-cert", type=Path, required=True, help="this mover's certificate")
    serve.add_argument("--tls-key", type=Path, required=True, help="this mover's private key")
    serve.add_argument("--tls-ca", type=Path, required=True, help="CA that signs source proxies")
    serve.add_argument(
        "--json", action="store_true", help="print the listening address as JSON once ready"
    )
    serve.set_defaults(handler=cmd_serve)

    certs = msub.add_parser(
        "certs",
        help="create a CA and certificates for a mover service and a source proxy",
        description="Write ca.pem/ca.key, server.pem/server.key (for `mover serve`) and "
        "client.pem/client.key (for `disk replicate --target`) into OUTPUT_DIR. With --ca, "
        "issue only a server certificate from an existing CA instead (for a proxy host).",
    )
    certs.add_argument(
        "--ca",
        type=Path,
        metavar="CA_DIR",
        help="issue server.pem/server.key from the CA in CA_DIR (its ca.pem and ca.key) and copy "
        "ca.pem beside them: the three files a proxy host needs; the CA key stays in CA_DIR",
    )
    certs.add_argument("output", type=Path, help="folder to write the PEM files into")
    certs.add_argument(
        "--name",
        action="append",
        default=[],
        help="host name or IP the service is reached by (repeatable; "
        "localhost and 127.0.0.1 are always included)",
    )
    certs.add_argument("--json", action="store_true", help="print the file paths as JSON")
    certs.set_defaults(handler=cmd_certs)


def cmd_serve(args: argparse.Namespace) -> int:
    service = MoverService(
        ServiceConfig(
            args.root,
            args.listen[0],
            args.listen[1],
            TlsFiles(args.tls_cert, args.tls_key, args.tls_ca),
        )
    )
    host, port = service.address
    if args.json:
        emit_json({"host": host, "port": port, "root": str(service.root)})
    else:
        print(f"mover listening on {host}:{port}, replicas under {service.root}")
    sys.stdout.flush()

    CANCEL.message = f"replicadesk: mover service on {host}:{port} stopping"

    def stop_on_cancel() -> None:
        CANCEL.event.wait()
        service.stop()

    threading.Thread(target=stop_on_cancel, daemon=True).start()
    service.serve_forever()
    service.join()
    return 0


def cmd_certs(args: argparse.Namespace) -> int:
    names = list(dict.fromkeys(["localhost", "127.0.0.1", *args.name]))
    if args.ca is not None:
        from core.mover.certs import issue_server_certificate

        paths = issue_server_certificate(args.ca, args.output, names)
    else:
        paths = _create_certificates(args.output, names)
    if args.json:
        emit_json({k: str(v) for k, v in paths.items()})
    else:
        for k, v in paths.items():
            print(f"{k:>10}: {v}")
    return 0


def _create_certificates(out: Path, names: list[str]) -> dict[str, Path]:
    # Imported on use: `cryptography` costs 30 ms at start-up, which every other command saves.
    from core.mover.certs import create_certificates

    return create_certificates(out, names)
