"""The disks of a running replica: hosted-sparse children of a restore point in its chain.

At failover each disk of the replica VM (its own descriptor, ``[ds] <replica>/<replica>.vmdk``,
as vSphere made it) is replaced by an empty monolithicSparse (KDMV) file whose embedded
descriptor names the chosen point's file in the disk's chain as its parent
(``parentFileNameHint`` relative to the child's folder, ``parentCID`` = that point's CID, read
from the chain's manifest). So the running VM reads exactly the restore point, and whatever it
writes lands in the child, never in the chain: undo discards the child, the chain and its
points are as they were, and replication resumes from the chain's latest point. A test VM gets
children of the same kind in its own folder. A child is written beside its final name and
renamed into place; the descriptor it replaces is kept (a copy in the operation's record folder)
and put back by `detach`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from core.errors import FailoverError, ReplicaError
from core.failover.records import RunningDisk
from core.failover.site import DrSite
from core.fsutil import fsync_dir
from core.model.replicas import DiskPoint, RestorePoint
from core.replica.chain import ReplicaChain
from core.vmdk.descriptor import Descriptor, Extent, flat_descriptor, new_cid
from core.vmdk.sparse import SparseWriter
from core.vsphere.models import Vm


def point_parent(site: DrSite, dp: DiskPoint, point: int) -> tuple[Path, int, int]:
    """(the point's file, its CID, the disk's size) for one disk of a restore point."""
    name = site.replica.replica_name
    if dp.chain is None or dp.chain_point is None:
        raise FailoverError(
            name, f"restore point {point} does not say where disk {dp.disk_key}'s data is"
        )
    folder = site.local(dp.chain)
    try:
        with ReplicaChain.open_for_read(folder) as chain:
            rec = chain.record(dp.chain_point)
            return folder / rec.file, rec.cid, chain.manifest.disk_size
    except ReplicaError as e:
        raise FailoverError(
            name, f"restore point {point}, disk {dp.disk_key}: its chain cannot be read: {e}"
        ) from e


def write_child(child: Path, parent: Path, parent_cid: int, capacity: int) -> None:
    """Replace `child` with an empty hosted-sparse disk reading through to `parent`."""
    partial = child.with_name(child.name + ".partial")
    partial.unlink(missing_ok=True)
    cid = new_cid()
    descriptor = Descriptor(
        create_type="monolithicSparse",
        extents=[Extent("RW", capacity // 512, "SPARSE", child.name)],
        cid=cid,
        parent_cid=parent_cid,
        parent_hint=os.path.relpath(parent, child.parent),
        ddb=flat_descriptor(capacity, child.name, cid).ddb,
    )
    writer = SparseWriter(partial, capacity, descriptor)
    try:
        writer.close()
    except BaseException:
        writer.abort()
        raise
    os.replace(partial, child)
    fsync_dir(child.parent)


def pair_disks(vm: Vm, point: RestorePoint, what: str) -> list[tuple[int, str, DiskPoint]]:
    """The VM's disks (key, file) with the point's disks, both in device-key order (the replica
    VM was made with the source's replicated disks in that order)."""
    vm_disks = sorted(vm.disks, key=lambda d: d.key)
    point_disks = sorted(point.disks, key=lambda d: d.disk_key)
    if len(vm_disks) != len(point_disks):
        raise FailoverError(
            what,
            f"the VM has {len(vm_disks)} disks but restore point {point.number} has "
            f"{len(point_disks)}",
        )
    return [(v.key, v.file_name, p) for v, p in zip(vm_disks, point_disks, strict=True)]


def attach(
    site: DrSite,
    pairs: Sequence[tuple[int, str, DiskPoint]],
    point: int,
    saved_dir: Path | None,
) -> tuple[RunningDisk, ...]:
    """Make each disk file a child of its restore point; the replaced files are copied into
    `saved_dir` first (None: nothing to keep, e.g. a test VM's fresh empty disks)."""
    done: list[RunningDisk] = []
    try:
        for key, file_name, dp in pairs:
            parent, cid, size = point_parent(site, dp, point)
            child = site.local(file_name)
            saved = None
            if saved_dir is not None and child.exists():
                saved_dir.mkdir(parents=True, exist_ok=True)
                saved = f"disk-{key}.vmdk"
                # Copied under a temporary name, then renamed: a saved copy that exists is
                # whole, which is what a recovery after a crash relies on (`restore_saved`).
                partial = saved_dir / (saved + ".partial")
                shutil.copy2(child, partial)
                os.replace(partial, saved_dir / saved)
            disk = RunningDisk(
                key, dp.disk_key, file_name, dp.chain or "", dp.chain_point or 0, size, saved
            )
            write_child(child, parent, cid, size)
            done.append(disk)
    except BaseException:
        detach(site, done, saved_dir)
        raise
    return tuple(done)


def detach(site: DrSite, disks: Sequence[RunningDisk], saved_dir: Path | None) -> None:
    """Put back the descriptors the children replaced; what ran on them is discarded."""
    for d in disks:
        child = site.local(d.file_name)
        if d.saved is not None and saved_dir is not None and (saved_dir / d.saved).exists():
            os.replace(saved_dir / d.saved, child)
        elif d.saved is None:
            child.unlink(missing_ok=True)
        fsync_dir(child.parent)


def restore_saved(site: DrSite, vm: Vm, saved_dir: Path) -> list[str]:
    """After a crash in the middle of `attach`: every disk of `vm` whose saved descriptor is in
    `saved_dir` gets it back (the file names put back, for the log)."""
    done = []
    for d in sorted(vm.disks, key=lambda d: d.key):
        saved = saved_dir / f"disk-{d.key}.vmdk"
        if saved.exists():
            child = site.local(d.file_name)
            os.replace(saved, child)
            fsync_dir(child.parent)
            done.append(d.file_name)
        (saved_dir / f"disk-{d.key}.vmdk.partial").unlink(missing_ok=True)
    return done
