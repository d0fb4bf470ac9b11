# cython: language_level=3
"""LZ4 block compression into self-describing frames, one frame per block.

Frame format (locked by tests/fastblocks/test_golden.py; old frames must stay readable):

    byte 0      codec ID: 0x01 = LZ4 block, 0x00 = stored (raw bytes)
    bytes 1..4  original length, uint32 little-endian
    bytes 5..   payload: the raw LZ4 block, or the original bytes

For an LZ4 frame, frame[1:] is exactly python-lz4's `lz4.block.compress(data)` format
(store_size=True), so `lz4.block.decompress(frame[1:])` reads it and
`b"\\x01" + lz4.block.compress(data)` is a valid frame. A block LZ4 does not make smaller is
stored. Decompression picks the codec from byte 0; a malformed frame raises FrameError (a
ValueError) naming what is wrong.

All C work runs without the GIL, batches spread over blocks with OpenMP (`prange`). Each frame
is compressed straight into its own worst-case-sized bytes object, which is then shrunk in place:
no scratch arena and no copy under the GIL (that arena and copy cost 40 % of compress_blocks'
time on 256 x 1 MiB blocks, mostly page faults). Nothing is shared between calls or threads.
"""

from cpython.buffer cimport (
    PyBUF_SIMPLE,
    PyBUF_WRITABLE,
    PyBuffer_Release,
    PyObject_GetBuffer,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.object cimport PyObject
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy

cimport openmp

import numpy as np


cdef enum:
    _STORED = 0x00
    _LZ4 = 0x01
    _HEADER = 5

CODEC_STORED = _STORED
CODEC_LZ4 = _LZ4
FRAME_HEADER_SIZE = _HEADER


cdef extern from "Python.h":
    # Documented in the C API; shrinking a bytes object with one reference reallocs in place.
    int _PyBytes_Resize(PyObject **bytes, Py_ssize_t newsize) except -1
    PyObject *_list_get "PyList_GET_ITEM"(object items, Py_ssize_t index)
    void _list_set "PyList_SET_ITEM"(object items, Py_ssize_t index, PyObject *item)


cdef extern from "lz4.h" nogil:
    int LZ4_MAX_INPUT_SIZE
    int LZ4_compressBound(int input_size)
    int LZ4_compress_default(const char *src, char *dst, int src_size, int dst_capacity)
    int LZ4_decompress_safe(const char *src, char *dst, int compressed_size, int dst_capacity)


class FrameError(ValueError):
    """A frame is malformed: unknown codec, truncated, wrong length or undecodable payload."""


# Outcome of checking or decoding one frame; anything but _OK becomes a FrameError.
cdef enum:
    _OK = 0
    _TRUNCATED = 1
    _UNKNOWN_CODEC = 2
    _STORED_LENGTH = 3
    _IMPOSSIBLE_RATIO = 4
    _TOO_LONG = 5
    _DECODE_ERROR = 6
    _DECODED_LENGTH = 7


cdef inline void _put_u32le(uint8_t *dst, uint32_t value) noexcept nogil:
    dst[0] = value & 0xFF
    dst[1] = (value >> 8) & 0xFF
    dst[2] = (value >> 16) & 0xFF
    dst[3] = (value >> 24) & 0xFF


cdef inline uint32_t _get_u32le(const uint8_t *src) noexcept nogil:
    return (<uint32_t>src[0] | (<uint32_t>src[1] << 8) | (<uint32_t>src[2] << 16)
            | (<uint32_t>src[3] << 24))


cdef inline Py_ssize_t _compress_one(const uint8_t *src, int size, uint8_t *dst,
                                     int capacity) noexcept nogil:
    """Write the frame of `size` bytes at `src` into `dst` (room for `capacity` bytes, at least
    _HEADER + LZ4_compressBound(size)); return the frame's length."""
    cdef int packed = LZ4_compress_default(
        <const char *>src, <char *>(dst + _HEADER), size, capacity - _HEADER
    )
    _put_u32le(dst + 1, <uint32_t>size)
    if 0 < packed < size:
        dst[0] = _LZ4
        return _HEADER + packed
    dst[0] = _STORED
    memcpy(dst + _HEADER, src, <size_t>size)
    return _HEADER + size


cdef inline int _check_header(const uint8_t *frame, Py_ssize_t frame_len, uint64_t max_len,
                              uint32_t *original) noexcept nogil:
    """Check a frame's header against its payload; store the original length in `original`."""
    cdef uint64_t payload
    if frame_len < _HEADER:
        return _TRUNCATED
    original[0] = _get_u32le(frame + 1)
    payload = <uint64_t>(frame_len - _HEADER)
    if frame[0] == _STORED:
        if payload != original[0]:
            return _STORED_LENGTH
    elif frame[0] == _LZ4:
        # An LZ4 block expands at most 255-fold (one extra length byte adds 255 to a match), and
        # never to more than LZ4_MAX_INPUT_SIZE: refuse before allocating for a lying header.
        if original[0] > payload * 255 or original[0] > <uint64_t>LZ4_MAX_INPUT_SIZE:
            return _IMPOSSIBLE_RATIO
    else:
        return _UNKNOWN_CODEC
    if original[0] > max_len:
        return _TOO_LONG
    return _OK


cdef inline int _decode(const uint8_t *frame, Py_ssize_t frame_len, uint32_t original,
                        uint8_t *dst, int *decoded) noexcept nogil:
    """Decode a frame whose header passed _check_header into `dst` (room for `original`)."""
    if frame[0] == _STORED:
        memcpy(dst, frame + _HEADER, original)
        decoded[0] = <int>original
        return _OK
    decoded[0] = LZ4_decompress_safe(
        <const char *>(frame + _HEADER), <char *>dst,
        <int>(frame_len - _HEADER), <int>original
    )
    if decoded[0] < 0:
        return _DECODE_ERROR
    if <uint32_t>decoded[0] != original:
        return _DECODED_LENGTH
    return _OK


cdef str _describe(int code, const uint8_t *frame, Py_ssize_t frame_len, uint64_t max_len,
                   int decoded):
    """The message for a frame that failed with `code`."""
    cdef uint32_t original = _get_u32le(frame + 1) if frame_len >= _HEADER else 0
    if code == _TRUNCATED:
        return f"truncated frame: {frame_len} bytes, the header alone needs {_HEADER}"
    if code == _UNKNOWN_CODEC:
        return f"unknown codec 0x{frame[0]:02x} (known: 0x00 stored, 0x01 LZ4)"
    if code == _STORED_LENGTH:
        return (f"stored frame length mismatch: header says {original} bytes, "
                f"payload has {frame_len - _HEADER}")
    if code == _IMPOSSIBLE_RATIO:
        return (f"LZ4 frame header says {original} bytes, impossible from a "
                f"{frame_len - _HEADER}-byte payload")
    if code == _TOO_LONG:
        return f"frame holds {original} bytes, more than the {max_len} allowed here"
    if code == _DECODE_ERROR:
        return f"LZ4 decode error: the payload is corrupt or longer than the {original} bytes " \
               f"in the header"
    if code == _DECODED_LENGTH:
        return f"length mismatch: header says {original} bytes, LZ4 payload decodes to {decoded}"
    return f"frame error {code}"


cdef inline int _threads(Py_ssize_t items) noexcept nogil:
    """Thread count for a batch: never more threads than items, at most OpenMP's maximum."""
    cdef int most = openmp.omp_get_max_threads()
    if items < most:
        return <int>items if items > 0 else 1
    return most


cdef _shrink(list frames, Py_ssize_t index, Py_ssize_t size):
    """Shrink frames[index], a bytes object only the list refers to, to `size` bytes."""
    cdef PyObject *item = _list_get(frames, index)
    try:
        _PyBytes_Resize(&item, size)
    finally:
        # On success `item` is the resized object, on failure NULL (the old one is freed either
        # way): the list's slot must own whatever is left, without a decref of the old object.
        _list_set(frames, index, item)


def compress(data):
    """Compress one buffer into one frame (LZ4, or stored if LZ4 does not make it smaller)."""
    cdef Py_buffer view
    cdef int capacity
    cdef Py_ssize_t frame_len
    cdef uint8_t *dst
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        if view.len > LZ4_MAX_INPUT_SIZE:
            raise ValueError(f"{view.len} bytes is more than LZ4 takes ({LZ4_MAX_INPUT_SIZE})")
        capacity = _HEADER + LZ4_compressBound(<int>view.len)
        frames = [PyBytes_FromStringAndSize(NULL, capacity)]
        dst = <uint8_t *>PyBytes_AS_STRING(frames[0])
        with nogil:
            frame_len = _compress_one(<const uint8_t *>view.buf, <int>view.len, dst, capacity)
        _shrink(frames, 0, frame_len)
        return frames[0]
    finally:
        PyBuffer_Release(&view)


def compress_blocks(buf, Py_ssize_t block_size, indices):
    """Compress the blocks of `buf` named by `indices` (int64), in parallel: a list of frames.

    Frame j is block indices[j]; the last block of `buf` may be short.
    """
    cdef Py_buffer view
    cdef const int64_t[::1] wanted = indices
    cdef Py_ssize_t n, m, j, start, length
    cdef int capacity
    cdef const uint8_t *base
    cdef uint8_t **dsts = NULL
    cdef Py_ssize_t *sizes = NULL
    cdef int threads
    if block_size <= 0:
        raise ValueError(f"block_size must be positive, got {block_size}")
    if block_size > LZ4_MAX_INPUT_SIZE:
        raise ValueError(f"block_size {block_size} is more than LZ4 takes ({LZ4_MAX_INPUT_SIZE})")
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        length = view.len
        n = (length + block_size - 1) // block_size
        m = wanted.shape[0]
        for j in range(m):
            if not 0 <= wanted[j] < n:
                raise IndexError(f"block index {wanted[j]} out of range for {n} blocks")
        if m == 0:
            return []
        # Each frame gets a bytes object of the worst-case size; only touched pages cost memory.
        capacity = _HEADER + LZ4_compressBound(<int>block_size)
        dsts = <uint8_t **>malloc(<size_t>m * sizeof(uint8_t *))
        sizes = <Py_ssize_t *>malloc(<size_t>m * sizeof(Py_ssize_t))
        if dsts == NULL or sizes == NULL:
            raise MemoryError()
        frames = [PyBytes_FromStringAndSize(NULL, capacity) for j in range(m)]
        for j in range(m):
            dsts[j] = <uint8_t *>PyBytes_AS_STRING(frames[j])
        base = <const uint8_t *>view.buf
        threads = _threads(m)
        with nogil:
            for j in prange(m, schedule="guided", num_threads=threads):
                start = wanted[j] * block_size
                sizes[j] = _compress_one(base + start, <int>min(block_size, length - start),
                                         dsts[j], capacity)
        for j in range(m):
            _shrink(frames, j, sizes[j])
        return frames
    finally:
        free(dsts)
        free(sizes)
        PyBuffer_Release(&view)


def decompress(frame):
    """Decode one frame to its original bytes; FrameError if it is malformed."""
    cdef Py_buffer view
    cdef uint32_t original = 0
    cdef int code, decoded = 0
    cdef const uint8_t *src
    cdef uint8_t *dst
    PyObject_GetBuffer(frame, &view, PyBUF_SIMPLE)
    try:
        src = <const uint8_t *>view.buf
        code = _check_header(src, view.len, 0xFFFFFFFF, &original)
        if code != _OK:
            raise FrameError(_describe(code, src, view.len, 0xFFFFFFFF, 0))
        result = PyBytes_FromStringAndSize(NULL, original)
        dst = <uint8_t *>PyBytes_AS_STRING(result)
        with nogil:
            code = _decode(src, view.len, original, dst, &decoded)
        if code != _OK:
            raise FrameError(_describe(code, src, view.len, 0xFFFFFFFF, decoded))
        return result
    finally:
        PyBuffer_Release(&view)


def decompress_into(frames, out, Py_ssize_t block_size):
    """Decode frame i into out[i*block_size : i*block_size + its length], in parallel.

    `out` is a writable contiguous buffer of at least (len(frames) - 1) * block_size bytes; a
    frame longer than block_size or than the room left in `out` is a FrameError. Returns the
    original lengths as an int64 array.
    """
    cdef Py_buffer out_view
    cdef Py_buffer *views = NULL
    cdef Py_ssize_t m, got = 0, i, room
    cdef uint32_t *originals = NULL
    cdef int *codes = NULL
    cdef int *decoded = NULL
    cdef int64_t[::1] lengths_out
    cdef uint8_t *dst
    cdef int threads
    if block_size <= 0:
        raise ValueError(f"block_size must be positive, got {block_size}")
    frames = list(frames)
    m = len(frames)
    PyObject_GetBuffer(out, &out_view, PyBUF_WRITABLE)
    try:
        if m > 0 and out_view.len < (m - 1) * block_size:
            raise ValueError(
                f"out has {out_view.len} bytes, too small for {m} blocks of {block_size}"
            )
        views = <Py_buffer *>calloc(max(m, 1), sizeof(Py_buffer))
        originals = <uint32_t *>calloc(max(m, 1), sizeof(uint32_t))
        codes = <int *>calloc(max(m, 1), sizeof(int))
        decoded = <int *>calloc(max(m, 1), sizeof(int))
        if views == NULL or originals == NULL or codes == NULL or decoded == NULL:
            raise MemoryError()
        for got in range(m):
            PyObject_GetBuffer(frames[got], &views[got], PyBUF_SIMPLE)
        got = m
        lengths = np.zeros(m, dtype=np.int64)
        lengths_out = lengths
        dst = <uint8_t *>out_view.buf
        threads = _threads(m)
        with nogil:
            for i in prange(m, schedule="guided", num_threads=threads):
                room = min(block_size, out_view.len - i * block_size)
                codes[i] = _check_header(<const uint8_t *>views[i].buf, views[i].len,
                                         <uint64_t>room, &originals[i])
                if codes[i] == _OK:
                    codes[i] = _decode(<const uint8_t *>views[i].buf, views[i].len,
                                       originals[i], dst + i * block_size, &decoded[i])
                    lengths_out[i] = originals[i]
        for i in range(m):
            if codes[i] != _OK:
                room = min(block_size, out_view.len - i * block_size)
                raise FrameError(f"frame {i}: " + _describe(
                    codes[i], <const uint8_t *>views[i].buf, views[i].len, <uint64_t>room,
                    decoded[i]))
        return lengths
    finally:
        for i in range(got):
            PyBuffer_Release(&views[i])
        free(views)
        free(originals)
        free(codes)
        free(decoded)
        PyBuffer_Release(&out_view)
