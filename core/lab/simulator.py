"""The lab's vCenter and ESXi: govmomi's simulator, built from Debian's packages and run here.

It sits under the lab (``replicadesk lab up``, the tests, the benchmark): `build_launcher`
compiles the Go launcher kept beside this module (``core/lab/vcsim/*.go``) against Debian's
govmomi 0.24.2 in GOPATH mode, without network, and caches the binary under
``$XDG_CACHE_HOME/replicadesk/vcsim/<hash of the sources and toolchain>/vcsim`` (a file lock makes
parallel first builds wait for one another). `Simulator` writes a `SimulatorSpec` as the
launcher's topology JSON, starts it (optionally behind a command prefix such as ``ip netns exec
dr``), reads the one JSON line it prints (URL, pid, datastore folders) and stops it with SIGTERM,
after which the launcher removes its temporary datastore folders; `stop` never leaves a process.

Topology JSON (what `SimulatorSpec.to_json` writes; the launcher refuses unknown keys)::

    {"model": "vpx" | "esx", "listen": "127.0.0.1:0", "changelog_dir": "...",
     "cbt_max_areas": 4, "datastore_root": "...",
     "tls_cert": "", "tls_key": "",                    # PEM files: serve https; "": http
     "login_user": "", "login_password": "",           # "": any user name and password
     "datacenters": [{"name": "...",
        "datastores": [{"name": "...", "hosts": []}],          # [] = every host of the DC
        "networks": ["..."],                                    # standard port groups
        "switches": [{"name": "...", "portgroups": ["..."]}],   # distributed switch + port groups
        "clusters": [{"name": "...", "hosts": ["..."], "resource_pools": ["..."]}],
        "hosts": ["..."],                                       # standalone hosts
        "vms": [{"name": "...", "host": "...", "cluster": "", "resource_pool": "", "folder": "a/b",
                 "datastore": "...", "cpus": 1, "memory_mb": 256, "guest_id": "",
                 "disks": [{"capacity_kb": 1024, "thin": true, "datastore": ""}],
                 "networks": ["..."], "power_on": false, "cbt": false,
                 "no_tools": false, "quiesce_fails": false}]}]}

An ``esx`` model has one datacenter (``ha-datacenter``) and one host (vcsim's
``localhost.localdomain``), no clusters, extra hosts or switches. Every datacenter also has vcsim's
own ``VM Network``. Device keys are vSphere's: SCSI controller 1000, disks 2000+i, NICs 4000+i.

What vcsim 0.24.2 lets the Python side do afterwards through pyvmomi (checked in its source and
by tests/core/lab): Rename_Task on VMs, folders, clusters and datacenters; ReconfigVM_Task to add
disks (with a unitNumber and fileOperation "create"), resize them, add or edit NICs on known
networks, and set changeTrackingEnabled; CreateVM/RegisterVM/Destroy/power operations and
snapshots. vcsim has no Rename_Task for networks; the launcher adds one for standard networks and
distributed port groups (rename.go). It also serves QueryChangedDiskAreas from the change log
(`core.lab.changelog`, cbt.go): see that file for paging, faults and the snapshot argument.
Guest quirks a VM can be built with: ``no_tools``, its guest never runs VMware Tools (tools.go);
``quiesce_fails``, a quiesced snapshot of it powered on fails as ESXi's does when the guest cannot
be quiesced (the task ends with ApplicationQuiesceFault, no snapshot is made) while a snapshot
without quiescing succeeds (quiesce.go).

HTTPS (``Simulator(spec, tls=True)``; tls.go): the simulator serves SOAP and the datastore
interface over TLS with a server certificate made at start, in the work directory, by a CA of
its own (`core.mover.certs`; names: the listen address, ``localhost``, ``127.0.0.1``). A client
trusts it, as it would a vCenter with an internal CA or a self-signed certificate, by
``VSphereClient.connect(sim.host, sim.port, protocol="https", ca_file=sim.ca_file)`` or by
pinning the certificate (``thumbprint=sim.thumbprint``, SHA-256); with neither (and
``verify_tls=True``) the connection is refused as untrusted, as a real vCenter's would be.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from core.errors import SimulatorBuildError, SimulatorStartError
from core.mover.certs import create_certificates
from core.procutil import die_with_parent, stop_process

GOCODE = Path("/usr/share/gocode")
GOVMOMI = GOCODE / "src/github.com/vmware/govmomi/simulator"
DEBIAN_PACKAGES = "golang-go golang-github-vmware-govmomi-dev"
_PACKAGE = "replicadesk-vcsim"


# --- topology ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiskSpec:
    capacity_kb: int
    thin: bool = True
    datastore: str = ""  # empty: the VM's datastore


@dataclass(frozen=True)
class VmSpec:
    name: str
    host: str = ""  # empty: the first host of `cluster` (or the ESX host)
    cluster: str = ""
    resource_pool: str = ""
    folder: str = ""  # "a/b": folders below the datacenter's vm folder, made when missing
    datastore: str = ""  # empty: the datacenter's first datastore
    cpus: int = 1
    memory_mb: int = 256
    guest_id: str = ""
    disks: tuple[DiskSpec, ...] = ()
    networks: tuple[str, ...] = ()
    power_on: bool = False
    cbt: bool = False
    no_tools: bool = False  # the guest never runs VMware Tools, even powered on
    quiesce_fails: bool = False  # quiesced snapshots fail (ApplicationQuiesceFault) while on


@dataclass(frozen=True)
class DatastoreSpec:
    name: str
    hosts: tuple[str, ...] = ()  # empty: mounted on every host of the datacenter


@dataclass(frozen=True)
class SwitchSpec:
    name: str
    portgroups: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    hosts: tuple[str, ...] = ()
    resource_pools: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatacenterSpec:
    name: str
    datastores: tuple[DatastoreSpec, ...] = ()
    networks: tuple[str, ...] = ()
    switches: tuple[SwitchSpec, ...] = ()
    clusters: tuple[ClusterSpec, ...] = ()
    hosts: tuple[str, ...] = ()
    vms: tuple[VmSpec, ...] = ()


ESX_DATACENTER = "ha-datacenter"
ESX_HOST = "localhost.localdomain"


@dataclass(frozen=True)
class SimulatorSpec:
    """The inventory of one simulated vCenter (``vpx``) or standalone ESXi host (``esx``)."""

    model: Literal["vpx", "esx"] = "vpx"
    datacenters: tuple[DatacenterSpec, ...] = ()
    listen: str = "127.0.0.1:0"
    cbt_max_areas: int = 4  # areas per QueryChangedDiskAreas answer: clients must page
    # With a login_user, only it logs in, with login_password; otherwise any non-empty user
    # name and password do (vcsim's default).
    login_user: str = ""
    login_password: str = ""

    def to_json(
        self,
        changelog_dir: Path,
        datastore_root: Path,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
    ) -> dict[str, Any]:
        doc = asdict(self)
        doc["changelog_dir"] = str(changelog_dir)
        doc["datastore_root"] = str(datastore_root)
        doc["tls_cert"] = str(tls_cert) if tls_cert is not None else ""
        doc["tls_key"] = str(tls_key) if tls_key is not None else ""
        return doc

    @classmethod
    def vpx(
        cls,
        *,
        datacenter: str = "DC0",
        clusters: int = 1,
        hosts_per_cluster: int = 2,
        standalone_hosts: int = 1,
        datastores: int = 1,
        vms_per_host: int = 1,
        disk_kb: int = 1024,
        portgroups: Sequence[str] = ("DVPG0",),
        cbt: bool = True,
    ) -> SimulatorSpec:
        """A vCenter with generated names: ``C0``, ``C0_H0``, ``H0``, ``LocalDS_0``,
        ``<host>_VM0``...; one distributed switch carrying `portgroups`; VMs on the first port
        group (or ``VM Network``), each with one thin disk of `disk_kb`."""
        net = portgroups[0] if portgroups else "VM Network"
        cl = tuple(
            ClusterSpec(f"C{c}", tuple(f"C{c}_H{h}" for h in range(hosts_per_cluster)))
            for c in range(clusters)
        )
        standalone = tuple(f"H{h}" for h in range(standalone_hosts))
        hosts = [h for c in cl for h in c.hosts] + list(standalone)
        vms = tuple(
            VmSpec(
                f"{h}_VM{i}",
                host=h,
                disks=(DiskSpec(disk_kb),),
                networks=(net,),
                cbt=cbt,
            )
            for h in hosts
            for i in range(vms_per_host)
        )
        dc = DatacenterSpec(
            datacenter,
            datastores=tuple(DatastoreSpec(f"LocalDS_{i}") for i in range(datastores)),
            switches=(SwitchSpec("DVS0", tuple(portgroups)),) if portgroups else (),
            clusters=cl,
            hosts=standalone,
            vms=vms,
        )
        return cls("vpx", (dc,))

    @classmethod
    def esx(
        cls,
        *,
        datastores: int = 1,
        vms: int = 1,
        disk_kb: int = 1024,
        networks: Sequence[str] = (),
        cbt: bool = True,
    ) -> SimulatorSpec:
        """A standalone ESXi host with `datastores` datastores and `vms` VMs named ``VM0``..."""
        dc = DatacenterSpec(
            ESX_DATACENTER,
            datastores=tuple(DatastoreSpec(f"datastore{i + 1}") for i in range(datastores)),
            networks=tuple(networks),
            vms=tuple(
                VmSpec(f"VM{i}", host=ESX_HOST, disks=(DiskSpec(disk_kb),), cbt=cbt)
                for i in range(vms)
            ),
        )
        return cls("esx", (dc,))


# --- the launcher binary ----------------------------------------------------------------------


def _sources() -> list[tuple[str, bytes]]:
    root = resources.files("core.lab") / "vcsim"
    files = sorted((p.name, p.read_bytes()) for p in root.iterdir() if p.name.endswith(".go"))
    if not files:
        raise SimulatorBuildError(f"the launcher's Go sources are missing from {root}")
    return files


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "replicadesk" / "vcsim"


def build_launcher(cache_dir: Path | None = None, timeout: float = 600.0) -> Path:
    """The simulator launcher binary, built on first use and cached.

    The cache key hashes the Go sources, the Go version and govmomi's simulator directory, so a
    changed launcher or an upgraded Debian package gets a fresh build.
    """
    go = shutil.which("go")
    if go is None:
        raise SimulatorBuildError(
            f"Go is not installed; install the Debian packages {DEBIAN_PACKAGES} "
            "(installer/setup.sh does)"
        )
    if not GOVMOMI.is_dir():
        raise SimulatorBuildError(
            f"govmomi's simulator is missing ({GOVMOMI}); install the Debian packages "
            f"{DEBIAN_PACKAGES} (installer/setup.sh does)"
        )
    sources = _sources()
    digest = hashlib.sha256()
    for name, data in sources:
        digest.update(name.encode() + b"\0" + data + b"\0")
    try:
        version = subprocess.run(
            [go, "version"], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise SimulatorBuildError(f"`go version` failed: {e}") from e
    digest.update(version.encode())
    digest.update(str(GOVMOMI.stat().st_mtime_ns).encode())

    root = cache_dir if cache_dir is not None else _cache_root()
    target_dir = root / digest.hexdigest()[:20]
    binary = target_dir / "vcsim"
    if binary.is_file():
        return binary
    target_dir.mkdir(parents=True, exist_ok=True)
    with open(target_dir / ".lock", "w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # a parallel first build waits for ours
        if binary.is_file():
            return binary
        with tempfile.TemporaryDirectory(prefix="build-", dir=target_dir) as tmp:
            src = Path(tmp) / "src" / _PACKAGE
            src.mkdir(parents=True)
            for name, data in sources:
                (src / name).write_bytes(data)
            env = dict(os.environ)
            env.update(
                GO111MODULE="off",
                GOPATH=f"{tmp}:{GOCODE}",
                GOFLAGS="",
                CGO_ENABLED="0",
                GOPROXY="off",
            )
            if "GOCACHE" not in env and "HOME" not in env and "XDG_CACHE_HOME" not in env:
                env["GOCACHE"] = str(root / "go-build")
            out = Path(tmp) / "vcsim"
            try:
                proc = subprocess.run(
                    [go, "build", "-o", str(out), _PACKAGE],
                    cwd=src,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
            except subprocess.TimeoutExpired as e:
                raise SimulatorBuildError(f"`go build` took more than {timeout:.0f} s") from e
            if proc.returncode != 0:
                tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
                raise SimulatorBuildError(f"`go build` failed:\n{tail}")
            os.replace(out, binary)
    return binary


# --- a running simulator ----------------------------------------------------------------------


@dataclass(frozen=True)
class DatastoreDir:
    """Where a simulated datastore keeps its files (vcsim datastores are local folders)."""

    datacenter: str
    name: str
    path: Path


@dataclass
class Simulator:
    """One running simulator process; a context manager that always stops it.

    `changelog_dir` is where the CBT change logs live (default: inside the work directory, so
    gone at stop); `workdir` holds the topology file, the launcher's log and, by default, the
    datastore folders (default: a temporary directory removed at stop). `prefix` runs the
    launcher through another command, e.g. ``("ip", "netns", "exec", "dr")`` with a `listen`
    address inside that namespace; the command must exec the launcher (not fork it) so that the
    signal reaches it. `tls` serves https with a certificate made at start (see the module's
    docstring): `ca_file` is then the CA to trust and `thumbprint` the certificate's SHA-256.
    """

    spec: SimulatorSpec
    changelog_dir: Path | None = None
    workdir: Path | None = None
    datastore_root: Path | None = None
    prefix: Sequence[str] = ()
    start_timeout: float = 60.0
    launcher: Path | None = None
    tls: bool = False

    url: str = field(default="", init=False)
    host: str = field(default="", init=False)
    port: int = field(default=0, init=False)
    datastores: list[DatastoreDir] = field(default_factory=list, init=False)
    ca_file: Path | None = field(default=None, init=False)  # with `tls`: the CA that signed it
    thumbprint: str = field(default="", init=False)  # with `tls`: SHA-256 of its certificate
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _own_workdir: bool = field(default=False, init=False, repr=False)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def protocol(self) -> Literal["https", "http"]:
        return "https" if self.tls else "http"

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "vcsim.log"

    def datastore(self, name: str, datacenter: str | None = None) -> DatastoreDir:
        for ds in self.datastores:
            if ds.name == name and datacenter in (None, ds.datacenter):
                return ds
        raise KeyError(name)

    def start(self) -> Simulator:
        if self._proc is not None:
            raise SimulatorStartError("this simulator is already started")
        launcher = self.launcher if self.launcher is not None else build_launcher()
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="replicadesk-vcsim-"))
            self._own_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        changelog = self.changelog_dir or self.workdir / "changelog"
        changelog.mkdir(parents=True, exist_ok=True)
        topology = self.workdir / "topology.json"
        cert = key = None
        if self.tls:
            cert, key = self._make_certificate(self.workdir / "tls")
        doc = self.spec.to_json(changelog, self.datastore_root or self.workdir, cert, key)
        topology.write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
        try:
            with open(self.log_path, "wb") as log:
                self._proc = subprocess.Popen(
                    [*self.prefix, str(launcher), str(topology)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    start_new_session=True,  # a Ctrl-C at the terminal is ours to forward
                    preexec_fn=die_with_parent,
                )
            self._read_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _make_certificate(self, folder: Path) -> tuple[Path, Path]:
        """A CA and the server certificate it signs, for the address the simulator listens on."""
        listen = urlsplit(f"//{self.spec.listen}").hostname or "127.0.0.1"
        names = [listen, "localhost", "127.0.0.1"]
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(listen).is_unspecified:  # 0.0.0.0: only the fixed names
                names.remove(listen)
        paths = create_certificates(folder, list(dict.fromkeys(names)))
        der = x509.load_pem_x509_certificate(paths["server"].read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
        self.ca_file = paths["ca"]
        self.thumbprint = hashlib.sha256(der).hexdigest()
        return paths["server"], paths["server_key"]

    def _read_ready(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        deadline = time.monotonic() + self.start_timeout
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(stdout, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SimulatorStartError(
                        f"no answer within {self.start_timeout:.0f} s{self._log_tail()}"
                    )
                if not sel.select(left):
                    continue
                chunk = os.read(stdout.fileno(), 65536)
                if not chunk:
                    self._proc.wait(timeout=10)
                    raise SimulatorStartError(
                        f"the launcher exited with status {self._proc.returncode}{self._log_tail()}"
                    )
                buf += chunk
        stdout.close()  # the launcher prints nothing after its ready line
        try:
            ready = json.loads(buf.split(b"\n", 1)[0])
            parts = urlsplit(ready["url"])
            self.host = parts.hostname or ""
            self.port = parts.port or 0
            self.url = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"
            self.datastores = [
                DatastoreDir(d["datacenter"], d["name"], Path(d["path"]))
                for d in ready.get("datastores") or []
            ]
        except (ValueError, KeyError, TypeError) as e:
            raise SimulatorStartError(f"unreadable ready line {buf[:200]!r}: {e}") from e
        if parts.scheme != self.protocol:  # an old launcher would serve http, never say so
            raise SimulatorStartError(f"it serves {self.url}; {self.protocol} was asked for")

    def _log_tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip()
        except OSError:
            return ""
        return ":\n" + "\n".join(text.splitlines()[-15:]) if text else ""

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the launcher (SIGTERM, then SIGKILL after `timeout`) and wait for it; remove
        what it left behind. Safe to call more than once."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, timeout, group=True)
        # After a clean exit the launcher has removed them; after a SIGKILL it could not.
        for ds in self.datastores:
            shutil.rmtree(ds.path, ignore_errors=True)
        if self.tls and self.workdir is not None:  # the CA's key too: made for this run only
            shutil.rmtree(self.workdir / "tls", ignore_errors=True)
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
            self._own_workdir = False

    def __enter__(self) -> Simulator:
        return self.start() if self._proc is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
