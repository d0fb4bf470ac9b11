"""Bandwidth estimation for a job: the link, its throttling windows, and what the job's RPO needs,
with a chart of required against available bandwidth over the 24 hours of a day.

The estimate itself is core.planning.bandwidth's, made on a worker (it reads the job's sessions,
or probes changes through CBT). The chart is QtCharts: the bandwidth the job gets each hour
(the link, capped by the throttles that apply then, shared by the jobs under the rule, and
nothing outside the job's backup window) as a stepped area, the required bandwidth as a line,
and the throttling windows and closed hours as bands behind them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from PySide6.QtCharts import QAreaSeries, QChart, QChartView, QLineSeries, QValueAxis
from PySide6.QtCore import QMargins, QPointF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from core.errors import PlanningError
from core.model.job import ReplicationJob
from core.model.schedule import BackupWindow
from core.planning.bandwidth import MBIT, Estimate, Link, Throttle
from gui import format as fmt
from gui.views.operations import ERROR_STYLE, error_label, show_field_error

AVAILABLE_COLOR = QColor(0x15, 0x65, 0xC0)
REQUIRED_COLOR = QColor(0xC6, 0x28, 0x28)
THROTTLE_COLOR = QColor(0xF5, 0x9E, 0x0B, 70)
CLOSED_COLOR = QColor(0x9E, 0x9E, 0x9E, 70)


@dataclass(frozen=True)
class Hour:
    hour: int
    available_mbit: float  # what the job gets this hour (0 outside its window)
    throttle_mbit: float | None  # the throttle that caps the link this hour, if any
    in_window: bool


def hours_words(hours: float | None) -> str:
    if hours is None:
        return "more than a year"
    if hours < 1 / 60:
        return "under a minute"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    return f"{hours:.1f} h"


def throttle_hours(mbit: float, first: int, last: int) -> Throttle:
    """A throttle from hour `first` to hour `last` (exclusive; wraps past midnight)."""
    if first == last:
        raise PlanningError(f"a throttle from {first}:00 to {last}:00 covers no hour")
    hours = range(first, last) if first < last else [*range(first, 24), *range(0, last)]
    return Throttle(mbit, frozenset(hours))


def day_profile(link: Link, window: BackupWindow, day: dt.date) -> list[Hour]:
    """The 24 hours of `day` (local time) as the job sees the link."""
    out = []
    for h in range(24):
        at = dt.datetime.combine(day, dt.time(h)).astimezone()
        applies = [t.mbit for t in link.throttles if at.weekday() in t.days and h in t.hours]
        allowed = window.allows(at)
        out.append(
            Hour(
                h,
                link.rate_at(at) / MBIT if allowed else 0.0,
                min(applies) if applies else None,
                allowed,
            )
        )
    return out


def _band(first: int, last: int, top: float, color: QColor, name: str) -> QAreaSeries:
    upper = QLineSeries()
    lower = QLineSeries()
    for x in (first, last):
        upper.append(QPointF(x, top))
        lower.append(QPointF(x, 0))
    area = QAreaSeries(upper, lower)
    area.setName(name)
    area.setColor(color)
    area.setBorderColor(Qt.GlobalColor.transparent)
    upper.setParent(area)
    lower.setParent(area)
    return area


def _runs(hours: list[Hour], key: object) -> list[tuple[int, int, object]]:
    """Contiguous runs of hours with the same `key(hour)` (not None): (first, end, value)."""
    out: list[tuple[int, int, object]] = []
    for h in hours:
        value = key(h)  # type: ignore[operator]
        if value is None:
            continue
        if out and out[-1][1] == h.hour and out[-1][2] == value:
            out[-1] = (out[-1][0], h.hour + 1, value)
        else:
            out.append((h.hour, h.hour + 1, value))
    return out


class BandwidthChart(QChartView):
    """Required vs available bandwidth over the day, throttling windows and closed hours drawn."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setMinimumSize(560, 320)
        self.hours: list[Hour] = []
        self.required = 0.0
        chart = QChart()
        chart.setTitle("Select a job and estimate")
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        chart.setMargins(QMargins(6, 6, 6, 6))
        self.setChart(chart)

    def show_day(self, hours: list[Hour], required_mbit: float, title: str) -> None:
        self.hours = hours
        self.required = required_mbit
        chart = QChart()
        chart.setTitle(title)
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        chart.setMargins(QMargins(6, 6, 6, 6))
        peak = max([h.available_mbit for h in hours] + [required_mbit, 1.0])
        top = peak * 1.2
        for first, end, value in _runs(hours, lambda h: h.throttle_mbit):
            chart.addSeries(
                _band(first, end, top, THROTTLE_COLOR, f"Throttled to {float(value):g} Mbit/s")  # type: ignore[arg-type]
            )
        for first, end, _v in _runs(hours, lambda h: None if h.in_window else True):
            chart.addSeries(_band(first, end, top, CLOSED_COLOR, "Outside the job's window"))
        available = QLineSeries()
        for h in hours:
            available.append(QPointF(h.hour, h.available_mbit))
            available.append(QPointF(h.hour + 1, h.available_mbit))
        base = QLineSeries()
        base.append(QPointF(0, 0))
        base.append(QPointF(24, 0))
        area = QAreaSeries(available, base)
        area.setName("Available to the job")
        fill = QColor(AVAILABLE_COLOR)
        fill.setAlpha(60)
        area.setBrush(QBrush(fill))
        area.setPen(QPen(AVAILABLE_COLOR, 2))
        available.setParent(area)
        base.setParent(area)
        chart.addSeries(area)
        required = QLineSeries()
        required.setName(f"Required: {required_mbit:.2f} Mbit/s")
        required.append(QPointF(0, required_mbit))
        required.append(QPointF(24, required_mbit))
        pen = QPen(REQUIRED_COLOR, 2.5)
        pen.setStyle(Qt.PenStyle.DashLine)
        required.setPen(pen)
        chart.addSeries(required)
        x = QValueAxis()
        x.setRange(0, 24)
        x.setTickCount(13)
        x.setLabelFormat("%d")
        x.setTitleText("Hour of the day")
        y = QValueAxis()
        y.setRange(0, top)
        y.setLabelFormat("%.0f")
        y.setTitleText("Mbit/s")
        chart.addAxis(x, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(y, Qt.AlignmentFlag.AlignLeft)
        for series in chart.series():
            series.attachAxis(x)
            series.attachAxis(y)
        # The bands explain themselves once each: one legend entry per kind.
        seen: set[str] = set()
        for marker in chart.legend().markers():
            label = marker.label()
            kind = label.split(" to ")[0]
            if kind in seen:
                marker.setVisible(False)
            seen.add(kind)
        old = self.chart()
        self.setChart(chart)
        old.deleteLater()


class BandwidthDialog(QDialog):
    """Asks for an estimate (`estimate_requested(job, link, probe)`) and shows it."""

    estimate_requested = Signal(str, object, bool)  # job, Link, probe
    estimated = Signal(object)  # the Estimate just shown

    def __init__(
        self, jobs: list[ReplicationJob], job: str = "", parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.jobs = {j.name: j for j in jobs}
        self.estimate: Estimate | None = None
        self.setWindowTitle("Bandwidth estimation")
        self.resize(1150, 640)
        self.job = QComboBox()
        self.job.setAccessibleName("Job")
        for name in sorted(self.jobs):
            self.job.addItem(name)
        if job:
            self.job.setCurrentText(job)
        self.link = QDoubleSpinBox()
        self.link.setRange(0.1, 100_000)
        self.link.setDecimals(1)
        self.link.setValue(100)
        self.link.setSuffix(" Mbit/s")
        self.sharing = QSpinBox()
        self.sharing.setRange(1, 100)
        self.sharing.setToolTip("Jobs under the same traffic rule share the link equally")
        self.throttles = QTableWidget(0, 3)
        self.throttles.setHorizontalHeaderLabels(["Limit (Mbit/s)", "From hour", "To hour"])
        self.throttles.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.throttles.verticalHeader().hide()
        self.throttles.setAccessibleName("Throttling windows")
        self.throttles.setMinimumHeight(130)
        add = QPushButton("&Add window")
        remove = QPushButton("&Remove window")
        add.clicked.connect(lambda: self.add_throttle(20, 8, 18))
        remove.clicked.connect(self._remove_throttle)
        self.throttle_error = error_label()
        self.probe = QCheckBox("Measure changes through &CBT now (a snapshot; nothing is copied)")
        self.go = QPushButton("&Estimate")
        self.go.setDefault(True)
        self.go.clicked.connect(self.request)
        form = QFormLayout()
        form.addRow("&Job:", self.job)
        form.addRow("&Link speed:", self.link)
        form.addRow("Jobs &sharing it:", self.sharing)
        throttle_box = QGroupBox("Throttling windows (traffic rules)")
        tl = QVBoxLayout(throttle_box)
        tl.addWidget(self.throttles)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        tl.addLayout(row)
        tl.addWidget(self.throttle_error)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.hide()
        left = QVBoxLayout()
        left.addLayout(form)
        left.addWidget(throttle_box)
        left.addWidget(self.probe)
        left.addWidget(self.go)
        left.addWidget(self.error)
        left.addWidget(self.summary)
        left.addStretch(1)
        self.chart = BandwidthChart()
        body = QHBoxLayout()
        body.addLayout(left, 2)
        body.addWidget(self.chart, 3)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(body, 1)
        layout.addWidget(buttons)

    def add_throttle(self, mbit: float, first: int, last: int) -> None:
        row = self.throttles.rowCount()
        self.throttles.insertRow(row)
        limit = QDoubleSpinBox()
        limit.setRange(0.1, 100_000)
        limit.setValue(mbit)
        self.throttles.setCellWidget(row, 0, limit)
        for col, value in ((1, first), (2, last)):
            spin = QSpinBox()
            spin.setRange(0, 24)
            spin.setValue(value)
            spin.setSuffix(":00")
            self.throttles.setCellWidget(row, col, spin)

    def _remove_throttle(self) -> None:
        row = self.throttles.currentRow()
        self.throttles.removeRow(row if row >= 0 else self.throttles.rowCount() - 1)

    def link_value(self) -> Link | None:
        show_field_error(self.throttle_error, "")
        throttles = []
        try:
            for r in range(self.throttles.rowCount()):
                limit = self.throttles.cellWidget(r, 0)
                first = self.throttles.cellWidget(r, 1)
                last = self.throttles.cellWidget(r, 2)
                assert isinstance(limit, QDoubleSpinBox)
                assert isinstance(first, QSpinBox) and isinstance(last, QSpinBox)
                throttles.append(
                    throttle_hours(limit.value(), first.value() % 24, last.value() % 24)
                )
            return Link(self.link.value(), tuple(throttles), self.sharing.value())
        except PlanningError as e:
            show_field_error(self.throttle_error, str(e))
            return None

    def request(self) -> None:
        link = self.link_value()
        if link is None or not self.job.currentText():
            return
        self.go.setEnabled(False)
        self.error.hide()
        self.summary.setText("Estimating...")
        self.estimate_requested.emit(self.job.currentText(), link, self.probe.isChecked())

    def show_estimate(self, e: Estimate, link: Link) -> None:
        self.estimate = e
        self.go.setEnabled(True)
        job = self.jobs.get(e.job)
        window = job.schedule.window if job is not None and job.schedule.window else BackupWindow()
        hours = day_profile(link, window, dt.date.today())
        m = e.measured
        ok, bad = "color:#2e7d32", "color:#c62828"
        seed = hours_words(e.first_copy_hours)
        lines = [
            f"<b>{e.job}</b>: RPO {e.rpo_minutes / 60:g} h, measured from {m.source} "
            f"({m.sessions} run(s))",
            f"Changed per RPO interval: {fmt.size(e.changed_per_rpo)}; compression ratio "
            f"{m.ratio:.2f}",
            f"Required bandwidth: <b>{e.required_mbit:.2f} Mbit/s</b>; the slowest hour of "
            f"its window gives {e.worst_mbit:.2f} Mbit/s: "
            f"<span style='{ok if e.meets_rpo else bad}'><b>"
            f"{'meets' if e.meets_rpo else 'misses'} the RPO</b></span>",
            f"First full copy: {fmt.size(m.full_bytes * m.ratio)} in {seed}",
            f"A run fits its window: <span style='{ok if e.fits_window else bad}'>"
            f"<b>{'yes' if e.fits_window else 'no'}</b></span>",
        ]
        lines += [f"• {n}" for n in e.notes]
        self.summary.setText("<br>".join(lines))
        self.chart.show_day(
            hours, e.required_mbit, f"{e.job}: required vs available bandwidth, today"
        )
        self.estimated.emit(e)

    def show_error(self, message: str, _detail: str = "") -> None:
        self.go.setEnabled(True)
        self.summary.setText("")
        self.error.setText(message)
        self.error.show()
