"""The session with one vCenter or standalone ESXi host: the only door to pyVmomi in ReplicaDesk.

`VSphereClient.connect` logs in (SOAP over https, or http for the lab's simulator), tells vCenter
from ESXi (``content.about.apiType``), and `call` runs every pyVmomi call the other modules of
core.vsphere make: a fault becomes the project's own error (`core.vsphere.faults`), a session
that expired during a long run is logged in again once and the call retried, and a broken
connection is a `VSphereConnectionError` naming the server. A keep-alive thread (optional) asks
the server for its time every few minutes so a session is not dropped while data moves over the
datastore HTTP interface, which does not count as SOAP activity.

Every call is counted (`CallStats`): on the client (`client.stats`) and per server for the whole
process (`server_call_totals()`), so a benchmark can tell what vSphere calls cost a job run whose
clients it never sees. Counting costs about a microsecond a call (1.3 us measured on a busy
2-core machine), against milliseconds for a SOAP round trip.

Trust over https, as a vCenter's certificate is usually self-signed or issued by an internal CA:
`verify_tls` checks the chain and the host name against the system's CAs, or against `ca_file`
alone when one is given; `thumbprint` pins the certificate itself (SHA-1, SHA-256 or SHA-512 of
its DER form, hex, colons allowed), checked at every TLS handshake of the session: the SOAP
connections, the fast reader's (`core.vsphere.fastprops` posts on the same pool) and the
datastore transfers' (`ssl_context`). pyVmomi's own thumbprint check is not used: it checks the
first connection only, then turns verification off on the shared context for every later one.
An untrusted certificate is a `VSphereCertificateError` naming the server and the thumbprint of
what it presented. `presented_certificate` reads a server's certificate without trusting it, so
an administrator can be shown its thumbprint before pinning it (`replicadesk server add|trust`).

The password stays in this object (it is needed to log in again) and is never logged nor shown
in a repr.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeVar

from core.errors import UsageError, VSphereConnectionError, VSphereError, VSphereLoginError
from core.vsphere._pyvmomi import Disconnect, SmartConnect, vim, vmodl
from core.vsphere.faults import fault_message, map_fault, map_transport
from core.vsphere.models import ServerAbout

log = logging.getLogger(__name__)

T = TypeVar("T")
Protocol = Literal["https", "http"]

# Transport errors pyVmomi lets through from http.client and the socket layer.
_TRANSPORT = (OSError, http.client.HTTPException)


@dataclass(frozen=True)
class CallCounts:
    """How many vSphere calls were made and the seconds spent waiting for their answers (summed
    over threads, so it can exceed wall time; a task wait's rounds count as calls)."""

    calls: int = 0
    seconds: float = 0.0

    def __add__(self, other: CallCounts) -> CallCounts:
        return CallCounts(self.calls + other.calls, self.seconds + other.seconds)

    def __sub__(self, other: CallCounts) -> CallCounts:
        return CallCounts(self.calls - other.calls, self.seconds - other.seconds)


class CallStats:
    """A thread-safe running count of calls and of the time spent in them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls = 0
        self._seconds = 0.0

    def add(self, seconds: float) -> None:
        with self._lock:
            self._calls += 1
            self._seconds += seconds

    def snapshot(self) -> CallCounts:
        with self._lock:
            return CallCounts(self._calls, self._seconds)


_server_stats: dict[str, CallStats] = {}
_server_stats_lock = threading.Lock()


def _stats_for(where: str) -> CallStats:
    with _server_stats_lock:
        return _server_stats.setdefault(where, CallStats())


_DIGESTS = {40: "sha1", 64: "sha256", 128: "sha512"}  # hex length -> hash


def normalize_thumbprint(text: str) -> str:
    """A certificate thumbprint as lowercase hex without separators; `UsageError` if it is not
    the hex of a SHA-1, SHA-256 or SHA-512 digest."""
    digest = text.replace(":", "").replace(" ", "").strip().lower()
    if len(digest) not in _DIGESTS or any(c not in "0123456789abcdef" for c in digest):
        raise UsageError(
            f"{text!r} is not a certificate thumbprint (the hex SHA-1, SHA-256 or SHA-512 digest "
            "of the certificate, colons allowed)"
        )
    return digest


def certificate_thumbprint(der: bytes, algorithm: str = "sha256") -> str:
    """The thumbprint of a DER certificate as vSphere shows it: hex pairs joined by colons."""
    digest = hashlib.new(algorithm, der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def thumbprint_matches(der: bytes, pin: str) -> bool:
    """Whether DER certificate `der` has thumbprint `pin` (SHA-1, SHA-256 or SHA-512, any
    notation `normalize_thumbprint` takes)."""
    pinned = normalize_thumbprint(pin)
    return hmac.compare_digest(hashlib.new(_DIGESTS[len(pinned)], der).hexdigest(), pinned)


def presented_certificate(address: str, port: int, timeout: float = 10.0) -> bytes:
    """The DER certificate the TLS server at `address`:`port` presents, read without verifying
    it (to show its thumbprint before it is trusted); `VSphereConnectionError` when no TLS
    server answers there."""
    where = f"{address}:{port}"
    try:
        pem = ssl.get_server_certificate((address, port), timeout=timeout)
        return ssl.PEM_cert_to_DER_cert(pem)
    except ssl.SSLError as e:
        raise VSphereConnectionError(where, f"no TLS server answers there ({e})") from e
    except (OSError, ValueError) as e:
        raise map_transport(e, where) from e


class _PinnedContext(ssl.SSLContext):
    """A client context that trusts one certificate, by its thumbprint (`_PinnedSocket`)."""

    pinned = ""  # normalized thumbprint


class _PinnedSocket(ssl.SSLSocket):
    """A TLS socket that refuses the server unless its certificate has the pinned thumbprint.

    The check runs right after every handshake, before a byte of the request is sent.
    """

    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        context = self.context
        pinned = context.pinned if isinstance(context, _PinnedContext) else ""
        der = self.getpeercert(binary_form=True) or b""
        seen = hashlib.new(_DIGESTS[len(pinned)], der).hexdigest() if pinned else ""
        if not pinned or not hmac.compare_digest(seen, pinned):
            error = ssl.SSLCertVerificationError(
                ssl.SSL_ERROR_SSL, "certificate thumbprint mismatch"
            )
            error.verify_code = 0
            error.verify_message = (
                f"its certificate is not the pinned one (pinned {pinned or 'nothing'})"
            )
            raise error


def server_call_totals() -> dict[str, CallCounts]:
    """The calls every client of this process made so far, per server ("address:port")."""
    with _server_stats_lock:
        stats = list(_server_stats.items())
    return {where: s.snapshot() for where, s in stats}


class VSphereClient:
    """A logged-in session; a context manager that logs out at the end."""

    def __init__(
        self,
        address: str,
        port: int,
        user: str,
        password: str,
        protocol: Protocol,
        verify_tls: bool,
        timeout: float,
        ca_file: str | os.PathLike[str] | None = None,
        thumbprint: str | None = None,
    ) -> None:
        self.address = address
        self.port = port
        self.user = user
        self.protocol: Protocol = protocol
        self.verify_tls = verify_tls
        self.timeout = timeout
        self.ca_file = os.fspath(ca_file) if ca_file is not None else None
        self.thumbprint = normalize_thumbprint(thumbprint) if thumbprint else ""
        self._ssl_context: ssl.SSLContext | None = None
        self.__password = password
        self._si: Any = None
        self._content: Any = None  # the ServiceInstanceContent, read once at login
        self._login_lock = threading.Lock()
        self._generation = 0  # bumped at each login, so concurrent callers log in only once
        self._keepalive: threading.Thread | None = None
        self._stop = threading.Event()
        self.about = ServerAbout("", "", "", "", "", "")
        self.stats = CallStats()  # this session's calls through `call`
        self._server_stats = _stats_for(self.where)

    def __repr__(self) -> str:
        return f"VSphereClient({self.protocol}://{self.user}@{self.address}:{self.port})"

    # --- session ----------------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        address: str,
        port: int = 443,
        user: str = "",
        password: str = "",
        protocol: Protocol = "https",
        verify_tls: bool = True,
        timeout: float = 120.0,
        keepalive: float | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        thumbprint: str | None = None,
    ) -> VSphereClient:
        """Log in to a vCenter or ESXi host. `keepalive` (seconds) starts the keep-alive thread.

        `timeout` bounds every HTTP exchange (a task wait asks for less than that per round).
        Over https, `verify_tls` checks the server's certificate against the system's CAs, or
        only against the CA certificates (PEM) in `ca_file`; a `thumbprint` pins the
        certificate instead (no CA nor host name check: the certificate must be that one, even
        with `verify_tls` false). A CA file and a thumbprint do not go together.
        """
        if protocol not in ("https", "http"):
            raise VSphereError(address, f"unknown protocol {protocol!r} (https or http)")
        if protocol != "https" and (ca_file is not None or thumbprint):
            raise UsageError(f"{address}: a CA file or a thumbprint needs https, not {protocol}")
        if ca_file is not None and thumbprint:
            raise UsageError(f"{address}: trust a CA file or pin a thumbprint, not both")
        client = cls(
            address, port, user, password, protocol, verify_tls, timeout, ca_file, thumbprint
        )
        client._open()
        if keepalive:
            client.start_keepalive(keepalive)
        return client

    @property
    def where(self) -> str:
        return f"{self.address}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS client context of every connection to this server (None over http): made
        once, shared by the SOAP pool and the datastore transfers."""
        if self.protocol != "https":
            return None
        if self._ssl_context is None:
            self._ssl_context = self._make_ssl_context()
        return self._ssl_context

    def _make_ssl_context(self) -> ssl.SSLContext:
        if self.thumbprint:
            pinned = _PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
            pinned.check_hostname = False
            pinned.verify_mode = ssl.CERT_NONE  # the pin replaces the chain and name checks
            pinned.pinned = self.thumbprint
            pinned.sslsocket_class = _PinnedSocket
            return pinned
        try:
            ctx = ssl.create_default_context(cafile=self.ca_file)  # None: the system's CAs
        except (OSError, ssl.SSLError) as e:
            raise UsageError(f"{self.where}: cannot read the CA file {self.ca_file}: {e}") from e
        if not self.verify_tls:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _presented_thumbprint(self) -> str:
        """The SHA-256 thumbprint of the certificate the server shows, for an error message
        ("" when it cannot be fetched)."""
        try:
            der = presented_certificate(self.address, self.port, min(self.timeout, 10.0))
        except VSphereConnectionError:
            return ""
        return certificate_thumbprint(der)

    def _open(self) -> None:
        kwargs: dict[str, Any] = dict(
            host=self.address,
            port=self.port,
            user=self.user,
            pwd=self.__password,
            protocol=self.protocol,
            httpConnectionTimeout=int(self.timeout),
        )
        if self.protocol == "https":
            kwargs["sslContext"] = self.ssl_context()
            # pyVmomi would swap in a context of its own that checks nothing.
            kwargs["disableSslCertValidation"] = False
        try:
            self._si = SmartConnect(**kwargs)
            # pyVmomi's `si.content` is a round trip at every access, outside `call`: its
            # failures would escape unmapped. The content does not change during a session.
            self._content = self._si.RetrieveContent()
        except vim.fault.InvalidLogin as e:
            raise VSphereLoginError(self.where, self.user, fault_message(e)) from e
        except vmodl.MethodFault as e:
            raise map_fault(e, f"log in to {self.where}") from e
        except ssl.SSLCertVerificationError as e:
            raise map_transport(e, self.where, self._presented_thumbprint()) from e
        except _TRANSPORT as e:
            raise map_transport(e, self.where) from e
        except Exception as e:
            if type(e) is not Exception:
                raise
            # SmartConnect's bare Exception: its probe of /sdk/vimServiceVersions.xml got no
            # vSphere answer (e.g. http asked of an https port, which answers 400).
            raise VSphereConnectionError(
                self.where, f"no vSphere API answers over {self.protocol} (wrong protocol or port?)"
            ) from e
        a = self._content.about
        self.about = ServerAbout(
            api_type=str(a.apiType or ""),
            name=str(a.name or ""),
            version=str(a.version or ""),
            build=str(a.build or ""),
            full_name=str(a.fullName or ""),
            instance_uuid=str(a.instanceUuid or ""),
        )
        self._generation += 1
        log.info("logged in to %s (%s) as %s", self.where, self.about.full_name, self.user)

    def relogin(self, seen_generation: int | None = None) -> None:
        """Log in again on the same connection (the session expired or was terminated)."""
        with self._login_lock:
            if seen_generation is not None and seen_generation != self._generation:
                return  # another thread already did
            self._require()
            try:
                self._content.sessionManager.Login(userName=self.user, password=self.__password)
            except vim.fault.InvalidLogin as e:
                raise VSphereLoginError(self.where, self.user, fault_message(e)) from e
            except vmodl.MethodFault as e:
                raise map_fault(e, f"log in again to {self.where}") from e
            except _TRANSPORT as e:
                raise map_transport(e, self.where) from e
            self._generation += 1
            log.info("logged in again to %s as %s", self.where, self.user)

    def close(self) -> None:
        """Stop the keep-alive thread and log out. Safe to call more than once."""
        self._stop.set()
        if self._keepalive is not None:
            self._keepalive.join(timeout=5)
            self._keepalive = None
        si, self._si = self._si, None
        if si is not None:
            with contextlib.suppress(vmodl.MethodFault, *_TRANSPORT):
                Disconnect(si)

    def __enter__(self) -> VSphereClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._si is None

    def _require(self) -> Any:
        if self._si is None:
            raise VSphereError(self.where, "the session is closed")
        return self._si

    def start_keepalive(self, interval: float) -> None:
        """Ask the server for its time every `interval` seconds, logging in again if needed."""
        if self._keepalive is not None:
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.ping()
                except VSphereError as e:  # the next real call reports it to its caller
                    log.warning("keep-alive to %s failed: %s", self.where, e)

        self._keepalive = threading.Thread(target=run, name=f"vsphere-keepalive-{self.address}")
        self._keepalive.daemon = True
        self._keepalive.start()

    def ping(self) -> None:
        """One cheap round trip (ServiceInstance.CurrentTime), logging in again if needed."""
        self.call(f"keep the session with {self.where} alive", lambda: self.si.CurrentTime())

    # --- calls ------------------------------------------------------------------------------

    @property
    def si(self) -> Any:
        """pyVmomi's ServiceInstance: for core.vsphere's own modules only."""
        return self._require()

    @property
    def content(self) -> Any:
        """The ServiceInstanceContent (managers, root folder...) read at login."""
        self._require()
        return self._content

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one pyVmomi call; map its fault; log in again once if the session had expired.

        Every attempt is counted in `stats`, failed ones too (they cost a round trip as well).
        """
        for attempt in (0, 1):
            generation = self._generation
            try:
                return self._counted(fn)
            except vim.fault.NotAuthenticated as e:
                if attempt:
                    raise map_fault(e, what) from e
                log.info("%s: the session with %s expired; logging in again", what, self.where)
                self.relogin(generation)
            except vmodl.MethodFault as e:
                raise map_fault(e, what) from e
            except _TRANSPORT as e:
                raise map_transport(e, self.where) from e
        raise AssertionError("unreachable")

    def _counted(self, fn: Callable[[], T]) -> T:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            seconds = time.perf_counter() - start
            self.stats.add(seconds)
            self._server_stats.add(seconds)

    def obj(self, kind: str, moref: str) -> Any:
        """The managed object `kind` ("VirtualMachine") with ID `moref`, bound to this session."""
        if not moref:
            raise VSphereError(self.where, f"no {kind} given (empty managed object ID)")
        cls = getattr(vim, kind)
        return cls(moref, self._require()._stub)

    @property
    def session_cookie(self) -> str:
        """The ``Cookie`` header value a vCenter wants on its datastore HTTP interface."""
        cookie = str(self._require()._stub.cookie or "")
        return cookie.split(";", 1)[0].strip()

    @property
    def base_url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.protocol}://{host}:{self.port}"
