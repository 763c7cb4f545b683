"""NetFlow v5 (and its predecessor v1): a fixed header and fixed 48-byte records, one matrix per batch.

Layouts per Cisco's NetFlow export formats. v5's header sampling field holds the mode in
its top 2 bits and the interval in the low 14; an interval of 0 (and v1, which has no such
field) means the exporter did not say: the rate is unknown unless the sampling config has one.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowscope import addresses
from flowscope.collect.datagrams import MESSAGE_SCHEMA, Datagrams, Decoded
from flowscope.collect.records import be_unsigned
from flowscope.collect.sampling import SamplingTable
from flowscope.diagnostics import Skips
from flowscope.schema import TIMESTAMP, conform, empty_flows

RECORD = 48
V1, V5 = 1, 5
HEADER = {V1: 16, V5: 24}
FLAGS_PROTO_TOS = {V1: (40, 38, 39), V5: (37, 38, 39)}  # byte offsets of tcp_flags, proto, tos in a record


def decode_legacy(datagrams: Datagrams, sampling: SamplingTable, version: int) -> Decoded:
    """Decode NetFlow v1 or v5 datagrams; malformed ones are counted by reason and reported in the message rows."""
    skips = Skips(unit="items")
    header_size = HEADER[version]
    n = len(datagrams)
    counts = np.zeros(n, np.int64)
    status = ["ok"] * n
    headers = np.zeros((n, HEADER[V5]), np.uint8)
    bodies = []
    for i, payload in enumerate(datagrams.payloads):
        size = len(payload)
        if size < header_size:
            status[i] = f"truncated NetFlow v{version} header"
        else:
            headers[i, :header_size] = np.frombuffer(payload, np.uint8, header_size)
            count = int.from_bytes(payload[2:4], "big")
            if header_size + count * RECORD > size:
                status[i] = f"NetFlow v{version} record count exceeds the datagram"
            else:
                counts[i] = count
                bodies.append(payload[header_size : header_size + count * RECORD])
        if status[i] != "ok":
            skips.add(status[i], example=f"{size} bytes from {addresses.format_one(datagrams.exporters[i].tobytes())}")
    uptime = be_unsigned(headers[:, 4:8]).astype(np.int64)
    secs = be_unsigned(headers[:, 8:12]).astype(np.int64)
    nsecs = be_unsigned(headers[:, 12:16]).astype(np.int64)
    sequence = be_unsigned(headers[:, 16:20])  # v1 has none: zeros
    domain = be_unsigned(headers[:, 20:22]).astype(np.uint32)  # v5: engine type << 8 | engine id
    interval = (be_unsigned(headers[:, 22:24]) & 0x3FFF).astype(np.uint64)
    messages = pa.table(
        {
            "exporter": addresses.from_ipv6_bytes(datagrams.exporters),
            "version": pa.array(np.full(n, version, np.uint16)),
            "domain": pa.array(domain),
            "sequence": pa.array(sequence),
            "records": pa.array(counts.astype(np.uint32)),
            "flows": pa.array(counts.astype(np.uint32)),
            "received_ns": pa.array(datagrams.received_ns),
            "status": pa.array(status, pa.string()),
        },
        schema=MESSAGE_SCHEMA,
    )
    total = int(counts.sum())
    if total == 0:
        return Decoded(flows=empty_flows(), messages=messages, skips=skips)
    m = np.frombuffer(b"".join(bodies), np.uint8).reshape(total, RECORD)
    row = np.repeat(np.arange(n), counts)
    export_ns = secs[row] * 1_000_000_000 + nsecs[row]

    def field(start: int, stop: int) -> np.ndarray:
        return be_unsigned(m[:, start:stop])

    def uptime_to_ns(values: np.ndarray) -> pa.Array:
        behind = ((uptime[row] - values.astype(np.int64) + (1 << 31)) % (1 << 32)) - (1 << 31)
        return pa.array(export_ns - behind * 1_000_000, TIMESTAMP)

    flags_at, proto_at, tos_at = FLAGS_PROTO_TOS[version]
    proto = field(proto_at, proto_at + 1).astype(np.uint8)
    dst_port = field(34, 36).astype(np.uint16)
    not_icmp = ~((proto == 1) | (proto == 58))
    domains = [(datagrams.exporters[i].tobytes(), version, int(domain[i])) for i in range(n)]
    header_rate = interval[row]
    rate, known = sampling.resolve(domains, row, header_rate, None)
    columns = {
        "type": pa.repeat(pa.scalar(f"netflow_v{version}"), total),
        "time_received": pa.array(datagrams.received_ns[row], TIMESTAMP),
        "time_flow_start": uptime_to_ns(field(24, 28)),
        "time_flow_end": uptime_to_ns(field(28, 32)),
        "sampler_address": addresses.from_ipv6_bytes(datagrams.exporters[row]),
        "observation_domain_id": pa.array(domain[row]),
        "sequence_num": pa.array(sequence[row].astype(np.uint32)),
        "sampling_rate": pa.array(rate, mask=~known),
        "src_addr": addresses.from_ipv4_bytes(m[:, 0:4]),
        "dst_addr": addresses.from_ipv4_bytes(m[:, 4:8]),
        "next_hop": addresses.from_ipv4_bytes(m[:, 8:12]),
        "in_if": pa.array(field(12, 14).astype(np.uint32)),
        "out_if": pa.array(field(14, 16).astype(np.uint32)),
        "packets": pa.array(field(16, 20)),
        "bytes": pa.array(field(20, 24)),
        "src_port": pa.array(field(32, 34).astype(np.uint16)),
        "dst_port": pa.array(dst_port),
        "tcp_flags": pa.array(field(flags_at, flags_at + 1).astype(np.uint16)),
        "proto": pa.array(proto),
        "ip_tos": pa.array(field(tos_at, tos_at + 1).astype(np.uint8)),
        "etype": pa.array(np.full(total, 0x0800, np.uint16)),
        # v5 carries ICMP type and code in the destination port
        "icmp_type": pa.array((dst_port >> 8).astype(np.uint8), mask=not_icmp),
        "icmp_code": pa.array((dst_port & 0xFF).astype(np.uint8), mask=not_icmp),
    }
    if version == V5:
        columns["src_as"] = pa.array(field(40, 42).astype(np.uint32))
        columns["dst_as"] = pa.array(field(42, 44).astype(np.uint32))
    return Decoded(flows=conform(pa.table(columns), keep_extra=False), messages=messages, skips=skips)
