"""The fast property reader against pyVmomi's: the same inventory field by field on a simulated
vCenter with multi-disk VMs, NICs on standard and distributed port groups, a snapshot tree, a
template and guest addresses; and its failures: a SOAP fault, an expired session, a data object
nobody converts, and an answer cut short by a dropped connection (through a real TCP proxy)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest

from core.errors import VSphereConnectionError, VSphereNotFoundError
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
from core.vsphere import fastprops, power, snapshots
from core.vsphere._pyvmomi import vmodl
from core.vsphere.connection import VSphereClient
from core.vsphere.customization import Customization, NicIp, customize_vm
from core.vsphere.inventory import read_inventory, read_vm
from core.vsphere.models import Inventory
from tests.core.vsphere.conftest import ODD, connect

PC = vmodl.query.PropertyCollector

SPEC = SimulatorSpec(
    model="vpx",
    datacenters=(
        DatacenterSpec(
            "Main DC",
            datastores=(DatastoreSpec("ds-a"), DatastoreSpec("ds b & c", hosts=("esx-1",))),
            networks=("Std Net",),
            switches=(SwitchSpec("DVS", ("pg-1", "pg <2> & co")),),
            clusters=(ClusterSpec("C1", ("esx-1", "esx-2"), resource_pools=("Pool",)),),
            hosts=("esx-solo",),
            vms=(
                VmSpec(
                    ODD,
                    host="esx-1",
                    cluster="C1",
                    resource_pool="Pool",
                    folder="Apps/Deep & <odd>",
                    cpus=4,
                    memory_mb=1024,
                    disks=(
                        DiskSpec(4096),
                        DiskSpec(2048, thin=False, datastore="ds b & c"),
                        DiskSpec(1024),
                    ),
                    networks=("pg-1", "Std Net", "pg <2> & co"),
                    power_on=True,
                    cbt=True,
                ),
                VmSpec("snaps", host="esx-solo", disks=(DiskSpec(1024),), networks=("Std Net",)),
                VmSpec("tmpl", host="esx-solo", disks=(DiskSpec(1024), DiskSpec(512))),
                VmSpec(
                    "guest", host="esx-2", cluster="C1", disks=(DiskSpec(1024),), networks=("pg-1",)
                ),
                VmSpec("bare", host="esx-solo"),
            ),
        ),
        DatacenterSpec(
            "Other DC",
            datastores=(DatastoreSpec("ds-o"),),
            hosts=("esx-o",),
            vms=(VmSpec("other", host="esx-o", disks=(DiskSpec(512),), networks=("VM Network",)),),
        ),
    ),
)


@pytest.fixture(scope="module")
def client(launcher: Path) -> Iterator[VSphereClient]:
    """A vCenter whose VMs carry every part the inventory reads."""
    with Simulator(SPEC, launcher=launcher) as sim, connect(sim) as c:
        inv = read_inventory(c, reader="pyvmomi")
        snap_vm = inv.vms_named("snaps")[0].moref
        first = snapshots.create_snapshot(c, snap_vm, "before <patch> & co", "the admin's")
        snapshots.create_snapshot(c, snap_vm, "child", "")
        snapshots.revert_to_snapshot(c, snap_vm, first)
        snapshots.create_snapshot(c, snap_vm, "second branch", "")
        tmpl = c.obj("VirtualMachine", inv.vms_named("tmpl")[0].moref)
        c.call("mark tmpl as a template", tmpl.MarkAsTemplate)
        guest = inv.vms_named("guest")[0].moref
        customize_vm(
            c,
            guest,
            Customization("linux", "guest", nics=(NicIp("10.9.1.7", "255.255.255.0"),)),
        )
        power.power_on(c, guest)
        power.wait_for_guest_ips(c, guest, {"10.9.1.7"}, timeout=30)
        yield c


def _same(fast: Inventory, ref: Inventory) -> None:
    """Field by field, so a difference names the object and the field."""
    for f in fields(Inventory):
        if f.name == "_index":
            continue
        mine, theirs = getattr(fast, f.name), getattr(ref, f.name)
        if f.name == "about":
            assert mine == theirs
            continue
        assert [o.moref for o in mine] == [o.moref for o in theirs], f.name
        for a, b in zip(mine, theirs, strict=True):
            for g in fields(a):
                assert getattr(a, g.name) == getattr(b, g.name), f"{f.name} {a.moref} {g.name}"
    assert fast == ref


def test_fast_reader_equals_pyvmomi(client: VSphereClient) -> None:
    fast = read_inventory(client)
    ref = read_inventory(client, reader="pyvmomi")
    _same(fast, ref)

    # The simulator really has what is compared (the test would prove little otherwise).
    vm = fast.vms_named(ODD)[0]
    assert vm.folder_path == ("Apps", "Deep & <odd>") and vm.cluster and vm.resource_pool
    assert [d.capacity for d in vm.disks] == [4096 * 1024, 2048 * 1024, 1024 * 1024]
    assert {d.thin for d in vm.disks} == {True, False} and len({d.datastore for d in vm.disks}) == 2
    assert all(d.change_id for d in vm.disks) and vm.change_tracking
    kinds = [fast.network(n.network).kind for n in vm.nics]
    assert kinds == ["distributed", "standard", "distributed"]
    assert [n.network_name for n in vm.nics] == ["pg-1", "Std Net", "pg <2> & co"]
    assert all(n.connected and n.adapter and n.mac for n in vm.nics)
    snaps = fast.vms_named("snaps")[0]
    assert [s.name for s in snaps.snapshots[0].walk()] == [
        "before <patch> & co",
        "child",
        "second branch",
    ]
    assert snaps.snapshots[0].description == "the admin's"
    assert snaps.current_snapshot == snaps.snapshots[0].children[1].moref
    assert snaps.snapshots[0].create_time.tzinfo is not None
    assert fast.vms_named("tmpl")[0].template and not vm.template
    guest = fast.vms_named("guest")[0]
    assert "10.9.1.7" in guest.guest_ips and guest.guest_nics[0].device_key == 4000
    assert guest.power_state == "poweredOn" and fast.vms_named("bare")[0].disks == ()
    assert any(ds.name == "ds b & c" and len(ds.hosts) == 1 for ds in fast.datastores)

    # read_vm (pyVmomi, its own round trips) agrees with the fast inventory too.
    for v in fast.vms:
        assert read_vm(client, v.moref) == v


def _spec(obj: object, paths: list[str]) -> object:
    return PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=obj, skip=False)],
        propSet=[PC.PropertySpec(type=type(obj), pathSet=paths)],
    )


def test_fault_is_the_projects_error_and_counted(client: VSphereClient) -> None:
    before = client.stats.snapshot().calls
    missing = client.obj("VirtualMachine", "vm-424242")
    what = f"read VM vm-424242 on {client.where}"
    with pytest.raises(VSphereNotFoundError) as err:
        fastprops.retrieve_contents(client, _spec(missing, ["name"]), {}, what)
    assert client.where in str(err.value) and "vm-424242" in str(err.value)
    assert err.value.fault == "ManagedObjectNotFound"
    assert client.stats.snapshot().calls == before + 1
    # The connection it came on is reused: the next read works.
    root = client.content.rootFolder
    [row] = fastprops.retrieve_contents(client, _spec(root, ["name", "childEntity"]), {}, "read")
    assert row.kind == "Folder" and row.props["name"] and row.props["childEntity"]
    assert all(isinstance(ref, str) for ref in row.props["childEntity"])


def test_data_object_without_converter_is_refused(client: VSphereClient) -> None:
    vm = client.obj("VirtualMachine", read_inventory(client).vms_named("snaps")[0].moref)
    with pytest.raises(TypeError, match="VirtualMachineSnapshotInfo"):
        fastprops.retrieve_contents(client, _spec(vm, ["snapshot"]), {}, "read a snapshot")
    spec = _spec(vm, ["config.hardware.numCPU", "runtime.powerState", "config.template"])
    [row] = fastprops.retrieve_contents(client, spec, {}, "read scalars")
    assert row.props == {
        "config.hardware.numCPU": 1,
        "runtime.powerState": "poweredOff",
        "config.template": False,
    }


def test_expired_session_is_logged_in_again(client: VSphereClient) -> None:
    whole = read_inventory(client)
    cookie = client.session_cookie
    client.si.content.sessionManager.Logout()
    # Making the view fails (NotAuthenticated), the client logs in again and the fast read
    # posts with the new session's cookie: with the old one vcsim answers every property
    # "missing" (NotAuthenticated in missingSet) and the inventory would come back empty.
    assert read_inventory(client) == whole
    assert client.session_cookie != cookie


class CuttingProxy:
    """A TCP relay to the simulator that, once armed, closes both sides after `limit` more
    bytes of answers: an answer dropped mid-way, as by a failing network or server."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.limit: int | None = None
        self.cuts = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._start(self._accept)

    def _start(self, target: object, *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            up = socket.create_connection(self.upstream)
            self._socks += [down, up]
            self._start(self._pump, down, up, False)
            self._start(self._pump, up, down, True)

    def _pump(self, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        try:
            while data := src.recv(65536):
                if answers:
                    with self._lock:
                        if self.limit is not None:
                            if len(data) >= self.limit:
                                dst.sendall(data[: self.limit])
                                self.limit, self.cuts = None, self.cuts + 1
                                raise ConnectionAbortedError("cut")
                            self.limit -= len(data)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        # shutdown() wakes the threads blocked in accept() and recv(); close() alone would not.
        for s in (self.listener, *self._socks):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for t in self._threads:
            t.join(timeout=5)


def test_dropped_connection_names_the_server(client: VSphereClient) -> None:
    proxy = CuttingProxy((client.address, client.port))
    try:
        with VSphereClient.connect("127.0.0.1", proxy.port, "u", "p", protocol="http") as c:
            whole = read_inventory(c)
            # The short answers before it pass (the service content, 4 KB, each time pyVmomi's
            # `si.content` is read; the view), the inventory's (100 KB) is cut 20 KB in.
            proxy.limit = 20_000
            with pytest.raises(VSphereConnectionError) as err:
                read_inventory(c)
            assert proxy.cuts == 1
            assert f"127.0.0.1:{proxy.port}" in str(err.value)
            assert "connection broke" in str(err.value)
            # The broken connection was dropped: the next read goes through whole.
            assert read_inventory(c) == whole
    finally:
        proxy.close()
