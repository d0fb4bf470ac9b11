"""Per-VM and per-replica locks across processes (multiprocessing, real database file):
one holder at a time, all-or-nothing, stale owners taken over, a race with one winner."""

from __future__ import annotations

import multiprocessing
import os
import threading
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from core.errors import LockHeldError
from core.store import Store, replica_key, vm_key

CTX = multiprocessing.get_context("spawn")
VM = vm_key("vc-prod.example.net", "vm-101")


def _hold_until(db_path: Path, keys: list[str], held: Event, release: Event) -> None:
    with Store.open(db_path) as store, store.locks.hold(keys, "job 'SQL tier' run"):
        held.set()
        release.wait(60)


def _take_and_crash(db_path: Path, key: str) -> None:
    store = Store.open(db_path)
    store.locks.acquire([key], "retention")
    os._exit(0)  # no release, no cleanup: as after SIGKILL


def _race(db_path: Path, start: Event, done: Event, results: multiprocessing.Queue[str]) -> None:
    with Store.open(db_path) as store:
        start.wait(60)
        try:
            lease = store.locks.acquire([VM], f"racer {os.getpid()}")
        except LockHeldError:
            results.put("lost")
        else:
            results.put("won")
            done.wait(60)  # hold it until every racer has tried
            store.locks.release(lease)


def test_a_lock_held_by_another_process_is_refused_until_released(
    store: Store, db_path: Path
) -> None:
    held, release = CTX.Event(), CTX.Event()
    child = CTX.Process(target=_hold_until, args=(db_path, [VM, replica_key(7)], held, release))
    child.start()
    try:
        assert held.wait(60)
        with pytest.raises(LockHeldError) as err:
            store.locks.acquire([replica_key(7)], "retention")
        message = str(err.value)
        assert message.startswith(
            "replica:7 is being processed by another run (job 'SQL tier' run, "
        )
        assert f"process {child.pid} on " in message
        holders = store.locks.holders()
        assert {h.key for h in holders} == {VM, replica_key(7)}
        assert {h.owner.pid for h in holders} == {child.pid}
        # All or nothing: a free key is not kept when another one is held.
        with pytest.raises(LockHeldError):
            store.locks.acquire([vm_key("vc-prod.example.net", "vm-5"), VM], "job B")
        assert {h.key for h in store.locks.holders()} == {VM, replica_key(7)}
    finally:
        release.set()
        child.join(60)
    assert child.exitcode == 0
    assert store.locks.holders() == []
    with store.locks.hold([VM, replica_key(7)], "job B") as lease:
        assert lease.keys == tuple(sorted([VM, replica_key(7)]))
    assert store.locks.holders() == []


def test_a_dead_owners_lock_is_taken_over(store: Store, db_path: Path) -> None:
    child = CTX.Process(target=_take_and_crash, args=(db_path, VM))
    child.start()
    child.join(60)
    assert [h.owner.pid for h in store.locks.holders()] == [child.pid]
    lease = store.locks.acquire([VM], "job after the crash")
    assert [h.purpose for h in store.locks.holders()] == ["job after the crash"]
    store.locks.release(lease)
    store.locks.release(lease)  # twice is harmless

    child = CTX.Process(target=_take_and_crash, args=(db_path, replica_key(3)))
    child.start()
    child.join(60)
    assert store.locks.clear_stale() == [replica_key(3)]


def test_processes_racing_for_one_vm_have_exactly_one_winner(db_path: Path) -> None:
    Store.open(db_path).close()
    start, done = CTX.Event(), CTX.Event()
    results: multiprocessing.Queue[str] = CTX.Queue()
    racers = [CTX.Process(target=_race, args=(db_path, start, done, results)) for _ in range(6)]
    for p in racers:
        p.start()
    start.set()
    outcomes = sorted(results.get(timeout=60) for _ in racers)
    done.set()
    for p in racers:
        p.join(60)
        assert p.exitcode == 0
    assert outcomes == ["lost"] * 5 + ["won"]


def test_two_threads_of_one_process_exclude_each_other(store: Store) -> None:
    lease = store.locks.acquire([VM], "thread one")
    outcome: list[str] = []

    def other() -> None:
        try:
            store.locks.acquire([VM], "thread two")
            outcome.append("won")
        except LockHeldError:
            outcome.append("refused")

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert outcome == ["refused"]
    store.locks.release(lease)
