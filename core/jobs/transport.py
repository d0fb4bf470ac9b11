"""Transport modes of a VM task: reading source disks in Virtual appliance (hot-add) mode, and
writing replica chains in Network mode. Called by `core.jobs.vmtask`, which tries the job's
modes in order (DOMAIN.md step 6) and logs where a mode cannot do an operation and the run falls
back to the next one.

Hot-add (`HotAddSource`): the snapshot's disk file is attached to the source proxy's VM
(`core.vsphere.hotadd`), recorded in the store first (`core.store.hotadd`), read, and detached
whatever happens; `detach_leftovers` detaches, at the start of a VM's task, the disks that the
records of finished or crashed runs say are still attached, and only those. The source mover runs
in this process: in the lab the proxy VM is a simulated VM, and the disk it "sees" once attached
is the datastore file itself, which this machine opens locally (a proxy VM's guest would open
the SCSI device the attach made). When that file is not visible here, hot-add falls back.

Network mode for the target (`NetworkReplicaWrite`): the chain folder on the DR datastore is
reached only through the host's datastore HTTP interface, whose PUT replaces whole files. The new
point is written by the engine into a local staging folder that mirrors the remote chain's
metadata (its `replica.json`, the latest point's `.digests`, and a stand-in for the latest point
that has its CID: a flat descriptor over a sparse, never uploaded, base), so the new delta names
the same parent with the same CID as a direct write would. Then the new files are uploaded in the
order of `core.replica.chain`'s crash safety: data (`base-flat.vmdk` on a first run, the new
`point-NNNN.vmdk`), its `.digests`, and last the manifest that lists them (uploaded under a
temporary name and moved over the old one, so the manifest is never half written). Until the
manifest moves, the remote replica is as it was; unlisted files are leftovers that the next run
overwrites or a direct open removes.

Retention is deferred in Network mode: merging the oldest point rewrites the whole base disk,
which over HTTP means downloading and uploading it entirely. Points are kept until a run with
direct storage access merges them; a chain at VMware's 28 point limit is not written in network
mode (the run says what to do).
"""

from __future__ import annotations

import shutil
import struct
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from core.errors import (
    CancelledError,
    JobRunError,
    MetadataCorruptError,
    MetadataMismatchError,
    MetadataMissingError,
    MetadataStaleError,
    VSphereError,
    VSphereFileError,
)
from core.jobs.context import RunContext
from core.model.infra import BackupProxy, TransportMode
from core.replica import digestfile
from core.replica.chain import BASE_EXTENT, MAX_POINTS
from core.replica.digestfile import DigestFileError
from core.replica.maintenance import maintain
from core.replica.manifest import MANIFEST_NAME, Manifest
from core.replica.metadata import Expected, MetadataStore
from core.vmdk.descriptor import flat_descriptor, parse_descriptor, render_descriptor
from core.vsphere import hotadd
from core.vsphere.datastore import DatastorePath, local_path, make_directory, move_file
from core.vsphere.models import Datastore
from core.vsphere.transfer import DatastoreHttp

MODE_NAMES = {
    TransportMode.DIRECT: "direct storage access",
    TransportMode.HOTADD: "virtual appliance (hot-add) mode",
    TransportMode.NETWORK: "network mode",
}
MAX_DESCRIPTOR = 64 << 10  # a flat descriptor is well under 1 KiB; anything this big is not one
_KDMV_HEAD = struct.Struct("<4sIIQQQQ")  # magic, version, flags, capacity, grain, desc off/size

Log = Callable[[str], None]


class ModeUnavailable(JobRunError):
    """{}: {}"""


def falls_back(modes: tuple[TransportMode, ...], mode: TransportMode) -> str:
    """The end of a log line saying what comes after `mode` in `modes`."""
    later = modes[modes.index(mode) + 1 :]
    return f": falls back to {MODE_NAMES[later[0]]}" if later else ""


# --- Virtual appliance (hot-add) for reading source disks ------------------------------------

_proxy_locks: dict[tuple[str, str], threading.Lock] = {}
_proxy_locks_guard = threading.Lock()


def _proxy_lock(server: str, vm: str) -> threading.Lock:
    """One attach or detach at a time per proxy VM in this process (free slots are chosen by
    reading the VM's devices, so two at once could pick the same slot)."""
    with _proxy_locks_guard:
        return _proxy_locks.setdefault((server, vm), threading.Lock())


