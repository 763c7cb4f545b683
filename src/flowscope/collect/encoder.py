"""Encode flow columns as NetFlow v9 or IPFIX datagrams: recorded-looking export streams on demand.

Used to generate replay and decode benchmarks and protocol test cases without a router.
Records are built as one (n, record_length) matrix, column by column, then cut into
datagrams; only the per-datagram headers are assembled in Python.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

import numpy as np

from flowscope.collect.fields import IPFIX, V9

# A common IPv4 template: (element, length) pairs, as routers send it.
IPV4_TEMPLATE: tuple[tuple[int, int], ...] = (
    (8, 4),  # sourceIPv4Address
    (12, 4),  # destinationIPv4Address
    (7, 2),  # sourceTransportPort
    (11, 2),  # destinationTransportPort
    (4, 1),  # protocolIdentifier
    (6, 1),  # tcpControlBits
    (5, 1),  # ipClassOfService
    (10, 4),  # ingressInterface
    (14, 4),  # egressInterface
    (1, 8),  # octetDeltaCount
    (2, 8),  # packetDeltaCount
    (16, 4),  # bgpSourceAsNumber
    (17, 4),  # bgpDestinationAsNumber
    (15, 4),  # ipNextHopIPv4Address
    (152, 8),  # flowStartMilliseconds
    (153, 8),  # flowEndMilliseconds
)


def template_set(version: int, template_id: int, fields: Sequence[tuple[int, int]]) -> bytes:
    """A template set (v9 flowset 0 / IPFIX set 2) holding one template of IANA elements."""
    body = struct.pack(">HH", template_id, len(fields)) + b"".join(struct.pack(">HH", e, n) for e, n in fields)
    return struct.pack(">HH", 0 if version == V9 else 2, 4 + len(body)) + body


def records_matrix(fields: Sequence[tuple[int, int]], columns: Mapping[int, np.ndarray], n: int) -> np.ndarray:
    """(n, record_length) bytes: each element's column written big-endian at its offset (absent = zeros)."""
    length = sum(size for _, size in fields)
    matrix = np.zeros((n, length), np.uint8)
    offset = 0
    for element, size in fields:
        values = columns.get(element)
        if values is not None:
            values = np.asarray(values)
            if values.ndim == 2:  # already bytes, e.g. (n, 16) addresses
                matrix[:, offset : offset + size] = values[:, -size:]
            else:
                wide = values.astype(">u8").view(np.uint8).reshape(n, 8)
                matrix[:, offset : offset + size] = wide[:, 8 - size :]
        offset += size
    return matrix


def encode(
    version: int,
    fields: Sequence[tuple[int, int]],
    columns: Mapping[int, np.ndarray],
    *,
    records_per_datagram: int = 24,
    template_id: int = 256,
    domain: int = 0,
    export_secs: int = 1_700_000_000,
    uptime_ms: int = 100_000_000,
    template_every: int = 100,
) -> list[bytes]:
    """Datagrams carrying all rows of ``columns`` (element -> values); the template leads every
    ``template_every``-th datagram. Sequence numbers count datagrams (v9) or records (IPFIX)."""
    n = len(next(iter(columns.values())))
    matrix = records_matrix(fields, columns, n)
    template = template_set(version, template_id, fields)
    out = []
    sequence = 0
    for index, start in enumerate(range(0, n, records_per_datagram)):
        chunk = matrix[start : start + records_per_datagram]
        data = chunk.tobytes()
        sets = struct.pack(">HH", template_id, 4 + len(data)) + data
        if index % template_every == 0:
            sets = template + sets
        if version == V9:
            count = len(chunk) + (1 if index % template_every == 0 else 0)
            header = struct.pack(">HHIIII", V9, count, uptime_ms, export_secs, index, domain)
        else:
            header = struct.pack(">HHIII", IPFIX, 16 + len(sets), export_secs, sequence, domain)
        out.append(header + sets)
        sequence += len(chunk)
    return out


def synthetic_columns(n: int, seed: int = 1, start_ms: int = 1_699_999_000_000) -> dict[int, np.ndarray]:
    """Plausible random IPv4 flows (element -> values) for ``IPV4_TEMPLATE``."""
    rng = np.random.default_rng(seed)
    packets = rng.integers(1, 1000, n)
    start = start_ms + rng.integers(0, 60_000, n)
    return {
        8: rng.integers(0x0A000000, 0x0AFFFFFF, n),
        12: rng.integers(0xC0000000, 0xDFFFFFFF, n),
        7: rng.integers(1024, 65535, n),
        11: rng.choice([53, 80, 443, 22, 123], n),
        4: rng.choice([6, 17, 1], n),
        6: rng.integers(0, 64, n),
        5: rng.integers(0, 256, n),
        10: rng.integers(1, 64, n),
        14: rng.integers(1, 64, n),
        1: packets * rng.integers(40, 1500, n),
        2: packets,
        16: rng.integers(1, 65000, n),
        17: rng.integers(1, 65000, n),
        15: rng.integers(0x0A000000, 0x0AFFFFFF, n),
        152: start,
        153: start + rng.integers(0, 30_000, n),
    }
