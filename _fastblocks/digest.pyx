# cython: language_level=3
"""Block digests, zero detection and digest diffs over a buffer of fixed-size blocks.

A buffer holds ceil(len / block_size) blocks; the last one is shorter when the length is not a
multiple of block_size. Each block's digest is its 128-bit XXH3 (`XXH3_128bits`, no seed) in
canonical big-endian form, i.e. `xxhash.xxh3_128(block).digest()`: replicas store these digests,
so the format is locked by tests/fastblocks/test_golden.py.

All C work runs without the GIL, spread over blocks with OpenMP (`prange`), so one call on a batch
uses every core (OMP_NUM_THREADS caps it) and other Python threads keep running meanwhile.
Nothing here keeps state between calls.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memcmp, memcpy

cimport openmp

import numpy as np


cdef enum:
    _DIGEST = 16

DIGEST_SIZE = _DIGEST
VECTOR_DISPATCH = bool(RD_XXH_DISPATCH)
"""True if hashing goes through libxxhash's x86 dispatcher (AVX2/AVX-512 when available)."""


cdef extern from *:
    """
    /* With libxxhash's x86 dispatcher (found by setup.py), XXH3_128bits becomes
       XXH3_128bits_dispatch: same digests, AVX2/AVX-512 code when the CPU has it. */
    #include <xxhash.h>
    #ifdef REPLICADESK_XXH_X86DISPATCH
    #include <xxh_x86dispatch.h>
    #define RD_XXH_DISPATCH 1
    #else
    #define RD_XXH_DISPATCH 0
    #endif
    """
    int RD_XXH_DISPATCH


cdef extern from "xxhash.h" nogil:
    ctypedef struct XXH128_hash_t:
        uint64_t low64
        uint64_t high64

    ctypedef struct XXH128_canonical_t:
        unsigned char digest[16]

    XXH128_hash_t XXH3_128bits(const void *data, size_t length)
    void XXH128_canonicalFromHash(XXH128_canonical_t *dst, XXH128_hash_t hash)


cdef inline void _digest(const uint8_t *src, size_t length, uint8_t *dst) noexcept nogil:
    cdef XXH128_canonical_t canonical
    XXH128_canonicalFromHash(&canonical, XXH3_128bits(src, length))
    memcpy(dst, canonical.digest, 16)


cdef inline bint _is_zero(const uint8_t *src, size_t length) noexcept nogil:
    """True if all `length` bytes are zero; reads 8-byte words and stops at the first non-zero.

    Eight words are OR-ed per step so the compiler can vectorise the loop; non-zero data
    normally fails on its first 64 bytes, so it costs next to nothing before hashing.
    """
    cdef uint64_t words[8]
    cdef size_t pos = 0
    while pos + 64 <= length:
        memcpy(words, src + pos, 64)
        if (words[0] | words[1] | words[2] | words[3]
                | words[4] | words[5] | words[6] | words[7]) != 0:
            return False
        pos += 64
    while pos + 8 <= length:
        memcpy(words, src + pos, 8)
        if words[0] != 0:
            return False
        pos += 8
    while pos < length:
        if src[pos] != 0:
            return False
        pos += 1
    return True


cdef inline int _threads(Py_ssize_t blocks) noexcept nogil:
    """Thread count for a batch: never more threads than blocks, at most OpenMP's maximum."""
    cdef int most = openmp.omp_get_max_threads()
    if blocks < most:
        return <int>blocks if blocks > 0 else 1
    return most


cdef Py_ssize_t _count(Py_ssize_t length, Py_ssize_t block_size) except -1:
    if block_size <= 0:
        raise ValueError(f"block_size must be positive, got {block_size}")
    return (length + block_size - 1) // block_size


def block_count(Py_ssize_t length, Py_ssize_t block_size):
    """Number of blocks of `block_size` in `length` bytes; the last may be short."""
    if length < 0:
        raise ValueError(f"length must not be negative, got {length}")
    return _count(length, block_size)


def digest(data):
    """The canonical XXH3-128 digest of one contiguous buffer, as 16 bytes."""
    cdef Py_buffer view
    cdef uint8_t out[16]
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        with nogil:
            _digest(<const uint8_t *>view.buf, <size_t>view.len, out)
    finally:
        PyBuffer_Release(&view)
    return (<char *>out)[:16]


