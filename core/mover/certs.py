"""The certificate authority of the data movers: a CA, a server and a client certificate.

`replicadesk mover certs` and the demo make these; `core.mover.tls` loads them. The server's
certificate names the hosts the mover service is reached by (subjectAltName); keys are ECDSA P-256,
written 0600.

A deployment has one CA, on the backup server (`create_certificates`): its client certificate is
what the backup server presents to every proxy. Each proxy host gets a server certificate issued
from that CA (`issue_server_certificate`, `mover certs DIR --ca CA_DIR`): ca.pem, server.pem and
server.key travel to the proxy; the CA's key never leaves the backup server.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.errors import UsageError


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ReplicaDesk"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def create_certificates(out: Path, names: list[str], days: int = 3650) -> dict[str, Path]:
    """A CA plus a server (mover service) and a client (source proxy) certificate."""
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("ReplicaDesk mover CA"))
        .issuer_name(_name("ReplicaDesk mover CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": out / "ca.pem", "ca_key": out / "ca.key"}
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(paths["ca_key"], ca_key)
    for role in ("server", "client"):
        paths.update(_issue(out, role, names, ca_cert, ca_key, days))
    return paths


def issue_server_certificate(
    ca_dir: Path, out: Path, names: list[str], days: int = 3650
) -> dict[str, Path]:
    """A server certificate for a mover service (a proxy host) from the CA in `ca_dir` (its
    ca.pem and ca.key), written to `out` with a copy of ca.pem: what the proxy needs."""
    try:
        ca_pem = (ca_dir / "ca.pem").read_bytes()
        ca_cert = x509.load_pem_x509_certificate(ca_pem)
        ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), None)
    except (OSError, ValueError) as e:
        raise UsageError(f"{ca_dir} holds no usable CA (ca.pem and ca.key): {e}") from e
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise UsageError(f"{ca_dir / 'ca.key'} is not the EC key `mover certs` makes")
    out.mkdir(parents=True, exist_ok=True)
    paths = {"ca": out / "ca.pem"}
    if paths["ca"].resolve() != (ca_dir / "ca.pem").resolve():
        paths["ca"].write_bytes(ca_pem)
    paths.update(_issue(out, "server", names, ca_cert, ca_key, days))
    return paths


def _issue(
    out: Path,
    role: str,
    names: list[str],
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    days: int,
) -> dict[str, Path]:
    """`<role>.pem` and `<role>.key` signed by the CA; a server's names its subjectAltName."""
    now = dt.datetime.now(dt.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if role == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(f"ReplicaDesk mover {role}"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if role == "server" and sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    paths = {role: out / f"{role}.pem", f"{role}_key": out / f"{role}.key"}
    paths[role].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(paths[f"{role}_key"], key)
    return paths
