"""Realistic synthetic flow records, generated vectorised.

What makes it realistic enough to exercise reports: a diurnal load curve (busy
afternoons, quiet nights), heavy-tailed (Pareto) flow sizes, Zipf-popular servers,
a service mix on well-known ports, TCP/UDP/ICMP, about a fifth IPv6, biflows whose
reverse direction carries the download.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from flowscope import addresses
from flowscope.schema import conform

TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58

# (proto, server port, share of flows, median bytes from client, median bytes from server)
SERVICES = (
    (TCP, 443, 0.40, 1_800, 60_000),
    (UDP, 443, 0.08, 2_500, 90_000),
    (TCP, 80, 0.12, 900, 25_000),
    (UDP, 53, 0.18, 70, 160),
    (TCP, 22, 0.03, 4_000, 6_000),
    (TCP, 25, 0.03, 12_000, 900),
    (UDP, 123, 0.04, 76, 76),
    (TCP, 993, 0.03, 1_500, 20_000),
    (TCP, 3389, 0.02, 50_000, 400_000),
    (ICMP, 0, 0.07, 84, 84),
)
ASNS = np.array([15169, 13335, 16509, 8075, 32934, 20940, 2906, 3320, 64512, 64513], dtype=np.uint32)


def _diurnal_offsets(rng: np.random.Generator, n: int, seconds: float, start_hour: float) -> np.ndarray:
    """Offsets in [0, seconds) with a daily cycle peaking mid-afternoon (inverse-CDF sampling)."""
    grid = np.linspace(0.0, seconds, 4097)
    hours = (start_hour + grid / 3600.0) % 24
    density = 1.0 + 0.75 * np.sin(2 * np.pi * (hours - 9.0) / 24.0)
    cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2)])
    cdf /= cdf[-1]
    return np.interp(rng.random(n), cdf, grid)


def _pareto(rng: np.random.Generator, median: np.ndarray, alpha: float = 1.3) -> np.ndarray:
    """Heavy-tailed sizes with the given medians (Pareto with shape ``alpha``)."""
    scale = median / (2 ** (1 / alpha))
    return scale * (1 + rng.pareto(alpha, median.shape[0]))


def synthetic_flows(
    flows: int,
    *,
    end: datetime | None = None,
    days: float = 2.0,
    hosts: int = 5_000,
    servers: int = 20_000,
    seed: int = 7,
    batch_rows: int = 500_000,
) -> Iterator[pa.Table]:
    """Yield ``flows`` biflow records spread over ``days`` ending at ``end``, in start-time order (as a
    collector would emit them), in batches."""
    rng = np.random.default_rng(seed)
    end = end or datetime.now(UTC)
    span = days * 86_400
    start_ns = int(end.timestamp() * 1e9) - int(span * 1e9)
    start_hour = ((end.timestamp() - span) % 86_400) / 3600
    shares = np.array([s[2] for s in SERVICES])
    shares /= shares.sum()
    client_v6 = rng.random(hosts) < 0.2
    server_v6 = rng.random(servers) < 0.2
    popularity = 1.0 / np.arange(1, servers + 1) ** 1.1
    popularity /= popularity.sum()
    all_starts = np.sort(start_ns + (_diurnal_offsets(rng, flows, span, start_hour) * 1e9).astype(np.int64))
    for first in range(0, flows, batch_rows):
        n = min(batch_rows, flows - first)
        service = rng.choice(len(SERVICES), n, p=shares)
        proto = np.array([s[0] for s in SERVICES], np.uint8)[service]
        client = rng.integers(0, hosts, n)
        server = rng.choice(servers, n, p=popularity)
        v6 = client_v6[client] & server_v6[server]
        proto = np.where(v6 & (proto == ICMP), ICMPV6, proto).astype(np.uint8)
        starts = all_starts[first : first + n]
        duration = np.where(proto == UDP, rng.lognormal(-2.0, 1.5, n), rng.lognormal(0.5, 1.8, n))
        duration = np.minimum(duration, 1800.0)
        up = _pareto(rng, np.array([s[3] for s in SERVICES], float)[service]).astype(np.uint64)
        down = _pareto(rng, np.array([s[4] for s in SERVICES], float)[service]).astype(np.uint64)
        up_packets = np.maximum(1, up // rng.integers(60, 600, n)).astype(np.uint64)
        down_packets = np.maximum(1, down // rng.integers(400, 1400, n)).astype(np.uint64)
        one_way = (proto == ICMP) & (rng.random(n) < 0.3)
        down = np.where(one_way, 0, down).astype(np.uint64)
        down_packets = np.where(one_way, 0, down_packets).astype(np.uint64)
        icmp = (proto == ICMP) | (proto == ICMPV6)
        sport = np.where(icmp, 0, rng.integers(32768, 61000, n)).astype(np.uint16)
        dport = np.array([s[1] for s in SERVICES], np.uint16)[service]
        flags = np.where(proto == TCP, np.where(rng.random(n) < 0.02, 0x02, 0x1B), 0).astype(np.uint16)
        table = pa.table(
            {
                "type": pa.array(np.full(n, "synthetic")),
                "time_received": pa.array(starts + (duration * 1e9).astype(np.int64), pa.timestamp("ns", "UTC")),
                "time_flow_start": pa.array(starts, pa.timestamp("ns", "UTC")),
                "time_flow_end": pa.array(starts + (duration * 1e9).astype(np.int64), pa.timestamp("ns", "UTC")),
                "sampling_rate": pa.array(np.ones(n, np.uint64)),
                "src_addr": _addresses(client, v6, base_v4=0x0A000000, v6_prefix=0x20010DB8_00010000),
                "dst_addr": _addresses(server, v6, base_v4=0x5DB80000, v6_prefix=0x2A0012F0_00000000),
                "src_port": sport,
                "dst_port": dport,
                "proto": proto,
                "etype": np.where(v6, 0x86DD, 0x0800).astype(np.uint16),
                "bytes": up,
                "packets": up_packets,
                "bytes_rev": down,
                "packets_rev": down_packets,
                "tcp_flags": flags,
                "ip_tos": np.where(dport == 53, 0, np.where(rng.random(n) < 0.05, 0xB8, 0)).astype(np.uint8),
                "in_if": np.full(n, 1, np.uint32),
                "out_if": np.full(n, 2, np.uint32),
                "src_as": np.full(n, 64500, np.uint32),
                "dst_as": ASNS[server % len(ASNS)],
                "icmp_type": np.where(icmp, np.where(v6, 128, 8), 0).astype(np.uint8),
            }
        )
        yield conform(table)


def _addresses(index: np.ndarray, v6: np.ndarray, *, base_v4: int, v6_prefix: int) -> pa.Array:
    """Host number -> an IPv4 address in a /12-ish block, or an IPv6 address in a /64."""
    matrix = np.zeros((index.shape[0], 16), dtype=np.uint8)
    v4_values = (base_v4 + index + 1).astype(">u4").view(np.uint8).reshape(-1, 4)
    matrix[:, 10:12] = 0xFF
    matrix[:, 12:] = v4_values
    v6_rows = np.flatnonzero(v6)
    matrix[v6_rows] = 0
    matrix[v6_rows, :8] = np.array([v6_prefix], ">u8").view(np.uint8)
    matrix[v6_rows, 8:] = (index[v6_rows] + 1).astype(">u8").view(np.uint8).reshape(-1, 8)
    return addresses.from_ipv6_bytes(matrix)
