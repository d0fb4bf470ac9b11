"""Transfer statistics: totals of several runs and the bottleneck line."""

from __future__ import annotations

from core.model.runs import Bottleneck, TransferStats, combine


def test_combine_weights_shares_by_duration_and_names_the_busiest_stage() -> None:
    a = TransferStats(100, 80, 40, 1.0, None, (("network", 0.9), ("source", 0.1)))
    b = TransferStats(300, 300, 100, 3.0, None, (("network", 0.1), ("source", 0.9)))
    total = combine([a, b])
    assert (total.processed_bytes, total.read_bytes, total.transferred_bytes) == (400, 380, 140)
    assert total.duration == 4.0
    shares = dict(total.busy)
    assert abs(shares["source"] - 0.7) < 1e-9 and abs(shares["network"] - 0.3) < 1e-9
    assert total.bottleneck == Bottleneck.SOURCE
    assert total.bottleneck_line == "Source 70% > Network 30%"


def test_combine_of_nothing_and_of_runs_without_shares() -> None:
    assert combine([]) == TransferStats()
    kept = combine([TransferStats(1, 1, 1, 0.0, Bottleneck.TARGET)])
    assert kept.bottleneck == Bottleneck.TARGET and kept.bottleneck_line == ""
