"""NetFlow v5: a 24-byte header and up to 30 fixed 48-byte records, decoded as one matrix per batch.

Layout per Cisco's NetFlow v5 export format. The header's sampling field holds the mode in
its top 2 bits and the interval in the low 14; an interval of 0 means the exporter did not
say, which is stored as rate 0 (unknown) unless the sampling config supplies one.
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

HEADER, RECORD = 24, 48
VERSION = 5


def decode_v5(datagrams: Datagrams, sampling: SamplingTable) -> Decoded:
    """Decode NetFlow v5 datagrams; malformed ones are counted by reason and reported in the message rows."""
    skips = Skips(unit="datagrams")
    n = len(datagrams)
    counts = np.zeros(n, np.int64)
    status = ["ok"] * n
    headers = np.zeros((n, HEADER), np.uint8)
    bodies = []
    for i, payload in enumerate(datagrams.payloads):
        size = len(payload)
        if size < HEADER:
            status[i] = "truncated NetFlow v5 header"
        else:
            headers[i] = np.frombuffer(payload, np.uint8, HEADER)
            count = int.from_bytes(payload[2:4], "big")
            if HEADER + count * RECORD > size:
                status[i] = "NetFlow v5 record count exceeds the datagram"
            else:
                counts[i] = count
                bodies.append(payload[HEADER : HEADER + count * RECORD])
        if status[i] != "ok":
            skips.add(status[i], example=f"{size} bytes from {addresses.format_one(datagrams.exporters[i].tobytes())}")
    uptime = be_unsigned(headers[:, 4:8]).astype(np.int64)
    secs = be_unsigned(headers[:, 8:12]).astype(np.int64)
    nsecs = be_unsigned(headers[:, 12:16]).astype(np.int64)
    sequence = be_unsigned(headers[:, 16:20])
    domain = be_unsigned(headers[:, 20:22]).astype(np.uint32)  # engine type << 8 | engine id
    interval = (be_unsigned(headers[:, 22:24]) & 0x3FFF).astype(np.uint64)
    messages = pa.table(
        {
            "exporter": addresses.from_ipv6_bytes(datagrams.exporters),
            "version": pa.array(np.full(n, VERSION, np.uint16)),
            "domain": pa.array(domain),
            "sequence": pa.array(sequence),
            "records": pa.array(counts.astype(np.uint32)),
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

    proto = field(38, 39).astype(np.uint8)
    dst_port = field(34, 36).astype(np.uint16)
    not_icmp = ~((proto == 1) | (proto == 58))
    domains = [(datagrams.exporters[i].tobytes(), VERSION, int(domain[i])) for i in range(n)]
    header_rate = interval[row]
    rate, known = sampling.resolve(domains, row, header_rate, None)
    columns = {
        "type": pa.repeat(pa.scalar("netflow_v5"), total),
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
        "tcp_flags": pa.array(field(37, 38).astype(np.uint16)),
        "proto": pa.array(proto),
        "ip_tos": pa.array(field(39, 40).astype(np.uint8)),
        "src_as": pa.array(field(40, 42).astype(np.uint32)),
        "dst_as": pa.array(field(42, 44).astype(np.uint32)),
        "etype": pa.array(np.full(total, 0x0800, np.uint16)),
        # v5 carries ICMP type and code in the destination port
        "icmp_type": pa.array((dst_port >> 8).astype(np.uint8), mask=not_icmp),
        "icmp_code": pa.array((dst_port & 0xFF).astype(np.uint8), mask=not_icmp),
    }
    return Decoded(flows=conform(pa.table(columns), keep_extra=False), messages=messages, skips=skips)
