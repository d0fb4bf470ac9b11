"""The cyclic garbage collector runs on the GUI thread only (gui.gc_guard), so a cycle holding a
Qt object is never destroyed on a worker's thread."""

from __future__ import annotations

import gc
import threading
from typing import ClassVar

from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot


class Cyclic:
    """A reference cycle that says on which thread it was destroyed."""

    died_on: ClassVar[list[str]] = []

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        Cyclic.died_on.append(threading.current_thread().name)


def test_cycles_left_by_a_worker_die_on_the_gui_thread(qtbot: QtBot, qapp: QApplication) -> None:
    guard = qapp.property("gc_guard")
    assert guard is not None and not gc.isenabled()
    Cyclic.died_on.clear()

    def worker() -> None:
        for _ in range(2000):
            Cyclic()  # garbage at once, but only the collector can free a cycle
        # Far past the young generation's threshold: CPython would have collected here.
        junk = [[i] for i in range(50 * gc.get_threshold()[0])]
        del junk

    thread = threading.Thread(target=worker, name="worker")
    thread.start()
    thread.join()
    assert Cyclic.died_on == []  # nothing collected on the worker's thread
    qtbot.waitUntil(lambda: len(Cyclic.died_on) == 2000, timeout=5000)
    assert set(Cyclic.died_on) == {threading.main_thread().name}


def test_a_tick_collects_only_past_the_threshold(qapp: QApplication) -> None:
    guard = qapp.property("gc_guard")
    gc.collect()
    assert guard.tick() is None  # nothing allocated since
    keep = [Cyclic() for _ in range(gc.get_threshold()[0] + 10)]
    assert guard.tick() is not None
    del keep
