"""The session window's throughput chart: its time axis labels every tick differently, for a
run of seconds and for a long one."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from gui.views.throughput import MIB, ThroughputChart


def tick_labels(chart: ThroughputChart) -> list[str]:
    axis = chart.x_axis
    count = axis.tickCount()
    step = (axis.max() - axis.min()) / (count - 1)
    return [axis.labelFormat() % (axis.min() + i * step) for i in range(count)]


def test_time_axis_labels_are_distinct(qtbot: QtBot) -> None:
    chart = ThroughputChart()
    qtbot.addWidget(chart)
    for seconds in (0.0, 0.5, 1.0, 1.7):
        chart.add_sample(seconds, int(seconds * 40 * MIB))
    chart.finish(1.7, 40 * MIB)
    short = tick_labels(chart)
    assert len(set(short)) == len(short), short
    for seconds in range(2, 300, 10):
        chart.add_sample(seconds, int(seconds * 40 * MIB))
    chart.finish(292, 40 * MIB)
    long = tick_labels(chart)
    assert len(set(long)) == len(long) and chart.x_axis.labelFormat() == "%d", long
