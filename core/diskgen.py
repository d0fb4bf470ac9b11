"""Realistic VM disk images for the demo, the benchmark and tests.

A generated image mixes what a guest disk holds: about half never-written space (zeros, left as
holes in the file), text-like data (logs, config: compresses ~3-4x with LZ4), binary-like data
(executables, databases: ~1.5x) and random data (compressed or encrypted files: incompressible).
Deterministic for a given seed, so runs and figures can be repeated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIB = 1 << 20
_WORDS = (
    b"the quick brown fox jumps over lazy dog kernel: eth0 link up 1000Mbps full duplex "
    b"INFO GET /api/v1/vms 200 OK user=admin session started backup job replica point "
    b"systemd[1]: Started Daily apt upgrade and clean activities. postgres checkpoint "
).split()


@dataclass(frozen=True)
class ImageMix:
    zero: float = 0.5
    text: float = 0.2
    binary: float = 0.2
    random: float = 0.1


def _text_block(rng: np.random.Generator, size: int) -> bytes:
    words = rng.choice(len(_WORDS), size=size // 5 + 16)
    line = b" ".join(_WORDS[i] for i in words.tolist())
    return (line * (size // max(1, len(line)) + 1))[:size]


def _binary_block(rng: np.random.Generator, size: int) -> bytes:
    # Structured binary: small integers and repeated records, LZ4 ratio around 1.5-2.
    arr = rng.integers(0, 64, size=size // 4, dtype=np.uint32)
    arr[::3] = rng.integers(0, 1 << 32, size=arr[::3].shape, dtype=np.uint32)
    return arr.astype("<u4").tobytes()[:size]


def make_block(kind: str, rng: np.random.Generator, size: int = MIB) -> bytes:
    if kind == "zero":
        return bytes(size)
    if kind == "text":
        return _text_block(rng, size)
    if kind == "binary":
        return _binary_block(rng, size)
    return rng.bytes(size)


def block_kinds(n_blocks: int, mix: ImageMix, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    kinds = np.array(["zero", "text", "binary", "random"])
    probs = np.array([mix.zero, mix.text, mix.binary, mix.random], dtype=float)
    # Runs of 1-32 blocks of one kind, like files laid out on a file system.
    out: list[str] = []
    while len(out) < n_blocks:
        kind = str(rng.choice(kinds, p=probs / probs.sum()))
        out.extend([kind] * int(rng.integers(1, 33)))
    return out[:n_blocks]


def write_image(path: Path, size: int, *, mix: ImageMix = ImageMix(), seed: int = 1) -> None:
    """Write a raw image of `size` bytes (a multiple of 1 MiB); zero blocks stay holes."""
    if size % MIB:
        raise ValueError("image size must be a multiple of 1 MiB")
    rng = np.random.default_rng(seed + 1)
    # A small pool of distinct blocks per kind keeps generation fast; blocks still differ
    # because each is stamped with its own index.
    pool = {k: [make_block(k, rng) for _ in range(8)] for k in ("text", "binary", "random")}
    kinds = block_kinds(size // MIB, mix, seed)
    with open(path, "wb") as f:
        f.truncate(size)
        for i, kind in enumerate(kinds):
            if kind == "zero":
                continue
            block = bytearray(pool[kind][i % 8])
            block[:16] = i.to_bytes(8, "little") * 2
            f.seek(i * MIB)
            f.write(block)


def change_blocks(
    path: Path, fraction: float, *, seed: int = 2, block_size: int = MIB
) -> list[tuple[int, int]]:
    """Overwrite `fraction` of the blocks at random places; returns the changed areas
    (offset, length), which is what VMware CBT would report."""
    size = os.path.getsize(path)
    n = size // block_size
    rng = np.random.default_rng(seed)
    count = max(1, int(n * fraction))
    picks = np.sort(rng.choice(n, size=count, replace=False))
    areas: list[tuple[int, int]] = []
    with open(path, "r+b") as f:
        for i in picks.tolist():
            kind = str(rng.choice(["text", "binary", "random"]))
            data = make_block(kind, rng, block_size)
            f.seek(i * block_size)
            f.write(data)
            areas.append((i * block_size, block_size))
    return areas
