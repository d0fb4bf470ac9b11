"""Python's cyclic garbage collector, run on the GUI thread only (installed by `gui.app`).

CPython collects reference cycles in whichever thread happens to allocate when a threshold is
crossed. A cycle holding a Qt object (a closed wizard whose slots refer back to it, say) is then
destroyed on that thread: in the test suite an inventory worker, busy parsing a vCenter answer,
deleted a wizard the previous test had closed, and the process died of a segmentation fault.
So automatic collection is switched off and a timer on the GUI thread does what the collector
would have done: a young collection when enough objects were allocated since the last one, an
older one when enough young ones have run (CPython's own thresholds). Anything a worker leaves
is therefore collected between two events of the GUI thread, where Qt wants its objects to die.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 250


class GuiThreadCollector(QObject):
    """Owns the collection while it lives; the application object is its parent."""

    def __init__(self, parent: QObject, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self.thresholds = gc.get_threshold()
        self.collections = [0, 0, 0]  # by generation, for tests and curiosity
        gc.disable()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.tick)
        self._timer.start()
        self.destroyed.connect(gc.enable)

    def tick(self) -> int | None:
        """Collect what CPython would have by now; the generation collected, or None."""
        count0, count1, count2 = gc.get_count()
        t0, t1, t2 = self.thresholds
        if count0 <= t0:
            return None
        generation = 2 if count1 >= t1 and count2 >= t2 else 1 if count1 >= t1 else 0
        gc.collect(generation)
        self.collections[generation] += 1
        return generation
