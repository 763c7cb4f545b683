"""The common NetFlow v9 / IPFIX datagram, recognised for a whole batch at once with numpy.

Most export datagrams are a header and one data set that fills the rest of the message.
Finding those (and reading their headers) vectorised leaves the per-datagram Python pass
only for datagrams with templates, several sets or anything unusual.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowscope.collect.fields import IPFIX, V9

V9_HEADER, IPFIX_HEADER, SET_HEADER = 20, 16, 4


@dataclass
class SimpleDatagrams:
    """Header fields of the datagrams (at ``positions`` in the batch) that are a header plus one data set."""

    positions: np.ndarray
    version: np.ndarray
    domain: np.ndarray
    sequence: np.ndarray
    export_secs: np.ndarray
    uptime_ms: np.ndarray
    set_id: np.ndarray
    body_start: np.ndarray
    """Offset of the data set's records in the payload; they run to the payload's end."""

    def take(self, rows: np.ndarray) -> SimpleDatagrams:
        return SimpleDatagrams(**{name: getattr(self, name)[rows] for name in self.__dataclass_fields__})


def find_simple(payloads: list[bytes]) -> SimpleDatagrams:
    """The datagrams whose only set is a data set (id >= 256) ending exactly at the message's end."""
    n = len(payloads)
    lengths = np.fromiter(map(len, payloads), np.int64, n)
    data = np.frombuffer(b"".join(payloads) + bytes(V9_HEADER + SET_HEADER), np.uint8)
    starts = np.zeros(n, np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])

    def field(offset: int, width: int) -> np.ndarray:
        value = np.zeros(n, np.int64)
        for i in range(width):
            value = (value << 8) | data[starts + offset + i]
        return value

    # reads past a short payload only touch the next payload or the zero tail: masked out below
    version = field(0, 2)
    v9 = (version == V9) & (lengths >= V9_HEADER + SET_HEADER)
    ipfix = (version == IPFIX) & (lengths >= IPFIX_HEADER + SET_HEADER) & (field(2, 2) == lengths)
    header = np.where(v9, V9_HEADER, IPFIX_HEADER)
    set_id = np.where(v9, field(V9_HEADER, 2), field(IPFIX_HEADER, 2))
    set_length = np.where(v9, field(V9_HEADER + 2, 2), field(IPFIX_HEADER + 2, 2))
    simple = (v9 | ipfix) & (set_id >= 256) & (set_length > SET_HEADER) & (header + set_length == lengths)
    rows = np.flatnonzero(simple)
    v9_rows = v9[rows]
    return SimpleDatagrams(
        positions=rows,
        version=version[rows],
        domain=np.where(v9_rows, field(16, 4)[rows], field(12, 4)[rows]),
        sequence=np.where(v9_rows, field(12, 4)[rows], field(8, 4)[rows]),
        export_secs=np.where(v9_rows, field(8, 4)[rows], field(4, 4)[rows]),
        uptime_ms=np.where(v9_rows, field(4, 4)[rows], 0),
        set_id=set_id[rows],
        body_start=header[rows] + SET_HEADER,
    )


def leading_versions(payloads: list[bytes]) -> np.ndarray:
    """Each payload's first two bytes as a big-endian number (the NetFlow/IPFIX version), 0 when shorter."""
    lengths = np.fromiter(map(len, payloads), np.int64, len(payloads))
    heads = np.frombuffer(b"".join(p[:2] for p in payloads) + b"\0\0", np.uint8)
    starts = np.zeros(len(payloads), np.int64)
    np.cumsum(np.minimum(lengths, 2)[:-1], out=starts[1:])
    versions = (heads[starts].astype(np.int64) << 8) | heads[starts + 1]
    return np.where(lengths >= 2, versions, 0)