def digest_blocks(buf, Py_ssize_t block_size):
    """Digest every block of `buf`: a (n, 16) uint8 array, row i = digest of block i."""
    cdef Py_buffer view
    cdef Py_ssize_t n, i, start, length
    cdef const uint8_t *base
    cdef uint8_t[:, ::1] out
    cdef int threads
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        n = _count(view.len, block_size)
        digests = np.empty((n, _DIGEST), dtype=np.uint8)
        out = digests
        base = <const uint8_t *>view.buf
        length = view.len
        threads = _threads(n)
        with nogil:
            for i in prange(n, schedule="guided", num_threads=threads):
                start = i * block_size
                _digest(base + start, <size_t>min(block_size, length - start), &out[i, 0])
    finally:
        PyBuffer_Release(&view)
    return digests


def zero_blocks(buf, Py_ssize_t block_size):
    """Which blocks of `buf` are all zero: a (n,) bool array."""
    cdef Py_buffer view
    cdef Py_ssize_t n, i, start, length
    cdef const uint8_t *base
    cdef uint8_t[::1] out
    cdef int threads
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        n = _count(view.len, block_size)
        zero = np.empty(n, dtype=np.bool_)
        out = zero.view(np.uint8)
        base = <const uint8_t *>view.buf
        length = view.len
        threads = _threads(n)
        with nogil:
            for i in prange(n, schedule="guided", num_threads=threads):
                start = i * block_size
                out[i] = _is_zero(base + start, <size_t>min(block_size, length - start))
    finally:
        PyBuffer_Release(&view)
    return zero


def scan(buf, Py_ssize_t block_size):
    """One pass over `buf`: (digests (n, 16) uint8, zero (n,) bool).

    Zero blocks are not hashed: every full-size zero block gets the digest of `block_size` zero
    bytes, computed once per call from the first such block; a short zero tail is hashed itself.
    """
    cdef Py_buffer view
    cdef Py_ssize_t n, i, start, length, first_zero
    cdef size_t size
    cdef const uint8_t *base
    cdef uint8_t[:, ::1] out
    cdef uint8_t[::1] zout
    cdef int threads
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        n = _count(view.len, block_size)
        digests = np.empty((n, _DIGEST), dtype=np.uint8)
        zero = np.empty(n, dtype=np.bool_)
        out = digests
        zout = zero.view(np.uint8)
        base = <const uint8_t *>view.buf
        length = view.len
        threads = _threads(n)
        with nogil:
            for i in prange(n, schedule="guided", num_threads=threads):
                start = i * block_size
                size = <size_t>min(block_size, length - start)
                if _is_zero(base + start, size):
                    zout[i] = 1
                    if size != <size_t>block_size:
                        _digest(base + start, size, &out[i, 0])
                else:
                    zout[i] = 0
                    _digest(base + start, size, &out[i, 0])
            # Fill the full-size zero blocks' rows from one digest.
            first_zero = -1
            for i in range(n):
                if zout[i] and (i + 1) * block_size <= length:
                    if first_zero < 0:
                        first_zero = i
                        _digest(base + i * block_size, <size_t>block_size, &out[i, 0])
                    else:
                        memcpy(&out[i, 0], &out[first_zero, 0], _DIGEST)
    finally:
        PyBuffer_Release(&view)
    return digests, zero


def diff(a, b):
    """Indices (int64, ascending) of the rows where two (n, 16) uint8 digest arrays differ.

    A plain serial loop: 16 bytes a row is memory-bound and cheaper than starting a thread team
    for any realistic n (a 2 TiB disk in 1 MiB blocks is 32 MiB of digests per side).
    """
    cdef const uint8_t[:, ::1] left = a
    cdef const uint8_t[:, ::1] right = b
    cdef Py_ssize_t n, i, found = 0
    cdef int64_t[::1] out
    if left.shape[0] != right.shape[0] or left.shape[1] != right.shape[1]:
        raise ValueError(
            f"digest arrays differ in shape: ({left.shape[0]}, {left.shape[1]}) "
            f"vs ({right.shape[0]}, {right.shape[1]})"
        )
    if left.shape[1] != _DIGEST:
        raise ValueError(f"digest arrays must have {_DIGEST} columns, got {left.shape[1]}")
    n = left.shape[0]
    indices = np.empty(n, dtype=np.int64)
    out = indices
    with nogil:
        for i in range(n):
            if memcmp(&left[i, 0], &right[i, 0], _DIGEST) != 0:
                out[found] = i
                found += 1
    return indices[:found].copy()
