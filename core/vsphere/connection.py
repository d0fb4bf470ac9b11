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

The password stays in this object (it is needed to log in again) and is never logged nor shown
in a repr.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeVar

from core.errors import VSphereError, VSphereLoginError
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
    ) -> None:
        self.address = address
        self.port = port
        self.user = user
        self.protocol: Protocol = protocol
        self.verify_tls = verify_tls
        self.timeout = timeout
        self.__password = password
        self._si: Any = None
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
    ) -> VSphereClient:
        """Log in to a vCenter or ESXi host. `keepalive` (seconds) starts the keep-alive thread.

        `timeout` bounds every HTTP exchange (a task wait asks for less than that per round).
        """
        if protocol not in ("https", "http"):
            raise VSphereError(address, f"unknown protocol {protocol!r} (https or http)")
        client = cls(address, port, user, password, protocol, verify_tls, timeout)
        client._open()
        if keepalive:
            client.start_keepalive(keepalive)
        return client

    @property
    def where(self) -> str:
        return f"{self.address}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.protocol != "https":
            return None
        ctx = ssl.create_default_context()
        if not self.verify_tls:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

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
            kwargs["disableSslCertValidation"] = not self.verify_tls
        try:
            self._si = SmartConnect(**kwargs)
        except vim.fault.InvalidLogin as e:
            raise VSphereLoginError(self.where, self.user, fault_message(e)) from e
        except vmodl.MethodFault as e:
            raise map_fault(e, f"log in to {self.where}") from e
        except _TRANSPORT as e:
            raise map_transport(e, self.where) from e
        a = self._si.content.about
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
            si = self._require()
            try:
                si.content.sessionManager.Login(userName=self.user, password=self.__password)
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
        return self._require().content

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
