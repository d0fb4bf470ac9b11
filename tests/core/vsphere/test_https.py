"""core.vsphere over HTTPS, against a simulated vCenter serving TLS with a certificate of the
test's own CA (`Simulator(tls=True)`): trusted through the CA file or a pinned thumbprint, the
fast reader gives the same inventory as pyVmomi's, over TLS connections to that server; an
untrusted certificate is refused with the error naming the server and what it presented; with
verification off it connects; a pin is checked at every new connection, so a server that changes
its certificate mid-session (the same address and port) is refused by SOAP calls, the fast
reader and the datastore transfers alike."""

from __future__ import annotations

import hashlib
import http.client
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.errors import (
    UsageError,
    VSphereCertificateError,
    VSphereConnectionError,
)
from core.lab.simulator import (
    ClusterSpec,
    DatacenterSpec,
    DatastoreSpec,
    DiskSpec,
    Simulator,
    SimulatorSpec,
    SwitchSpec,
    VmSpec,
)
from core.mover.certs import create_certificates
from core.vsphere import fastprops
from core.vsphere._pyvmomi import vmodl
from core.vsphere.connection import VSphereClient, certificate_thumbprint
from core.vsphere.inventory import read_inventory
from core.vsphere.transfer import DatastoreHttp
from tests.core.vsphere.conftest import ODD

PC = vmodl.query.PropertyCollector

SPEC = SimulatorSpec(
    model="vpx",
    datacenters=(
        DatacenterSpec(
            "Prod DC",
            datastores=(DatastoreSpec("ds-fast"),),
            networks=("Prod Net",),
            switches=(SwitchSpec("DVS0", ("pg-app",)),),
            clusters=(ClusterSpec("Cluster A", ("esx-1", "esx-2")),),
            vms=(
                VmSpec(
                    ODD,
                    host="esx-1",
                    folder="Apps/Web & Co",
                    disks=(DiskSpec(2048), DiskSpec(1024, thin=False)),
                    networks=("pg-app", "Prod Net"),
                    power_on=True,
                ),
                VmSpec("db1", host="esx-2", disks=(DiskSpec(1024),)),
            ),
        ),
    ),
)


@pytest.fixture(scope="module")
def sim(launcher: Path) -> Iterator[Simulator]:
    with Simulator(SPEC, launcher=launcher, tls=True) as s:
        yield s


def https(sim: Simulator, **kw: object) -> VSphereClient:
    return VSphereClient.connect(
        sim.host,
        sim.port,
        "admin",
        "s3cret",
        protocol="https",
        **kw,  # type: ignore[arg-type]
    )


def pem_thumbprint(path: Path) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(path.read_text())).hexdigest()


def tls_peers(client: VSphereClient) -> list[str]:
    """The SHA-256 of the certificate behind each pooled SOAP connection ("" when not TLS)."""
    peers = []
    for conn, _ in client.si._stub.pool:
        sock = conn.sock
        der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else b""
        peers.append(hashlib.sha256(der).hexdigest() if der else "")
    return peers


def test_the_simulator_serves_https_with_its_own_certificate(sim: Simulator) -> None:
    assert sim.protocol == "https" and sim.url.startswith("https://")
    assert sim.ca_file is not None and sim.ca_file.is_file()
    assert sim.thumbprint == pem_thumbprint(sim.ca_file.parent / "server.pem")
    ctx = ssl.create_default_context(cafile=str(sim.ca_file))
    raw = socket.create_connection((sim.host, sim.port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname=sim.host) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None and hashlib.sha256(der).hexdigest() == sim.thumbprint


def test_trusted_ca_fast_reader_equals_pyvmomi_over_tls(sim: Simulator) -> None:
    with https(sim, verify_tls=True, ca_file=sim.ca_file) as client:
        assert client.base_url == f"https://{sim.host}:{sim.port}"
        assert client.about.is_vcenter
        fast = read_inventory(client)
        # The fast reader's connection went back to the session's pool: TLS, to this server.
        peers = tls_peers(client)
        assert peers and set(peers) == {sim.thumbprint}
        slow = read_inventory(client, reader="pyvmomi")
    assert fast == slow
    vms = {vm.name: vm for vm in fast.vms}
    assert set(vms) == {ODD, "db1"}
    assert len(vms[ODD].disks) == 2 and len(vms[ODD].nics) == 2


def test_pinned_thumbprint_is_trusted_in_vsphere_notation(sim: Simulator) -> None:
    pin = ":".join(sim.thumbprint[i : i + 2] for i in range(0, 64, 2)).upper()
    with https(sim, thumbprint=pin) as client:
        assert client.thumbprint == sim.thumbprint
        assert read_inventory(client) == read_inventory(client, reader="pyvmomi")
        assert set(tls_peers(client)) == {sim.thumbprint}


def test_untrusted_certificate_is_refused_naming_the_server(sim: Simulator, tmp_path: Path) -> None:
    where = f"{sim.host}:{sim.port}"
    assert sim.ca_file is not None
    presented = certificate_thumbprint(
        ssl.PEM_cert_to_DER_cert((sim.ca_file.parent / "server.pem").read_text())
    )
    other_ca = create_certificates(tmp_path / "other", ["127.0.0.1"])["ca"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"verify_tls": True}, "unable to get local issuer certificate"),  # the system's CAs
        # Another CA of the same name: OpenSSL takes it for the issuer, the signature fails.
        ({"verify_tls": True, "ca_file": other_ca}, "certificate signature failure"),
    ]
    for kw, why in cases:
        with pytest.raises(VSphereCertificateError) as e:
            https(sim, **kw)
        text = str(e.value)
        assert where in text and "not trusted" in text and why in text, text
        assert presented in text, text  # what to pin, once checked with the administrator
        assert isinstance(e.value, VSphereConnectionError)

    wrong_pin = pem_thumbprint(sim.ca_file)  # the CA's, not the server's
    with pytest.raises(VSphereCertificateError) as e:
        https(sim, thumbprint=wrong_pin)
    assert where in str(e.value) and f"not the pinned one (pinned {wrong_pin})" in str(e.value)


