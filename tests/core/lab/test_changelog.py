"""The change-log format shared by the Python writer and the Go launcher, locked by a golden file:
future changes must keep reading these bytes the same way."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from core.errors import ChangeLogError
from core.lab.changelog import ChangeLog, Epoch, Write, format_change_id, parse, parse_change_id

GOLDEN = b"""replicadesk-cbt 1
E 520b6d4c112a9e317f08c4d295e63a10 16777216
W 1 0 65536
W 2 1048576 4096
S 2 snapshot-7
E 52aa00000000000000000000000000ff 33554432
W 3 65536 512
S 3 snapshot-9
W 4 0 1
"""


def test_golden_log() -> None:
    log = parse(GOLDEN + b"W 5 7")  # a torn last line is not read
    assert log.epochs == [
        Epoch("520b6d4c112a9e317f08c4d295e63a10", 16 << 20, 0),
        Epoch("52aa00000000000000000000000000ff", 32 << 20, 2),
    ]
    assert log.writes[0] == Write(1, 0, 65536) and log.last == 4
    assert log.snapshots == {"snapshot-7": 2, "snapshot-9": 3}
    assert log.change_id() == "52 aa 00 00 00 00 00 00-00 00 00 00 00 00 00 ff/4"
    assert log.change_id(2) == "52 aa 00 00 00 00 00 00-00 00 00 00 00 00 00 ff/2"
    assert log.changed_areas("*") == [(0, 65536 + 512), (1048576, 4096)]
    assert log.changed_areas("*", upto=2) == [(0, 65536), (1048576, 4096)]
    assert log.changed_areas(log.change_id(2)) == [(0, 1), (65536, 512)]
    with pytest.raises(ChangeLogError):  # an ID of the first epoch
        log.changed_areas(format_change_id("520b6d4c112a9e317f08c4d295e63a10", 1))


def test_change_id_spelling() -> None:
    cid = "52 0b 6d 4c 11 2a 9e 31-7f 08 c4 d2 95 e6 3a 10/17"
    assert parse_change_id(cid) == ("520b6d4c112a9e317f08c4d295e63a10", 17)
    assert format_change_id(*parse_change_id(cid)) == cid
    for bad in ("*", "", "52 0b/1", cid.replace("/17", "/x")):
        with pytest.raises(ChangeLogError):
            parse_change_id(bad)


@pytest.mark.parametrize(
    "text",
    [
        b"something else\n",
        b"replicadesk-cbt 1\nW 2 0 1\n",  # sequence must start at 1
        b"replicadesk-cbt 1\nS 3 snapshot-1\n",  # snapshot after the last write
        b"replicadesk-cbt 1\nX 1\n",
        b"replicadesk-cbt 1\nW 1 -5 1\n",
    ],
)
def test_bad_logs_are_refused(text: bytes) -> None:
    with pytest.raises(ChangeLogError):
        parse(text)


def test_writer(tmp_path: Path) -> None:
    cl = ChangeLog(tmp_path)
    assert cl.read("vm-1", 2000).epoch is None
    first = cl.record("vm-1", 2000, 1 << 20, [(0, 4096), (8192, 4096)])
    assert first.endswith("/2") and first.startswith("52 ")
    text = cl.path("vm-1", 2000).read_text()
    lines = text.splitlines()
    assert lines[0] == "replicadesk-cbt 1" and lines[1].startswith("E 52")
    assert lines[2:] == ["W 1 0 4096", "W 2 8192 4096"]
    # Another writer object continues the sequence; the same capacity keeps the epoch.
    again = ChangeLog(tmp_path).record("vm-1", 2000, 1 << 20, [(4096, 1)])
    assert again == first.replace("/2", "/3")
    # A grown disk starts a new epoch; reset does too.
    grown = cl.record("vm-1", 2000, 2 << 20, [(1 << 20, 10)])
    assert grown.endswith("/4") and grown[:47] != first[:47]
    reset = cl.reset("vm-1", 2000, 2 << 20)
    assert reset.endswith("/4") and reset[:47] != grown[:47]
    assert len(cl.read("vm-1", 2000).epochs) == 3
    with pytest.raises(ChangeLogError):
        cl.record("vm-1", 2000, 2 << 20, [((2 << 20) - 1, 2)])
    with pytest.raises(ChangeLogError):
        cl.record("../x", 2000, 1 << 20, [(0, 1)])


def test_parallel_writers_never_share_a_sequence_number(tmp_path: Path) -> None:
    def churn(n: int) -> None:
        cl = ChangeLog(tmp_path)
        for i in range(50):
            cl.record("vm-9", 2001, 1 << 30, [(n * 1_000_000 + i * 512, 512)])

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = ChangeLog(tmp_path).read("vm-9", 2001)
    assert [w.seq for w in log.writes] == list(range(1, 201))
    assert len(log.epochs) == 1
