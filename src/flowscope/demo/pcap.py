"""A synthetic packet capture with a realistic traffic mix, written without a Python object per packet.

Used by ``flowscope demo`` and the metering benchmark. The mix: mostly TCP (web on 443/80,
some SSH and mail) with heavy-tailed flow lengths and a SYN ... FIN life cycle, UDP (DNS
request/response pairs, NTP, QUIC and RTP-like streams), ICMP echo pairs, 10 % IPv6, a few
VLAN-tagged hosts. Clients live in 10.0.0.0/16 (up to /8) and fd00::/64, servers in the benchmarking
ranges 198.18.0.0/15 and 2001:db8::/32. By default frames are captured with a 96-byte snap length,
like ``tcpdump -s 96``: headers complete, payload cut, original lengths kept.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from flowscope.errors import FlowscopeError

SNAPLEN = 96
PCAP_MAGIC_US = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
DEFAULT_START_NS = 1_714_521_600 * 1_000_000_000  # 2024-05-01T00:00:00Z

# (share of flows, IP protocol, server port, relative flow length; 0 = exactly one request and one reply)
_SERVICES = (
    (0.40, 6, 443, 1.0),
    (0.12, 6, 80, 1.0),
    (0.03, 6, 22, 2.0),
    (0.02, 6, 993, 0.5),
    (0.25, 17, 53, 0.0),  # DNS
    (0.03, 17, 123, 0.0),  # NTP
    (0.08, 17, 443, 1.5),  # QUIC
    (0.02, 17, 5004, 3.0),  # RTP-like media
    (0.05, 1, 0, 0.0),  # ICMP echo
)


def _flow_mix(rng: np.random.Generator, flows: int, packets: int, clients: int, servers: int) -> dict[str, np.ndarray]:
    shares = np.array([s[0] for s in _SERVICES])
    service = rng.choice(len(_SERVICES), size=flows, p=shares / shares.sum())
    proto = np.array([s[1] for s in _SERVICES], np.uint8)[service]
    server_port = np.array([s[2] for s in _SERVICES], np.uint16)[service]
    weight = np.array([s[3] for s in _SERVICES])[service]
    pair = weight == 0
    counts = np.where(pair, 2, 3).astype(np.int64)  # TCP/streams: at least handshake-sized
    spare = packets - int(counts.sum())
    if spare < 0:
        raise FlowscopeError(f"{packets} packets are too few for {flows} flows (need at least {int(counts.sum())})")
    heavy = np.where(pair, 0.0, weight * (rng.pareto(1.3, flows) + 1.0))
    if heavy.sum() > 0 and spare:
        counts += rng.multinomial(spare, heavy / heavy.sum())
    else:
        counts[0] += spare
    v6 = rng.random(flows) < 0.10
    client = rng.integers(1, clients, flows)
    server = rng.integers(1, servers, flows)
    return {
        "proto": proto,
        "server_port": server_port,
        "client_port": rng.integers(32_768, 61_000, flows).astype(np.uint16),
        "counts": counts,
        "v6": v6,
        "client": client,
        "server": server,
        "vlan": np.where(client % 50 == 0, 100 + client % 7, 0).astype(np.uint16),
    }


def _addresses(host: np.ndarray, v6: np.ndarray, *, server: bool) -> np.ndarray:
    """(n, 16) bytes: IPv4 addresses in the last four bytes, IPv6 in all sixteen."""
    out = np.zeros((host.size, 16), np.uint8)
    if server:
        v4 = (198 << 24) | (18 << 16) | host  # 198.18.0.0/15
        v6_prefix = [0x20, 0x01, 0x0D, 0xB8]
    else:
        v4 = (10 << 24) | host  # 10.0.0.0/16
        v6_prefix = [0xFD, 0x00]
    out[:, 12:] = v4.astype(">u4").view(np.uint8).reshape(-1, 4)
    six = np.flatnonzero(v6)
    out[six] = 0
    out[six, : len(v6_prefix)] = v6_prefix
    out[six, 12:] = host[six].astype(">u4").view(np.uint8).reshape(-1, 4)
    return out


def _put(buffer: np.ndarray, at: np.ndarray, value: np.ndarray, width: int) -> None:
    """Write ``value`` big-endian, ``width`` bytes, at each offset in ``at``."""
    if width == 1:
        buffer[at] = value
        return
    raw = np.asarray(value).astype(f">u{width}").view(np.uint8).reshape(-1, width)
    for byte in range(width):
        buffer[at + byte] = raw[:, byte]


def _put_bytes(buffer: np.ndarray, at: np.ndarray, matrix: np.ndarray) -> None:
    for column in range(matrix.shape[1]):
        buffer[at + column] = matrix[:, column]


def write_synthetic_pcap(
    path: str | os.PathLike[str],
    *,
    packets: int = 200_000,
    flows: int = 10_000,
    duration: float = 600.0,
    start_ns: int = DEFAULT_START_NS,
    seed: int = 7,
    snaplen: int = SNAPLEN,
    clients: int = 65_000,
    servers: int = 4_000,
) -> dict[str, int]:
    """Write a classic pcap of ``packets`` packets in ``flows`` biflows over ``duration`` seconds.

    Frames are cut at ``snaplen`` bytes (payload bytes are zeros); 65535 keeps whole packets. Each flow's
    client is drawn from ``clients`` hosts (at most 2**24: 10.0.0.0/8) and its server from ``servers`` (at
    most 2**17: 198.18.0.0/15); benchmarks raise both for inputs with high address cardinality.

    Returns the totals a correct meter must reproduce: packets, IP-layer bytes, wire bytes.
    """
    rng = np.random.default_rng(seed)
    if not (2 <= clients <= 1 << 24 and 2 <= servers <= 1 << 17):
        raise FlowscopeError(f"clients must be in 2..{1 << 24} and servers in 2..{1 << 17}")
    mix = _flow_mix(rng, flows, packets, clients, servers)
    counts = mix["counts"]
    flow = np.repeat(np.arange(flows), counts)
    # flow timing: start anywhere, last a heavy-tailed while (some past the active timeout)
    start = rng.uniform(0, duration, flows)
    length = np.minimum(rng.exponential(duration / 20, flows), duration * 1.5 - start)
    length = np.where(counts <= 2, rng.uniform(0.0005, 0.05, flows), length)
    offset = rng.random(packets)
    first = np.zeros(packets, bool)
    first[np.cumsum(counts) - counts] = True
    offset[first] = 0.0
    ts_ns = (start_ns + (start[flow] + offset * length[flow]) * 1e9).astype(np.int64)
    order = np.lexsort((ts_ns, flow))  # within each flow by time: find each flow's first/last packet
    ts_ns, flow = ts_ns[order], flow[order]
    rank = np.arange(packets) - np.repeat(np.cumsum(counts) - counts, counts)
    last = rank == np.repeat(counts - 1, counts)
    by_time = np.argsort(ts_ns, kind="stable")  # the capture's order from here on
    ts_ns, flow, rank, last = ts_ns[by_time], flow[by_time], rank[by_time], last[by_time]

    proto = mix["proto"][flow]
    v6 = mix["v6"][flow]
    pair = counts[flow] == 2
    from_server = np.where(rank == 0, False, np.where(pair | (rank == 1), True, rng.random(packets) < 0.55))
    tcp = proto == 6
    # sizes: IP payload after the transport header
    big = from_server & (rng.random(packets) < 0.7)
    payload = np.where(tcp, np.where(big, rng.integers(1000, 1449, packets), rng.integers(0, 120, packets)), 0)
    payload = np.where(tcp & (rank <= 1), 0, payload)  # SYN and SYN-ACK carry no data
    udp_payload = np.where(mix["server_port"][flow] == 53, np.where(from_server, rng.integers(60, 400, packets),
                           rng.integers(20, 60, packets)), rng.integers(40, 1250, packets))  # fmt: skip
    payload = np.where(proto == 17, udp_payload, payload)
    payload = np.where(proto == 1, 56, payload)
    l4_header = np.select([tcp, proto == 17], [20, 8], 8)
    ip_header = np.where(v6, 40, 20)
    ip_len = (ip_header + l4_header + payload).astype(np.int64)
    vlan = mix["vlan"][flow]
    link_header = 14 + np.where(vlan > 0, 4, 0)
    wire_len = link_header + ip_len
    caplen = np.minimum(wire_len, snaplen)

    record = 16 + caplen
    at = np.zeros(packets, np.int64)
    at[1:] = np.cumsum(record)[:-1]
    at += 24
    buffer = np.zeros(24 + int(record.sum()), np.uint8)
    buffer[:24] = np.frombuffer(
        np.array([PCAP_MAGIC_US], "<u4").tobytes()
        + np.array([2, 4], "<u2").tobytes()
        + np.array([0, 0, snaplen, LINKTYPE_ETHERNET], "<u4").tobytes(),
        np.uint8,
    )
    # record header (little-endian, microseconds)
    seconds, micros = np.divmod(ts_ns // 1000, 1_000_000)
    for field, value in enumerate((seconds, micros, caplen, wire_len)):
        raw = value.astype("<u4").view(np.uint8).reshape(-1, 4)
        for byte in range(4):
            buffer[at + 4 * field + byte] = raw[:, byte]
    frame = at + 16

    client_mac = (0x02_00_00_00_00_00 | mix["client"]).astype(np.uint64)[flow]
    router_mac = np.full(packets, 0x02_AA_BB_CC_DD_01, np.uint64)
    src_mac = np.where(from_server, router_mac, client_mac)
    dst_mac = np.where(from_server, client_mac, router_mac)
    _put(buffer, frame, (dst_mac >> np.uint64(16)).astype(np.uint32), 4)
    _put(buffer, frame + 4, (dst_mac & np.uint64(0xFFFF)).astype(np.uint16), 2)
    _put(buffer, frame + 6, (src_mac >> np.uint64(16)).astype(np.uint32), 4)
    _put(buffer, frame + 10, (src_mac & np.uint64(0xFFFF)).astype(np.uint16), 2)
    ethertype = np.where(v6, 0x86DD, 0x0800).astype(np.uint16)
    tagged = vlan > 0
    _put(buffer, frame + 12, np.where(tagged, 0x8100, ethertype).astype(np.uint16), 2)
    _put(buffer, frame[tagged] + 14, vlan[tagged], 2)
    _put(buffer, frame[tagged] + 16, ethertype[tagged], 2)
    ip = frame + link_header

    client_addr = _addresses(mix["client"], mix["v6"], server=False)[flow]
    server_addr = _addresses(mix["server"], mix["v6"], server=True)[flow]
    src = np.where(from_server[:, None], server_addr, client_addr)
    dst = np.where(from_server[:, None], client_addr, server_addr)
    four = np.flatnonzero(~v6)
    if four.size:
        header = np.zeros((four.size, 20), np.uint8)
        header[:, 0] = 0x45
        header[:, 2:4] = ip_len[four].astype(">u2").view(np.uint8).reshape(-1, 2)
        header[:, 4:6] = (rank[four] & 0xFFFF).astype(">u2").view(np.uint8).reshape(-1, 2)
        header[:, 6] = 0x40  # don't fragment
        header[:, 8] = np.where(from_server[four], 57, 64)
        header[:, 9] = proto[four]
        header[:, 12:16] = src[four, 12:]
        header[:, 16:20] = dst[four, 12:]
        words = header.view(">u2").astype(np.uint32).sum(axis=1)
        words = (words & 0xFFFF) + (words >> 16)
        words = (words & 0xFFFF) + (words >> 16)
        header[:, 10:12] = (~words & 0xFFFF).astype(">u2").view(np.uint8).reshape(-1, 2)
        _put_bytes(buffer, ip[four], header)
    six = np.flatnonzero(v6)
    if six.size:
        header = np.zeros((six.size, 40), np.uint8)
        header[:, 0] = 0x60
        header[:, 4:6] = (ip_len[six] - 40).astype(">u2").view(np.uint8).reshape(-1, 2)
        header[:, 6] = np.where(proto[six] == 1, 58, proto[six])
        header[:, 7] = 64
        header[:, 8:24] = src[six]
        header[:, 24:40] = dst[six]
        _put_bytes(buffer, ip[six], header)
    l4 = ip + ip_header

    ports = np.flatnonzero(proto != 1)
    client_port = mix["client_port"][flow]
    server_port = mix["server_port"][flow]
    _put(buffer, l4[ports], np.where(from_server, server_port, client_port)[ports], 2)
    _put(buffer, l4[ports] + 2, np.where(from_server, client_port, server_port)[ports], 2)
    segments = np.flatnonzero(tcp)
    if segments.size:
        flags = np.where(
            rank == 0, 0x02, np.where(rank == 1, 0x12, np.where(last, 0x11, np.where(payload > 0, 0x18, 0x10)))
        )
        _put(buffer, l4[segments] + 4, (rank[segments] * 1000).astype(np.uint32), 4)
        buffer[l4[segments] + 12] = 0x50
        buffer[l4[segments] + 13] = flags[segments]
        _put(buffer, l4[segments] + 14, np.full(segments.size, 64_240, np.uint16), 2)
    datagrams = np.flatnonzero(proto == 17)
    _put(buffer, l4[datagrams] + 4, (8 + payload[datagrams]).astype(np.uint16), 2)
    echoes = np.flatnonzero(proto == 1)
    if echoes.size:
        request = np.where(v6[echoes], 128, 8)
        buffer[l4[echoes]] = np.where(from_server[echoes], np.where(v6[echoes], 129, 0), request)
        _put(buffer, l4[echoes] + 4, (mix["client"][flow[echoes]] & 0xFFFF).astype(np.uint16), 2)
    buffer.tofile(str(Path(path)))
    return {"packets": packets, "flows": flows, "ip_bytes": int(ip_len.sum()), "wire_bytes": int(wire_len.sum())}
