"""The packed batch: how received datagrams cross the pipe from a receive process, as one bytes object.

Layout: count (int64), receive times (int64 each), lengths (uint32 each), sender sockaddrs (``SENDER``
bytes each), then the payloads back to back. No Python object per datagram crosses the pipe. This module
uses the standard library only: the receive process imports it, and every module it imports costs that
process memory (numpy alone is 21 MiB of RSS).
"""

from __future__ import annotations

import struct

SENDER = 28  # sizeof(struct sockaddr_in6), which also holds a sockaddr_in
_COUNT = struct.Struct("=q")


def pack(count: int, time_ns: int, lengths: bytes, senders: bytes, payloads: list[memoryview]) -> bytes:
    """``count`` datagrams received at ``time_ns`` as one packed batch (``lengths``: native uint32s)."""
    return b"".join([_COUNT.pack(count), _COUNT.pack(time_ns) * count, lengths, senders, *payloads])


def packed_count(packed: bytes) -> int:
    """How many datagrams a packed batch holds."""
    return _COUNT.unpack_from(packed)[0]


def sections(packed: bytes) -> tuple[int, int, int, int]:
    """Where a packed batch's parts start: (count, lengths offset, senders offset, payloads offset)."""
    count = packed_count(packed)
    lengths = 8 + 8 * count
    senders = lengths + 4 * count
    return count, lengths, senders, senders + SENDER * count


def merge_packed(batches: list[bytes]) -> bytes:
    """Several packed batches as one."""
    if len(batches) == 1:
        return batches[0]
    views = [memoryview(b) for b in batches]
    parts = [sections(b) for b in batches]
    return b"".join(
        [
            _COUNT.pack(sum(p[0] for p in parts)),
            *(v[8 : p[1]] for v, p in zip(views, parts, strict=True)),
            *(v[p[1] : p[2]] for v, p in zip(views, parts, strict=True)),
            *(v[p[2] : p[3]] for v, p in zip(views, parts, strict=True)),
            *(v[p[3] :] for v, p in zip(views, parts, strict=True)),
        ]
    )