def hotadd_proxy(ctx: RunContext) -> tuple[BackupProxy | None, str]:
    """The source proxy whose VM hot-add uses (the job's chosen source proxies, or any proxy of
    the source site), or None and why none can."""
    chosen = ctx.job.transfer.source_proxies.proxies
    if chosen:
        candidates = [ctx.store.proxies.get(name) for name in chosen]
        where = "the job's source proxies"
    else:
        candidates = ctx.store.proxies.list(ctx.repository.site)
        where = f"proxies of site {ctx.repository.site}"
    server = ctx.source_server.address
    for p in candidates:
        if (
            p.vm is not None
            and p.vm_server == server
            and TransportMode.HOTADD in ctx.job.transfer.modes_for(p)
        ):
            return p, ""
    return None, f"none of the {where} runs in a VM on {server} and allows hot-add"


def detach_leftovers(ctx: RunContext, proxy: BackupProxy, info: Log, warn: Log) -> None:
    """Detach the disks that runs which are over left attached to the proxy's VM, as the store
    records them; a disk no record names, or whose slot now holds another file, stays."""
    assert proxy.vm is not None and proxy.vm_server is not None
    records = ctx.store.hotadd_disks.stale(proxy.vm_server, proxy.vm)
    if not records:
        return
    with _proxy_lock(proxy.vm_server, proxy.vm):
        try:
            present = hotadd.proxy_disks(ctx.source, proxy.vm)
        except VSphereError as e:
            warn(
                f"could not read the devices of the VM of proxy {proxy.name} to detach "
                f"{len(records)} disk(s) earlier runs left attached: {e}; the next run tries again"
            )
            return
        for rec in records:
            match = next(
                (
                    d
                    for d in present
                    if (d.controller_key, d.unit_number) == (rec.controller_key, rec.unit_number)
                    and d.file_name == rec.file
                    and (rec.device_key is None or d.key == rec.device_key)
                ),
                None,
            )
            if match is None:
                info(
                    f"hot-add record of {rec.file} on proxy VM of {proxy.name}: no longer "
                    "attached; record removed"
                )
                ctx.store.hotadd_disks.forget(rec.id)
                continue
            try:
                hotadd.detach_disk(ctx.source, proxy.vm, match.key)
            except VSphereError as e:
                warn(
                    f"could not detach {rec.file} from the VM of proxy {proxy.name}, left "
                    f"attached by an earlier run: {e}; the next run tries again"
                )
                continue
            ctx.store.hotadd_disks.forget(rec.id)
            session = f"session {rec.session_id}" if rec.session_id else "an unknown session"
            warn(
                f"detached disk {rec.file} from the VM of proxy {proxy.name}: it was left "
                f"attached by an earlier run that did not finish ({session})"
            )


class HotAddSource:
    """One source disk read in Virtual appliance mode: `open` attaches it to the proxy VM (the
    attach recorded in the store first) and returns the file to read; `close` detaches it."""

    def __init__(
        self,
        ctx: RunContext,
        proxy: BackupProxy,
        source_vm: str,
        datastore: Datastore,
        file_name: str,
        info: Log,
        warn: Log,
    ) -> None:
        assert proxy.vm is not None and proxy.vm_server is not None
        self.ctx = ctx
        self.proxy = proxy
        self.proxy_vm = proxy.vm
        self.server = proxy.vm_server
        self.source_vm = source_vm
        self.datastore = datastore
        self.file_name = file_name
        self.info = info
        self.warn = warn
        self.record_id: int | None = None
        self.device_key: int | None = None

    def open(self) -> Path:
        ctx = self.ctx
        with _proxy_lock(self.server, self.proxy_vm):
            slot = hotadd.free_slot(ctx.source, self.proxy_vm)
            self.record_id = ctx.store.hotadd_disks.record(
                self.server, self.proxy_vm, slot, self.file_name, self.source_vm, ctx.session_id
            )
            try:
                self.device_key = hotadd.attach_disk(
                    ctx.source, self.proxy_vm, self.file_name, slot
                )
            except VSphereError:
                self._forget_unless_attached(slot)
                raise
            ctx.store.hotadd_disks.set_device(self.record_id, self.device_key)
        self.info(
            f"{self.file_name} attached to the VM of proxy {self.proxy.name} (SCSI "
            f"{slot[0]}:{slot[1]}, independent non-persistent) for reading"
        )
        path = local_path(self.datastore, self.file_name)
        if not path.exists():
            self.close()
            raise ModeUnavailable(
                f"proxy {self.proxy.name}",
                f"the attached disk is not visible to the data mover on this machine ({path})",
            )
        return path

    def _forget_unless_attached(self, slot: tuple[int, int]) -> None:
        """After a failed attach: keep the record only if the disk did get attached."""
        assert self.record_id is not None
        try:
            present = hotadd.proxy_disks(self.ctx.source, self.proxy_vm)
        except VSphereError:
            return  # unknown: the record stays, the next run checks the slot
        if not any(
            (d.controller_key, d.unit_number) == slot and d.file_name == self.file_name
            for d in present
        ):
            self.ctx.store.hotadd_disks.forget(self.record_id)
            self.record_id = None

    def close(self) -> None:
        if self.record_id is None or self.device_key is None:
            return
        try:
            with _proxy_lock(self.server, self.proxy_vm):
                hotadd.detach_disk(self.ctx.source, self.proxy_vm, self.device_key)
        except VSphereError as e:
            self.warn(
                f"could not detach {self.file_name} from the VM of proxy {self.proxy.name}: "
                f"{e}; the next run detaches it"
            )
            return
        self.ctx.store.hotadd_disks.forget(self.record_id)
        self.record_id = self.device_key = None
        self.info(f"{self.file_name} detached from the VM of proxy {self.proxy.name}")


