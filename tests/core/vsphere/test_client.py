"""The session and its errors: faults mapped to clear errors, a lost session logged in again,
an unreachable server, and task waits with a deadline."""

from __future__ import annotations

import socket
import time

import pytest

from core.errors import (
    VSphereConnectionError,
    VSphereError,
    VSphereNotFoundError,
    VSphereStateError,
    VSphereTaskTimeoutError,
)
from core.vsphere import datastore, power, snapshots, tasks, vms
from core.vsphere.connection import VSphereClient
from core.vsphere.inventory import read_inventory, read_vm
from core.vsphere.models import Host
from tests.core.vsphere.conftest import ODD, Site


def test_bad_moref_is_a_clear_error(site: Site) -> None:
    with pytest.raises(VSphereNotFoundError) as err:
        read_vm(site.client, "vm-99999")
    assert "vm-99999" in str(err.value) and "not in the vSphere inventory" in str(err.value)
    assert err.value.fault == "ManagedObjectNotFound" and err.value.exit_code == 60
    with pytest.raises(VSphereNotFoundError, match="vm-99999"):
        power.power_on(site.client, "vm-99999")
    with pytest.raises(VSphereNotFoundError, match="snapshot-424242"):
        snapshots.remove_snapshot(site.client, site.inventory().vms[0].moref, "snapshot-424242")


def test_wrong_power_state(site: Site) -> None:
    vm = site.inventory().vms_named(ODD)[0]
    with pytest.raises(VSphereStateError) as err:
        vms.destroy_vm(site.client, vm.moref)
    assert err.value.fault == "InvalidPowerState" and "poweredOn" in str(err.value)


def test_session_is_logged_in_again(site: Site) -> None:
    client = site.client
    client.si.content.sessionManager.Logout()  # as when vCenter expires an idle session
    assert [d.name for d in read_inventory(client).datacenters]  # logged in again, retried
    client.ping()


def test_keepalive_and_close(site: Site) -> None:
    client = VSphereClient.connect(
        site.sim.host, site.sim.port, "u", "p", protocol="http", keepalive=0.05
    )
    with client:
        time.sleep(0.2)
        assert "p'" not in repr(client) and "password" not in repr(client)
    assert client.closed
    with pytest.raises(VSphereError, match="closed"):
        read_inventory(client)
    client.close()


def test_unreachable_server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(VSphereConnectionError) as err:
            VSphereClient.connect("127.0.0.1", port, "u", "p", protocol="http", timeout=5)
    assert f"127.0.0.1:{port}" in str(err.value) and "refused" in str(err.value)


def test_task_timeout_names_the_task(site: Site) -> None:
    """A task whose handler crashed in vcsim stays running: the wait ends at its deadline."""
    client = site.client
    inv = site.inventory()
    host = inv.named(Host, "esx-sa")
    # A FileManager call given a host where a datacenter belongs crashes vcsim's handler after
    # the task was started (the server drops the connection, the task stays "running").
    with pytest.raises(VSphereConnectionError):
        datastore.delete_file(client, host.moref, "[ds-fast] nothing-here", timeout=5)
    stuck = [t for t in tasks.recent_tasks(client) if t.state == "running"]
    assert stuck, tasks.recent_tasks(client)
    t0 = time.monotonic()
    with pytest.raises(VSphereTaskTimeoutError) as err:
        tasks.wait_for_task(client, stuck[-1].moref, "delete a file", timeout=1.0)
    assert 0.9 < time.monotonic() - t0 < 5
    assert stuck[-1].moref in str(err.value) and "delete a file" in str(err.value)
    assert "running" in str(err.value)
    read_inventory(client)  # the session still works


def test_progress_reaches_100(site: Site) -> None:
    vm = site.inventory().vms_named("plain")[0]
    seen: list[int] = []
    moref = snapshots.create_snapshot(
        site.client, vm.moref, "progress", "test", progress=seen.append
    )
    assert seen and seen[-1] == 100
    snapshots.remove_snapshot(site.client, vm.moref, moref)
