"""The unit every flow-export decoder works on: a batch of UDP datagrams and what came out of them.

Decoders see many datagrams at once so they can decode each template's records for the
whole batch in one vectorised pass (see ``flowscope.collect.netflow``), instead of one
Python object per datagram or per record.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from flowscope.collect.packed import SENDER, sections
from flowscope.diagnostics import Skips
from flowscope.schema import ADDRESS, empty_flows

MESSAGE_SCHEMA = pa.schema(
    [
        pa.field("exporter", ADDRESS),
        pa.field("version", pa.uint16()),
        pa.field("domain", pa.uint32()),
        pa.field("sequence", pa.uint64()),
        pa.field("records", pa.uint32()),
        pa.field("flows", pa.uint32()),
        pa.field("received_ns", pa.int64()),
        pa.field("status", pa.string()),
    ]
)
"""One row per datagram: lets the health module compute sequence gaps per (exporter, version, domain).

``records`` are the data records the datagram carried (what IPFIX sequence numbers count, options data
included), ``flows`` those of them that are flows (what exporter health reports as flows)."""


@dataclass
class Datagrams:
    """UDP payloads with who sent them and when they arrived (row i of each field is datagram i)."""

    payloads: list[bytes]
    exporters: np.ndarray
    """(n, 16) uint8 exporter (sampler) address, IPv4-mapped."""
    received_ns: np.ndarray
    """int64 UTC nanoseconds."""

    def __post_init__(self) -> None:
        self.exporters = np.asarray(self.exporters, dtype=np.uint8).reshape(-1, 16)
        self.received_ns = np.asarray(self.received_ns, dtype=np.int64)
        if not len(self.payloads) == len(self.exporters) == len(self.received_ns):
            raise ValueError("Datagrams fields differ in length")

    def __len__(self) -> int:
        return len(self.payloads)

    def take(self, indices: np.ndarray | list[int]) -> Datagrams:
        """The datagrams at ``indices`` (e.g. those of one protocol version)."""
        indices = np.asarray(indices, dtype=np.int64)
        return Datagrams(
            [self.payloads[i] for i in indices.tolist()], self.exporters[indices], self.received_ns[indices]
        )

    @classmethod
    def concat(cls, parts: list[Datagrams]) -> Datagrams:
        if not parts:
            return cls([], np.empty((0, 16), np.uint8), np.empty(0, np.int64))
        return cls(
            [p for part in parts for p in part.payloads],
            np.concatenate([part.exporters for part in parts]),
            np.concatenate([part.received_ns for part in parts]),
        )


def unpack(packed: bytes) -> Datagrams:
    """A packed batch from a receive process (``collect/packed.py``) -> Datagrams."""
    count, lengths_at, senders_at, payload_start = sections(packed)
    times = np.frombuffer(packed, np.int64, count, 8)
    lengths = np.frombuffer(packed, np.uint32, count, lengths_at)
    senders = np.frombuffer(packed, np.uint8, SENDER * count, senders_at).reshape(count, SENDER)
    ends = (np.cumsum(lengths, dtype=np.int64) + payload_start).tolist()
    starts = [payload_start, *ends[:-1]]
    payloads = [packed[s:e] for s, e in zip(starts, ends, strict=True)]
    return Datagrams(payloads, sender_addresses(senders), times.copy())


def sender_addresses(names: np.ndarray) -> np.ndarray:
    """struct sockaddr_in / sockaddr_in6 rows -> (n, 16) IPv4-mapped address bytes."""
    family = names[:, 0].astype(np.uint16) | (names[:, 1].astype(np.uint16) << 8)  # host order (little endian)
    out = np.zeros((names.shape[0], 16), np.uint8)
    v4 = family == socket.AF_INET
    out[v4, 10:12] = 0xFF
    out[v4, 12:] = names[v4, 4:8]
    v6 = family == socket.AF_INET6
    out[v6] = names[v6, 8:24]
    return out


def empty_messages() -> pa.Table:
    return MESSAGE_SCHEMA.empty_table()


@dataclass
class Decoded:
    """What a decoder made of a batch of datagrams."""

    flows: pa.Table = field(default_factory=empty_flows)
    """Flow-schema rows (``flowscope.schema.conform``)."""
    messages: pa.Table = field(default_factory=empty_messages)
    """``MESSAGE_SCHEMA`` rows, one per datagram (status "ok" or the reason it was skipped)."""
    counters: pa.Table | None = None
    """sFlow counter samples (lake table ``interface_counters``), None when the protocol has none."""
    skips: Skips = field(default_factory=lambda: Skips(unit="items"))

    @classmethod
    def concat(cls, parts: list[Decoded]) -> Decoded:
        """Merge the results of several decoders (e.g. NetFlow and sFlow of the same batch)."""
        skips = Skips(unit="items")
        for part in parts:
            skips.merge(part.skips)
        counters = [p.counters for p in parts if p.counters is not None and p.counters.num_rows]
        flows = [p.flows for p in parts if p.flows.num_rows]
        return cls(
            flows=pa.concat_tables(flows, promote_options="default") if flows else empty_flows(),
            messages=(  # sFlow's messages carry extra columns (sample sequences): others get nulls
                pa.concat_tables([p.messages for p in parts], promote_options="default") if parts else empty_messages()
            ),
            counters=pa.concat_tables(counters, promote_options="default") if counters else None,
            skips=skips,
        )
