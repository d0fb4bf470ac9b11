"""The wire protocol between the source mover and the mover service (inside TLS).

Every message is a frame: 1 byte type, 4 bytes payload length (little-endian), payload.
Control messages carry JSON; BATCH carries blocks in binary:

    u32 n | n x i64 index | n x u8 kind | n x 16-byte digest | n x u32 length | payloads

Conversation (client = source side):
    HELLO{protocol, replica, disk_size, block_size, keep, source} -> READY{...} | ERROR
    REBUILD -> PROGRESS{done}* DIGESTS(chunk)* DIGESTS_END | ERROR
    BATCH*  (no answer; the server answers ERROR at once if a batch fails)
    COMMIT{checksum} -> COMMITTED{...} | ERROR
    ABORT, or closing the connection without COMMIT, discards the point.

Replica upkeep instead of a run (the job runner, after a VM's disks are all done or one failed):
    MAINTAIN{protocol, replica, op: "retain", keep} -> MAINTAINED{merged: [ids]} | ERROR
    MAINTAIN{protocol, replica, op: "drop", point} -> MAINTAINED{} | ERROR
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
from typing import Any

import numpy as np

from core.errors import ProtocolError
from core.mover.batch import BlockBatch

PROTOCOL_VERSION = 1
MAX_FRAME = 64 << 20

HELLO = 1
READY = 2
BATCH = 3
COMMIT = 4
COMMITTED = 5
ABORT = 6
ERROR = 7
REBUILD = 8
PROGRESS = 9
DIGESTS = 10
DIGESTS_END = 11
MAINTAIN = 12
MAINTAINED = 13

_HEAD = struct.Struct("<BI")

Sock = socket.socket | ssl.SSLSocket


def recv_exact(sock: Sock, n: int) -> bytearray | None:
    """n bytes, or None if the peer closed the connection cleanly before the first byte."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        r = sock.recv_into(view[got:], n - got)
        if r == 0:
            if got == 0:
                return None
            raise ProtocolError(f"connection closed in the middle of a message ({got}/{n} bytes)")
        got += r
    return buf


def send_frame(sock: Sock, kind: int, *parts: bytes | memoryview) -> int:
    length = sum(len(p) for p in parts)
    if length > MAX_FRAME:
        raise ProtocolError(f"message of {length} bytes exceeds the {MAX_FRAME}-byte limit")
    sock.sendall(_HEAD.pack(kind, length))
    for p in parts:
        if len(p):
            sock.sendall(p)
    return _HEAD.size + length


def recv_frame(sock: Sock) -> tuple[int, bytearray] | None:
    head = recv_exact(sock, _HEAD.size)
    if head is None:
        return None
    kind, length = _HEAD.unpack(head)
    if length > MAX_FRAME:
        raise ProtocolError(f"message of {length} bytes exceeds the {MAX_FRAME}-byte limit")
    body = recv_exact(sock, length) if length else bytearray()
    if body is None:
        raise ProtocolError("connection closed before the message body")
    return kind, body


def json_bytes(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


def send_json(sock: Sock, kind: int, obj: dict[str, Any]) -> int:
    return send_frame(sock, kind, json_bytes(obj))


def parse_json(body: bytes | bytearray) -> dict[str, Any]:
    try:
        obj = json.loads(bytes(body))
    except ValueError as e:
        raise ProtocolError(f"malformed control message: {e}") from e
    if not isinstance(obj, dict):
        raise ProtocolError("malformed control message: not an object")
    return obj


def encode_batch(batch: BlockBatch) -> list[bytes | memoryview]:
    n = len(batch)
    lengths = np.fromiter((len(p) for p in batch.payloads), dtype="<u4", count=n)
    head = b"".join(
        (
            struct.pack("<I", n),
            np.ascontiguousarray(batch.indices, dtype="<i8").tobytes(),
            np.ascontiguousarray(batch.kinds, dtype=np.uint8).tobytes(),
            np.ascontiguousarray(batch.digests, dtype=np.uint8).tobytes(),
            lengths.tobytes(),
        )
    )
    return [head, *batch.payloads]


def decode_batch(body: bytearray) -> BlockBatch:
    view = memoryview(body)
    if len(view) < 4:
        raise ProtocolError("batch too short")
    (n,) = struct.unpack_from("<I", view)
    head = 4 + n * (8 + 1 + 16 + 4)
    if len(view) < head:
        raise ProtocolError(f"batch of {n} blocks is truncated")
    pos = 4
    indices = np.frombuffer(view, dtype="<i8", count=n, offset=pos).astype(np.int64)
    pos += 8 * n
    kinds = np.frombuffer(view, dtype=np.uint8, count=n, offset=pos).copy()
    pos += n
    digests = np.frombuffer(view, dtype=np.uint8, count=16 * n, offset=pos).reshape(n, 16)
    pos += 16 * n
    lengths = np.frombuffer(view, dtype="<u4", count=n, offset=pos)
    pos += 4 * n
    if pos + int(lengths.sum(dtype=np.int64)) != len(view):
        raise ProtocolError("batch payload lengths do not add up to the message size")
    payloads: list[memoryview | bytes] = []
    for length in lengths.tolist():
        payloads.append(view[pos : pos + length])
        pos += length
    return BlockBatch(indices, kinds, digests.copy(), payloads)
