"""Deterministic test data for the compiled hot path."""

from __future__ import annotations

import numpy as np
import pytest

KIB = 1024
MIB = 1024 * KIB

_RECORD = b"2024-05-01T12:00:00Z esx01 vm=web-042 disk=scsi0:0 op=write lba=00000000 len=4096 ok\n"


def realistic(size: int, seed: int) -> bytes:
    """About half-compressible disk-like data: 4 KiB pages of random bytes, log text, zeros.

    Per page: 45 % random (incompressible), 40 % repeated log records with random digits
    (compress ~10x), 15 % zeros; LZ4 makes 1 MiB of it about half its size.
    """
    rng = np.random.default_rng(seed)
    page = 4 * KIB
    pages = -(-size // page)
    data = rng.integers(0, 256, pages * page, dtype=np.uint8).reshape(pages, page)
    kinds = rng.choice(3, size=pages, p=[0.45, 0.40, 0.15])
    record = np.frombuffer(_RECORD * (page // len(_RECORD) + 1), dtype=np.uint8)[:page]
    text = kinds == 1
    data[text] = record
    # Random digits in each record's lba field keep the text pages from being trivial.
    lba = np.arange(page) % len(_RECORD)
    digits = (lba >= 60) & (lba < 68)
    data[np.ix_(text, digits)] = rng.integers(48, 58, (int(text.sum()), int(digits.sum())))
    data[kinds == 2] = 0
    return data.reshape(-1)[:size].tobytes()


@pytest.fixture(scope="session")
def data_8m() -> bytes:
    """8 MiB + 777 bytes of realistic data with some all-zero 1 MiB-aligned regions."""
    buf = bytearray(realistic(8 * MIB + 777, seed=8))
    buf[2 * MIB : 3 * MIB] = bytes(MIB)
    buf[5 * MIB : 5 * MIB + 512 * KIB] = bytes(512 * KIB)
    return bytes(buf)
