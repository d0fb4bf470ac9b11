"""Counting of vSphere calls: every call through the client is counted on the client and per
server for the process, failed calls too, and the counters stay exact under threads."""

from __future__ import annotations

import threading

import pytest

from core.errors import VSphereNotFoundError
from core.vsphere.connection import CallCounts, CallStats, server_call_totals
from core.vsphere.inventory import read_inventory, read_vm
from tests.core.vsphere.conftest import Site, connect


def test_calls_are_counted_per_client_and_per_server(site: Site) -> None:
    with connect(site.sim) as client:
        assert client.stats.snapshot() == CallCounts(0, 0.0)  # logging in is not a call
        before = server_call_totals().get(client.where, CallCounts())
        client.ping()
        client.ping()
        after_pings = client.stats.snapshot()
        assert after_pings.calls == 2 and after_pings.seconds > 0

        read_inventory(client)
        with pytest.raises(VSphereNotFoundError):
            read_vm(client, "vm-99999")  # a fault is a round trip too
        mine = client.stats.snapshot()
        assert mine.calls >= 4
        assert mine.seconds >= after_pings.seconds

        # The process-wide count of this server grew by this client's calls (no other client
        # of it made any meanwhile).
        grown = server_call_totals()[client.where] - before
        assert grown.calls == mine.calls
        assert grown.seconds == pytest.approx(mine.seconds)


def test_call_stats_are_exact_under_threads() -> None:
    stats = CallStats()

    def add_many() -> None:
        for _ in range(5000):
            stats.add(0.001)

    threads = [threading.Thread(target=add_many) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = stats.snapshot()
    assert snap.calls == 40_000
    assert snap.seconds == pytest.approx(40.0)
    less = snap - CallCounts(1, 1.0)
    assert less.calls == 39_999 and less.seconds == pytest.approx(39.0)
    assert CallCounts(1, 0.5) + CallCounts(2, 0.25) == CallCounts(3, 0.75)