# --- Network mode for writing replica chains --------------------------------------------------


class NetworkReplicaWrite:
    """One disk's new restore point written in Network mode: staged here, uploaded over HTTP."""

    def __init__(
        self,
        ctx: RunContext,
        datacenter: str,
        datastore: Datastore,
        chain: DatastorePath,
        info: Log,
    ) -> None:
        self.ctx = ctx
        self.datacenter = datacenter  # moref
        self.datacenter_path = ctx.target_inventory.datacenter(datacenter).name
        self.datastore = datastore
        self.chain = chain
        self.info = info
        self.staging: Path | None = None
        self.remote: Manifest | None = None  # the remote manifest before this run
        self._tmp: Path | None = None

    def _http(self) -> DatastoreHttp:
        return DatastoreHttp(self.ctx.target, self.datacenter_path, self.datastore.name)

    def _remote(self, name: str) -> str:
        return str(self.chain.join(name))

    @property
    def folder(self) -> Path:
        if self.staging is None:
            raise JobRunError(str(self.chain), "the network-mode staging folder is not prepared")
        return self.staging

    def prepare(self) -> Path:
        """Mirror the remote chain's metadata into a new staging folder; that folder."""
        self._tmp = Path(tempfile.mkdtemp(prefix="replicadesk-network-"))
        folder = self._tmp / "replica"
        folder.mkdir()
        self.staging = folder
        with self._http() as http:
            try:
                http.download(self._remote(MANIFEST_NAME), folder / MANIFEST_NAME)
            except VSphereFileError as e:
                if "not found" not in str(e):
                    raise
                (folder / MANIFEST_NAME).unlink(missing_ok=True)
                self.info(f"{self.chain}: no replica there yet: the first point is a full copy")
                return folder
            remote = Manifest.from_json(
                (folder / MANIFEST_NAME).read_text(), f"{self.chain} (network mode)"
            )
            self.remote = remote
            if remote.merge is not None:
                raise JobRunError(
                    str(self.chain),
                    "a merge of its oldest restore point was interrupted; finishing it rewrites "
                    f"the base disk and needs direct storage access to {self.datastore.name}",
                )
            if len(remote.points) >= MAX_POINTS:
                raise JobRunError(
                    str(self.chain),
                    f"it holds {len(remote.points)} restore points, VMware's limit, and in network "
                    "mode retention waits for a run with direct storage access to "
                    f"{self.datastore.name}: give a proxy (or this server) access to it",
                )
            if not remote.points:
                return folder
            latest = remote.points[-1]
            http.download(self._remote(latest.digests), folder / latest.digests)
            self._check_latest_cid(http, latest.file, latest.kind, latest.cid)
        # Stand-ins, never uploaded: the latest point as a flat descriptor with its CID over a
        # sparse base of the disk's size (no data: the new delta only names its parent and CID).
        with open(folder / BASE_EXTENT, "wb") as f:
            f.truncate(remote.disk_size)
        desc = flat_descriptor(remote.disk_size, BASE_EXTENT, latest.cid)
        (folder / latest.file).write_text(render_descriptor(desc))
        self.info(
            f"{self.chain}: restore point {latest.id}'s manifest, digests and descriptor "
            "downloaded over datastore HTTP (network mode)"
        )
        return folder

    def _check_latest_cid(self, http: DatastoreHttp, file: str, kind: str, cid: int) -> None:
        """The remote point file must carry the CID the manifest records for it."""
        path = self._remote(file)
        if kind == "base":
            size = http.size(path)
            if size > MAX_DESCRIPTOR:
                raise JobRunError(path, f"a {size}-byte file is not a base point's descriptor")
            text = http.read(path, 0, size).decode("utf-8", "replace")
        else:
            head = http.read(path, 0, _KDMV_HEAD.size)
            if len(head) < _KDMV_HEAD.size:
                raise JobRunError(path, "the delta is shorter than its header")
            magic, _v, _f, _cap, _grain, offset, sectors = _KDMV_HEAD.unpack(head)
            if magic != b"KDMV" or not 0 < sectors * 512 <= MAX_DESCRIPTOR:
                raise JobRunError(path, "not a hosted sparse (KDMV) delta with a descriptor")
            raw = http.read(path, offset * 512, sectors * 512)
            text = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        found = parse_descriptor(text, path).cid
        if found != cid:
            raise JobRunError(
                path,
                f"its descriptor has CID {found:08x}, the manifest records {cid:08x}: the chain "
                "was changed outside ReplicaDesk",
            )

    def seed_metadata(self, metadata_dir: Path) -> str | None:
        """Make the repository's metadata describe the remote latest point when it does not
        (the engine's slow path re-reads the replica, which network mode cannot); why, or None."""
        remote = self.remote
        if remote is None or not remote.points:
            return None
        latest = remote.points[-1]
        store = MetadataStore(metadata_dir)
        expected = Expected(remote.replica_id, latest.id, remote.disk_size, remote.block_size)
        try:
            store.load(expected)
            return None
        except (
            MetadataMissingError,
            MetadataCorruptError,
            MetadataStaleError,
            MetadataMismatchError,
        ) as e:
            why = str(e)
        try:
            digests = digestfile.read(self.folder / latest.digests)
        except (OSError, DigestFileError) as e:
            raise JobRunError(
                str(self.chain), f"the digest file of restore point {latest.id}: {e}"
            ) from e
        store.save(digests)
        return (
            f"{why}; the digests were taken from the replica's digest file of restore point "
            f"{latest.id}"
        )

    def _put(self, http: DatastoreHttp, name: str) -> int:
        local = self.folder / name
        sent = http.upload(self._remote(name), local)
        there = http.size(self._remote(name))
        if there != local.stat().st_size:
            raise JobRunError(
                self._remote(name), f"uploaded {local.stat().st_size} bytes, the host has {there}"
            )
        return sent

    def _put_manifest(self, http: DatastoreHttp) -> None:
        tmp = MANIFEST_NAME + ".tmp"
        self._put(http, tmp)
        move_file(self.ctx.target, self.datacenter, self._remote(tmp), self._remote(MANIFEST_NAME))

    def upload(self, cancel: threading.Event) -> int:
        """Upload what the new point added, manifest last; the bytes sent."""
        folder = self.folder
        new = Manifest.load(folder)
        if new is None:
            raise JobRunError(str(self.chain), "the staged replica has no manifest")
        before = {p.id for p in self.remote.points} if self.remote else set()
        added = [p for p in new.points if p.id not in before]
        data = ([BASE_EXTENT] if not before else []) + [p.file for p in added]
        # The manifest goes under a temporary name first: its name must be free in the folder.
        shutil.copyfile(folder / MANIFEST_NAME, folder / (MANIFEST_NAME + ".tmp"))
        if not before:
            try:
                make_directory(self.ctx.target, self.datacenter, str(self.chain))
            except VSphereFileError as e:
                if "already exists" not in str(e):
                    raise
        sent = 0
        with self._http() as http:
            for name in [*data, *(p.digests for p in added)]:
                if cancel.is_set():
                    raise CancelledError(f"while uploading to {self.chain}, before its manifest")
                sent += self._put(http, name)
            self._put_manifest(http)
        return sent

    def take_back(self, point_id: int) -> None:
        """Undo the uploaded point: the staged replica drops it, and its manifest replaces the
        remote one (the point's files stay as unlisted leftovers)."""
        maintain(self.folder, {"op": "drop", "point": point_id})
        shutil.copyfile(self.folder / MANIFEST_NAME, self.folder / (MANIFEST_NAME + ".tmp"))
        with self._http() as http:
            self._put_manifest(http)

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = self.staging = None
