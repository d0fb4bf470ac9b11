"""The session window's throughput chart: bytes per second over the run, live.

`ThroughputSeries` (no Qt) turns samples of "bytes processed so far" into rates: each new
sample gives the rate since the previous one. The session window feeds it twice a second from
the best count it has: the runner's progress events (per disk, per MiB) for a run this console
started, or the store's per-VM counts (which grow as disks finish) for runs of the CLI or the
service, whose events do not reach this process. A session that ended before its window opened
has no samples: its chart is drawn from each VM's start, end and processed bytes (each VM at its
average rate over its own run time), and says so.

`ThroughputChart` draws it with Qt Charts (PySide6 Addons): an area under the rate line, time in
seconds since the run started, MiB/s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from PySide6.QtCharts import QAreaSeries, QChart, QChartView, QLineSeries, QValueAxis
from PySide6.QtCore import QMargins, QPointF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPen
from PySide6.QtWidgets import QWidget

from core.model.runs import TaskSession

MIB = float(1 << 20)
LINE = QColor(0x15, 0x65, 0xC0)
FILL = QColor(0x15, 0x65, 0xC0, 0x40)


@dataclass
class ThroughputSeries:
    """Rates (seconds since start, bytes per second) from cumulative byte counts."""

    points: list[tuple[float, float]] = field(default_factory=list)
    _last: tuple[float, int] | None = None

    def add(self, seconds: float, total_bytes: int) -> tuple[float, float] | None:
        """Record that `total_bytes` were done `seconds` after the start; the new point, if
        any (a count that went back, or no time passed, gives none)."""
        last = self._last
        if last is None:
            self._last = (seconds, total_bytes)
            self.points.append((seconds, 0.0))
            return self.points[-1]
        t0, b0 = last
        if seconds <= t0:
            return None
        rate = max(0, total_bytes - b0) / (seconds - t0)
        self._last = (seconds, max(total_bytes, b0))
        self.points.append((seconds, rate))
        return self.points[-1]

    @property
    def peak(self) -> float:
        return max((r for _t, r in self.points), default=0.0)


def history(started: dt.datetime, tasks: Sequence[TaskSession]) -> list[tuple[float, float]]:
    """A step curve of an ended run: at each instant, the sum of the average rates of the VMs
    running then (each VM's processed bytes over its own duration)."""
    edges: list[tuple[float, float]] = []
    for t in tasks:
        if t.ended is None:
            continue
        begin = (t.started - started).total_seconds()
        end = (t.ended - started).total_seconds()
        if end <= begin:
            continue
        rate = t.stats.processed_bytes / (end - begin)
        edges += [(begin, rate), (end, -rate)]
    if not edges:
        return []
    edges.sort()
    points: list[tuple[float, float]] = [(0.0, 0.0)]
    level = 0.0
    for at, change in edges:
        points.append((at, max(0.0, level)))
        level += change
        points.append((at, max(0.0, level)))
    return points


class ThroughputChart(QChartView):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.series = ThroughputSeries()
        self.line = QLineSeries()
        self.base = QLineSeries()
        self.area = QAreaSeries(self.line, self.base)
        self.area.setName("Processed")
        self.area.setPen(QPen(LINE, 2))
        self.area.setBrush(QBrush(FILL))
        chart = QChart()
        chart.addSeries(self.area)
        chart.legend().hide()
        chart.setMargins(QMargins(4, 4, 4, 4))
        chart.setBackgroundRoundness(0)
        self.x_axis = QValueAxis()
        self.x_axis.setTitleText("seconds since the start")
        self.x_axis.setLabelFormat("%d")
        self.y_axis = QValueAxis()
        self.y_axis.setTitleText("MiB/s")
        self.y_axis.setLabelFormat("%.0f")
        chart.addAxis(self.x_axis, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(self.y_axis, Qt.AlignmentFlag.AlignLeft)
        self.area.attachAxis(self.x_axis)
        self.area.attachAxis(self.y_axis)
        chart.setTitle("Throughput")
        self.setChart(chart)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setMinimumSize(360, 200)
        self._rescale(10.0, 1.0)

    def _rescale(self, seconds: float, peak_mib: float, least: float = 10.0) -> None:
        """Time from 0 to `seconds` (at least `least`: a live chart does not stretch its
        first second across the width), rates from 0 to a little over the peak."""
        self.x_axis.setRange(0, max(least, seconds))
        self.y_axis.setRange(0, max(1.0, peak_mib * 1.15))
        self.x_axis.applyNiceNumbers()
        self.y_axis.applyNiceNumbers()
        # A run of a second or two gets ticks every 0.5 s: whole seconds would label them
        # "0 0 1 1 2".
        step = (self.x_axis.max() - self.x_axis.min()) / max(1, self.x_axis.tickCount() - 1)
        self.x_axis.setLabelFormat("%d" if step >= 1 else "%.1f")

    def add_sample(self, seconds: float, total_bytes: int) -> None:
        point = self.series.add(seconds, total_bytes)
        if point is None:
            return
        t, rate = point
        self.line.append(QPointF(t, rate / MIB))
        self.base.append(QPointF(t, 0.0))
        self._rescale(t, self.series.peak / MIB)
        self.chart().setTitle(f"Throughput (live): {rate / MIB:.1f} MiB/s now")

    def show_history(self, started: dt.datetime, tasks: Sequence[TaskSession]) -> None:
        """Draw an ended run from its VMs' records (when no live samples were taken)."""
        points = history(started, tasks)
        self.line.replace([QPointF(t, r / MIB) for t, r in points])
        self.base.replace([QPointF(t, 0.0) for t, _r in points])
        peak = max((r for _t, r in points), default=0.0)
        end = points[-1][0] if points else 0.0
        self._rescale(end, peak / MIB, least=1.0)
        self.chart().setTitle("Throughput (each VM at its average rate)")

    @property
    def sampled(self) -> bool:
        return bool(self.series.points)

    def finish(self, seconds: float, average: float) -> None:
        """The run ended after `seconds`: the axis fits the run, the title gives its average."""
        self._rescale(seconds, self.series.peak / MIB, least=1.0)
        self.chart().setTitle(f"Throughput: {average / MIB:.1f} MiB/s on average")