def test_verification_off_connects_and_reads(sim: Simulator) -> None:
    with https(sim, verify_tls=False) as client:
        assert client.about.is_vcenter
        assert {vm.name for vm in read_inventory(client).vms} == {ODD, "db1"}
        assert set(tls_peers(client)) == {sim.thumbprint}


def test_trust_options_are_checked_before_connecting(sim: Simulator, tmp_path: Path) -> None:
    assert sim.ca_file is not None
    with pytest.raises(UsageError, match="not a certificate thumbprint"):
        https(sim, thumbprint="12:34:zz")
    with pytest.raises(UsageError, match="not both"):
        https(sim, ca_file=sim.ca_file, thumbprint=sim.thumbprint)
    with pytest.raises(UsageError, match="needs https"):
        VSphereClient.connect(sim.host, sim.port, protocol="http", thumbprint=sim.thumbprint)
    with pytest.raises(UsageError, match="cannot read the CA file"):
        https(sim, ca_file=tmp_path / "missing.pem")


def test_plain_http_to_the_https_server_fails_as_a_connection_error(sim: Simulator) -> None:
    with pytest.raises(VSphereConnectionError) as e:
        VSphereClient.connect(sim.host, sim.port, protocol="http", timeout=10)
    assert f"{sim.host}:{sim.port}" in str(e.value)


def test_a_pin_is_checked_at_every_connection(launcher: Path) -> None:
    """The server at the same address and port comes back with another certificate: every path
    that opens a connection refuses it (pyVmomi's own pin checks the first connection only)."""
    first = Simulator(SPEC, launcher=launcher, tls=True).start()
    try:
        client = https(first, thumbprint=first.thumbprint)
        with DatastoreHttp(client, "Prod DC", "ds-fast") as ds:
            ds.upload_bytes("pin/a.bin", b"pinned")
            assert ds.read("pin/a.bin", 0, 6) == b"pinned"
        read_inventory(client)
        host, port, pinned = first.host, first.port, first.thumbprint
    finally:
        first.stop()
    listen = f"{host}:{port}"
    second = Simulator(
        SimulatorSpec(model="vpx", datacenters=SPEC.datacenters, listen=listen),
        launcher=launcher,
        tls=True,
    )
    with second, client:
        assert second.port == port and second.thumbprint != pinned
        # The pooled connections died with the first server: the first call may report that.
        with pytest.raises(VSphereConnectionError):
            client.ping()
        with pytest.raises(VSphereCertificateError, match="not the pinned one"):
            read_inventory(client)  # the fast reader, on a fresh connection of the pool
        with pytest.raises(VSphereCertificateError, match="not the pinned one"):
            client.ping()
        with (
            DatastoreHttp(client, "Prod DC", "ds-fast") as ds,
            pytest.raises(VSphereCertificateError, match="not the pinned one"),
        ):
            ds.size("pin/a.bin")


def test_the_fast_reader_never_sends_an_https_session_in_clear(sim: Simulator) -> None:
    """Were the session's pool to hand out a plain HTTP connection, the fast reader refuses to
    post on it (the request carries the session cookie) rather than fall back to http."""
    with https(sim, ca_file=sim.ca_file) as client:
        root = client.content.rootFolder
        spec = PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=root, skip=False)],
            propSet=[PC.PropertySpec(type=type(root), pathSet=["name"])],
        )
        [row] = fastprops.retrieve_contents(client, spec, {}, "read the root folder")
        assert row.kind == "Folder"
        stub = client.si._stub
        stub.DropConnections()
        stub.scheme = http.client.HTTPConnection  # a stub gone wrong
        stub.schemeArgs.pop("context")
        with pytest.raises(VSphereConnectionError, match="is https but its connection is"):
            fastprops.retrieve_contents(client, spec, {}, "read the root folder")
