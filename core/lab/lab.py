"""The built-in two-site lab: two simulated sites, their proxies and the WAN between them.

`Lab` is what `replicadesk lab up` runs (in a supervisor process, `lab serve`) and what the tests
and benchmarks start in-process. It starts, in order:

1. the production vCenter (`core.lab.topology.production_spec`) on loopback, and writes its VMs'
   disks (`core.lab.content`), logging every written area in the CBT change log;
2. when it may (root, and a WAN asked for), the DR site's network namespace behind a shaped link
   (`core.lab.netns`); the DR vCenter or ESXi host runs inside it, on the site's address;
3. a CA and mover certificates, and one proxy per site: a `replicadesk mover serve` whose root is
   the folder holding that site's datastores (the DR one inside the namespace);
4. `state.json` in the lab folder: how to reach all of it (`LabState`).

`stop()` undoes all of it in reverse order, whatever failed. Everything lives in the lab folder,
which `stop()` removes when the lab made it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import LabError
from core.lab import netns
from core.lab.changelog import ChangeLog
from core.lab.content import write_vm_disk
from core.lab.simulator import Simulator, build_launcher
from core.lab.topology import LabOptions, dr_spec, production_spec
from core.mover.process import MoverServiceProcess
from core.mover.tls import TlsFiles

if TYPE_CHECKING:
    from core.vsphere.models import Inventory

STATE_FILE = "state.json"
LAB_USER = "administrator@vsphere.local"
LAB_PASSWORD = "lab-password"  # vcsim accepts any; a real vCenter's is stored encrypted


@dataclass(frozen=True)
class SiteState:
    name: str  # "production" or "dr"
    url: str
    model: str  # "vpx" (vCenter) or "esx" (standalone host)
    address: str
    port: int
    datastores: dict[str, str]  # datastore name -> local folder
    proxy_address: str
    proxy_port: int
    proxy_root: str
    namespace: str = ""  # the network namespace the site runs in ("" when none)


@dataclass(frozen=True)
class LabState:
    """How to reach a running lab; written to `<lab folder>/state.json`."""

    folder: str
    production: SiteState
    dr: SiteState
    changelog: str
    client_tls: dict[str, str]  # cert, key, ca: what a source proxy presents to the movers
    wan_mbit: float | None  # None: no shaped link (not root)
    user: str = LAB_USER
    password: str = LAB_PASSWORD
    supervisor_pid: int = 0
    vms: int = 0
    disks: int = 0

    @property
    def client(self) -> TlsFiles:
        return TlsFiles(
            Path(self.client_tls["cert"]), Path(self.client_tls["key"]), Path(self.client_tls["ca"])
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> LabState:
        doc: dict[str, Any] = json.loads(text)
        doc["production"] = SiteState(**doc["production"])
        doc["dr"] = SiteState(**doc["dr"])
        return cls(**doc)

    @classmethod
    def load(cls, folder: Path) -> LabState:
        path = folder / STATE_FILE
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise LabError(f"no lab is running in {folder} (no {STATE_FILE})") from None
        except (ValueError, TypeError, KeyError) as e:
            raise LabError(f"{path} is not a lab state file: {e}") from e


@dataclass
class Lab:
    options: LabOptions = field(default_factory=LabOptions)
    folder: Path | None = None
    wan: bool = True  # a shaped link when this process may make one (root)

    state: LabState | None = field(default=None, init=False)
    _prod: Simulator | None = field(default=None, init=False, repr=False)
    _dr: Simulator | None = field(default=None, init=False, repr=False)
    _link: netns.WanLink | None = field(default=None, init=False, repr=False)
    _movers: list[MoverServiceProcess] = field(default_factory=list, init=False, repr=False)
    _own_folder: bool = field(default=False, init=False, repr=False)

    def start(self) -> LabState:
        self.options.check()
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="replicadesk-lab-"))
            self._own_folder = True
        folder = self.folder
        if (folder / STATE_FILE).exists():
            raise LabError(f"a lab already runs in {folder} (stop it with `replicadesk lab down`)")
        folder.mkdir(parents=True, exist_ok=True)
        try:
            return self._start(folder)
        except BaseException:
            self.stop()
            raise

    def _start(self, folder: Path) -> LabState:
        launcher = build_launcher()
        changelog = folder / "changelog"
        for site in ("production", "dr"):
            (folder / site / "datastores").mkdir(parents=True, exist_ok=True)
        self._prod = Simulator(
            production_spec(self.options),
            changelog_dir=changelog,
            workdir=folder / "production",
            datastore_root=folder / "production" / "datastores",
            launcher=launcher,
        ).start()
        vms, disks = self._write_disks(self._prod, ChangeLog(changelog))

        prefix: list[str] = []
        # Without a namespace the DR site still gets an address of its own (all of 127/8 is
        # loopback), so its vCenter is a different server from production's.
        dr_listen = "127.0.0.2"
        if self.wan and netns.can_create():
            netns.sweep_stale()
            self._link = netns.WanLink(netns.LinkShape(rate_mbit=self.options.wan_mbit)).open()
            prefix = self._link.exec_prefix()
            dr_listen = self._link.site_address
        spec = dr_spec(self.options)
        spec = type(spec)(spec.model, spec.datacenters, listen=f"{dr_listen}:0")
        self._dr = Simulator(
            spec,
            changelog_dir=folder / "dr" / "changelog",
            workdir=folder / "dr",
            datastore_root=folder / "dr" / "datastores",
            prefix=prefix,
            launcher=launcher,
        ).start()

        # Imported here: certificate creation needs `cryptography` (core.mover.certs).
        from core.mover.certs import create_certificates

        names = ["localhost", "127.0.0.1", "127.0.0.2"]
        if self._link is not None:
            names += [self._link.site_address, self._link.host_address]
        certs = create_certificates(folder / "certs", names)
        server = TlsFiles(certs["server"], certs["server_key"], certs["ca"])
        prod_proxy = MoverServiceProcess(
            folder / "production" / "datastores", server, log=folder / "production-proxy.log"
        ).start()
        self._movers.append(prod_proxy)
        dr_proxy = MoverServiceProcess(
            folder / "dr" / "datastores",
            server,
            listen=dr_listen,
            prefix=prefix,
            log=folder / "dr-proxy.log",
        ).start()
        self._movers.append(dr_proxy)

        self.state = LabState(
            folder=str(folder),
            production=_site("production", self._prod, prod_proxy, ""),
            dr=_site("dr", self._dr, dr_proxy, self._link.namespace if self._link else ""),
            changelog=str(changelog),
            client_tls={
                "cert": str(certs["client"]),
                "key": str(certs["client_key"]),
                "ca": str(certs["ca"]),
            },
            wan_mbit=self.options.wan_mbit if self._link else None,
            supervisor_pid=os.getpid(),
            vms=vms,
            disks=disks,
        )
        tmp = folder / (STATE_FILE + ".tmp")
        tmp.write_text(self.state.to_json(), encoding="utf-8")
        tmp.replace(folder / STATE_FILE)
        return self.state

    def _write_disks(self, sim: Simulator, log: ChangeLog) -> tuple[int, int]:
        """Give every production disk content, and log it for CBT."""
        from core.vsphere.connection import VSphereClient
        from core.vsphere.inventory import read_inventory

        with VSphereClient.connect(
            sim.host, sim.port, LAB_USER, LAB_PASSWORD, protocol="http"
        ) as client:
            inv = read_inventory(client)
        rng = np.random.default_rng(self.options.seed)
        count = 0
        for vm in inv.vms:
            for disk in vm.disks:
                path = datastore_file(inv, disk.datastore, disk.file_name)
                areas = write_vm_disk(
                    path, disk.capacity, fill=self.options.fill, seed=int(rng.integers(1 << 30))
                )
                if areas:
                    log.record(vm.moref, disk.key, disk.capacity, areas)
                count += 1
        return len(inv.vms), count

    def stop(self) -> None:
        """Stop everything this lab started, in reverse order; safe to call more than once."""
        errors: list[BaseException] = []
        for mover in reversed(self._movers):
            _collect(errors, mover.stop)
        self._movers.clear()
        for sim in (self._dr, self._prod):
            if sim is not None:
                _collect(errors, sim.stop)
        self._dr = self._prod = None
        if self._link is not None:
            _collect(errors, self._link.close)
            self._link = None
        if self.folder is not None:
            if self._own_folder:
                shutil.rmtree(self.folder, ignore_errors=True)
            else:
                remove_lab_files(self.folder)
        self.state = None
        if errors:
            raise LabError(f"stopping the lab: {errors[0]}") from errors[0]

    def __enter__(self) -> LabState:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


LAB_FILES = (
    STATE_FILE,
    "production",
    "dr",
    "certs",
    "changelog",
    "production-proxy.log",
    "dr-proxy.log",
)
"""What a lab makes in its folder; `lab down` removes exactly these (and the folder if empty)."""


def remove_lab_files(folder: Path, *extra: str) -> None:
    for name in (*LAB_FILES, *extra):
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()


def _collect(errors: list[BaseException], fn: Any) -> None:
    try:
        fn()
    except Exception as e:  # every part is stopped even when one fails; the first is raised
        errors.append(e)


def _site(name: str, sim: Simulator, proxy: MoverServiceProcess, namespace: str) -> SiteState:
    return SiteState(
        name=name,
        url=sim.url,
        model=sim.spec.model,
        address=sim.host,
        port=sim.port,
        datastores={d.name: str(d.path) for d in sim.datastores},
        proxy_address=proxy.listen,
        proxy_port=proxy.port,
        proxy_root=str(proxy.root.resolve()),
        namespace=namespace,
    )


def datastore_file(inv: Inventory, datastore_moref: str, file_name: str) -> Path:
    """The local path of a "[ds] folder/file" on a datastore whose url is a local folder."""
    ds = inv.datastore(datastore_moref)
    rest = file_name.split("] ", 1)[1] if "] " in file_name else file_name
    return Path(ds.url) / rest
