"""sFlow v5 (sflow.org/sflow_version_5.txt) datagrams -> flows, interface counters and message rows.

Every flow sample (compact or expanded) becomes one flow row: one sampled packet,
``packets`` 1, ``bytes`` the sampled frame's length, ``sampling_rate`` the sample's rate.
Its fields come from the sampled packet header (decoded by the capture layer decoder,
so sFlow and pcaps agree on every header), the IPv4/IPv6/Ethernet data records when no
header was sampled, and the extended switch (VLAN), router (next hop) and gateway (AS)
records. Generic interface counter records become rows of the ``interface_counters``
lake table. The exporter of an sFlow row is its agent address (the datagram's own
notion of who sampled it), not the UDP source.

Nothing here loops per sample or record: the three nesting levels are walked for the
whole batch at once (``flowscope.collect.xdr``) and each record kind is decoded with
numpy gathers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from flowscope import addresses
from flowscope.capture.layers import LINK_ETHERNET, LINK_IPV4, LINK_IPV6, decode_frames
from flowscope.collect.datagrams import MESSAGE_SCHEMA, Datagrams, Decoded
from flowscope.collect.xdr import Buffer, Children, walk
from flowscope.diagnostics import Skips
from flowscope.schema import INTERFACE_COUNTERS_SCHEMA, TIMESTAMP, conform

FLOW_TYPE = "sflow_v5"
VERSION = 5

# Sample formats (enterprise 0).
FLOW_SAMPLE = 1
COUNTER_SAMPLE = 2
EXPANDED_FLOW_SAMPLE = 3
EXPANDED_COUNTER_SAMPLE = 4
DISCARDED_PACKET = 5  # sFlow drop notifications (sflow.org/sflow_drops.txt): packets dropped, not traffic

# Flow record formats (enterprise 0).
RAW_HEADER = 1
ETHERNET_DATA = 2
IPV4_DATA = 3
IPV6_DATA = 4
EXTENDED_SWITCH = 1001
EXTENDED_ROUTER = 1002
EXTENDED_GATEWAY = 1003

# Counter record formats (enterprise 0).
GENERIC_INTERFACE = 1
GENERIC_INTERFACE_SIZE = 88

# sampled_header.header_protocol -> pcap link type understood by the frame decoder.
HEADER_LINKTYPES = {1: LINK_ETHERNET, 11: LINK_IPV4, 12: LINK_IPV6}

# Interface value meaning "internal/unknown interface" (sFlow v5 section "Input/output port information").
LOCAL_INTERFACE = 0x3FFFFFFF

# Message rows: 0 = datagram sequence, 1 = flow-sample sequence, 2 = counter-sample sequence per source.
STREAM_DATAGRAM, STREAM_FLOW_SAMPLES, STREAM_COUNTER_SAMPLES = 0, 1, 2
SFLOW_MESSAGE_SCHEMA = pa.schema([*MESSAGE_SCHEMA, pa.field("stream", pa.uint8()), pa.field("source", pa.uint64())])

DATAGRAM_STATUSES = (
    "ok",
    "sFlow datagram shorter than its header",
    "not sFlow version 5",
    "sFlow agent address type unknown",
    "sFlow sample list cut short",
)
OK, SHORT, BAD_VERSION, BAD_AGENT, CUT_SHORT = range(len(DATAGRAM_STATUSES))

# Byte offset of each ``interface_counters`` column in a generic interface counter record (sFlow v5
# ``if_counters``); the columns' names and types are the catalogue's (flowscope.schema).
GENERIC_INTERFACE_OFFSETS = {
    "if_index": 0,
    "if_type": 4,
    "if_speed": 8,
    "if_direction": 16,
    "if_status": 20,
    "in_octets": 24,
    "in_ucast_pkts": 32,
    "in_multicast_pkts": 36,
    "in_broadcast_pkts": 40,
    "in_discards": 44,
    "in_errors": 48,
    "in_unknown_protos": 52,
    "out_octets": 56,
    "out_ucast_pkts": 64,
    "out_multicast_pkts": 68,
    "out_broadcast_pkts": 72,
    "out_discards": 76,
    "out_errors": 80,
    "promiscuous_mode": 84,
}


@dataclass
class _Header:
    """Per-datagram header fields."""

    status: np.ndarray
    version: np.ndarray
    agent: np.ndarray
    sub_agent: np.ndarray
    sequence: np.ndarray
    samples_at: np.ndarray
    sample_count: np.ndarray


def decode_sflow(datagrams: Datagrams, state: object = None) -> Decoded:
    """Decode a batch of sFlow v5 datagrams (``state`` is unused: sFlow needs no templates)."""
    skips = Skips(unit="sFlow items")
    buf = Buffer.join(datagrams.payloads)
    header = _read_headers(buf, datagrams.exporters)
    samples = walk(buf, header.samples_at, header.sample_count, buf.ends)
    header.status[samples.truncated & (header.status == OK)] = CUT_SHORT

    enterprise = samples.format >> 12
    kind = np.where(enterprise == 0, samples.format & 0xFFF, 0)
    known = np.isin(kind, (FLOW_SAMPLE, COUNTER_SAMPLE, EXPANDED_FLOW_SAMPLE, EXPANDED_COUNTER_SAMPLE))
    skips.add("sFlow discarded-packet samples (drop notifications, not traffic)", int((kind == DISCARDED_PACKET).sum()))
    unknown = ~known & (kind != DISCARDED_PACKET)
    if unknown.any():
        first = int(np.flatnonzero(unknown)[0])
        example = f"enterprise {int(enterprise[first])} format {int(samples.format[first]) & 0xFFF}"
        skips.add("sFlow samples of an unknown format", int(unknown.sum()), example)

    flows, flow_sequences = _flow_samples(
        buf, samples.select(np.isin(kind, (FLOW_SAMPLE, EXPANDED_FLOW_SAMPLE))), header, datagrams.received_ns, skips
    )
    counters, counter_sequences = _counter_samples(
        buf,
        samples.select(np.isin(kind, (COUNTER_SAMPLE, EXPANDED_COUNTER_SAMPLE))),
        header,
        datagrams.received_ns,
        skips,
    )
    _count_bad_datagrams(header.status, skips)
    records = np.bincount(flow_sequences.parent, minlength=len(datagrams)).astype(np.uint32)
    messages = pa.concat_tables(
        [
            _message_rows(
                header,
                np.arange(len(datagrams)),
                header.sequence,
                records,
                datagrams.received_ns,
                STREAM_DATAGRAM,
                np.zeros(len(datagrams), np.uint64),
            ),
            flow_sequences.rows(header, datagrams.received_ns, STREAM_FLOW_SAMPLES),
            counter_sequences.rows(header, datagrams.received_ns, STREAM_COUNTER_SAMPLES),
        ]
    )
    return Decoded(flows=flows, messages=messages, counters=counters, skips=skips)


def _read_headers(buf: Buffer, sources: np.ndarray) -> _Header:
    starts = buf.starts
    size = buf.ends - starts
    version = buf.u32(starts)
    agent_type = buf.u32(starts + 4)
    agent_len = np.select([agent_type == 1, agent_type == 2], [4, 16], 0).astype(np.int64)
    status = np.full(starts.shape[0], OK, np.int8)
    status[agent_len == 0] = BAD_AGENT
    status[version != VERSION] = BAD_VERSION
    status[size < 24 + agent_len] = SHORT
    valid = status == OK

    agent = np.array(sources, dtype=np.uint8, copy=True)
    v4 = valid & (agent_len == 4)
    agent[v4, :10] = 0
    agent[v4, 10:12] = 0xFF
    agent[v4, 12:] = buf.rows(starts[v4] + 8, 4)
    v6 = valid & (agent_len == 16)
    agent[v6] = buf.rows(starts[v6] + 8, 16)

    after_agent = starts + 8 + agent_len
    return _Header(
        status=status,
        version=np.where(size >= 4, np.minimum(version, 0xFFFF), 0).astype(np.uint16),
        agent=agent,
        sub_agent=np.where(valid, buf.u32(after_agent), 0).astype(np.uint32),
        sequence=np.where(valid, buf.u32(after_agent + 4), 0).astype(np.uint32),
        samples_at=after_agent + 16,
        sample_count=np.where(valid, buf.u32(after_agent + 12), 0).astype(np.int64),
    )


@dataclass
class _Sequences:
    """Sample sequence numbers per source, for loss accounting (one row per sample)."""

    parent: np.ndarray
    source: np.ndarray
    sequence: np.ndarray

    def rows(self, header: _Header, received_ns: np.ndarray, stream: int) -> pa.Table:
        ones = np.ones(self.parent.shape[0], np.uint32)
        return _message_rows(header, self.parent, self.sequence, ones, received_ns, stream, self.source)


def _message_rows(
    header: _Header,
    parent: np.ndarray,
    sequence: np.ndarray,
    records: np.ndarray,
    received_ns: np.ndarray,
    stream: int,
    source: np.ndarray,
) -> pa.Table:
    status = header.status[parent] if stream == STREAM_DATAGRAM else np.zeros(parent.shape[0], np.int8)
    status_text = pa.DictionaryArray.from_arrays(pa.array(status, pa.int8()), pa.array(DATAGRAM_STATUSES))
    return pa.table(
        {
            "exporter": addresses.from_ipv6_bytes(header.agent[parent]),
            "version": pa.array(header.version[parent], pa.uint16()),
            "domain": pa.array(header.sub_agent[parent], pa.uint32()),
            "sequence": pa.array(sequence.astype(np.uint64), pa.uint64()),
            "records": pa.array(records.astype(np.uint32), pa.uint32()),
            # flow samples of a datagram; the per-sample sequence rows count steps, not flows
            "flows": pa.array(records.astype(np.uint32) * np.uint32(stream == STREAM_DATAGRAM), pa.uint32()),
            "received_ns": pa.array(received_ns[parent], pa.int64()),
            "status": status_text.cast(pa.string()),
            "stream": pa.array(np.full(parent.shape[0], stream, np.uint8), pa.uint8()),
            "source": pa.array(source.astype(np.uint64), pa.uint64()),
        },
        schema=SFLOW_MESSAGE_SCHEMA,
    )


def _count_bad_datagrams(status: np.ndarray, skips: Skips) -> None:
    counts = np.bincount(status, minlength=len(DATAGRAM_STATUSES))
    for code in (SHORT, BAD_VERSION, BAD_AGENT):
        skips.add(DATAGRAM_STATUSES[code] + " (datagrams)", int(counts[code]))
    skips.add(DATAGRAM_STATUSES[CUT_SHORT] + " (datagrams, samples before the cut kept)", int(counts[CUT_SHORT]))


def _source_key(source_type: np.ndarray, source_index: np.ndarray) -> np.ndarray:
    return (source_type.astype(np.uint64) << np.uint64(32)) | source_index.astype(np.uint64)


def _interface(value_format: np.ndarray, value: np.ndarray) -> np.ndarray:
    """ifIndex of an input/output port; 0 for the local interface, discards and multiple ports."""
    return np.where((value_format == 0) & (value != LOCAL_INTERFACE), value, 0).astype(np.uint32)


def _drop_short(samples: Children, kinds: np.ndarray, minimum: dict[int, int], skips: Skips, what: str) -> Children:
    need = np.select([kinds == k for k in minimum], list(minimum.values()), 0)
    short = samples.length < need
    skips.add(f"sFlow {what} samples shorter than their fixed fields", int(short.sum()))
    return samples.select(~short)


def _flow_samples(
    buf: Buffer, samples: Children, header: _Header, received_ns: np.ndarray, skips: Skips
) -> tuple[pa.Table, _Sequences]:
    """One flow row per flow sample (compact or expanded)."""
    kinds = _kinds_of(samples)
    samples = _drop_short(samples, kinds, {FLOW_SAMPLE: 32, EXPANDED_FLOW_SAMPLE: 44}, skips, "flow")
    kinds = _kinds_of(samples)
    body = samples.body
    expanded = kinds == EXPANDED_FLOW_SAMPLE
    compact_source = buf.u32(body + 4)
    compact_in = buf.u32(body + 20)
    compact_out = buf.u32(body + 24)
    source = np.where(
        expanded,
        _source_key(buf.u32(body + 4), buf.u32(body + 8)),
        _source_key(compact_source >> 24, compact_source & 0xFFFFFF),
    )
    shift = np.where(expanded, 4, 0)  # expanded samples split the source id into two words
    rate = buf.u32(body + 8 + shift)
    in_if = np.where(
        expanded,
        _interface(buf.u32(body + 24), buf.u32(body + 28)),
        _interface(compact_in >> 30, compact_in & LOCAL_INTERFACE),
    )
    out_if = np.where(
        expanded,
        _interface(buf.u32(body + 32), buf.u32(body + 36)),
        _interface(compact_out >> 30, compact_out & LOCAL_INTERFACE),
    )
    record_count = np.where(expanded, buf.u32(body + 40), buf.u32(body + 28))
    records_at = body + np.where(expanded, 44, 32)
    sequences = _Sequences(samples.parent, source, buf.u32(body))

    records = walk(buf, records_at, record_count, body + samples.length)
    skips.add("sFlow flow samples with a record list cut short (earlier records kept)", int(records.truncated.sum()))
    fields = _FlowFields(samples.parent.shape[0])
    fields.apply_records(buf, records, skips)

    d = samples.parent
    times = pa.array(received_ns[d], pa.int64()).cast(TIMESTAMP)
    table = pa.table(
        {
            "type": pa.repeat(pa.scalar(FLOW_TYPE), d.shape[0]),
            "time_received": times,
            "time_flow_start": times,
            "time_flow_end": times,
            "sampler_address": addresses.from_ipv6_bytes(header.agent[d]),
            "observation_domain_id": pa.array(header.sub_agent[d]),
            "sequence_num": pa.array(header.sequence[d]),
            "sampling_rate": pa.array(rate.astype(np.uint64)),
            "in_if": pa.array(in_if),
            "out_if": pa.array(out_if),
            "packets": pa.array(np.ones(d.shape[0], np.uint64)),
            **fields.columns(),
        }
    )
    return conform(table), sequences


def _kinds_of(samples: Children) -> np.ndarray:
    return samples.format & 0xFFF


class _FlowFields:
    """Per-flow-sample columns filled from its records; later sources of a field override earlier ones."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.src = np.zeros((n, 16), np.uint8)
        self.dst = np.zeros((n, 16), np.uint8)
        self.has_addr = np.zeros(n, bool)
        self.next_hop = np.zeros((n, 16), np.uint8)
        self.has_next_hop = np.zeros(n, bool)
        self.bytes = np.zeros(n, np.uint64)
        self.ints = {
            name: np.zeros(n, dtype)
            for name, dtype in (
                ("src_port", np.uint16),
                ("dst_port", np.uint16),
                ("proto", np.uint8),
                ("etype", np.uint16),
                ("tcp_flags", np.uint16),
                ("ip_tos", np.uint8),
                ("ip_ttl", np.uint8),
                ("icmp_type", np.uint8),
                ("icmp_code", np.uint8),
                ("src_mac", np.uint64),
                ("dst_mac", np.uint64),
                ("src_as", np.uint32),
                ("dst_as", np.uint32),
            )
        }
        self.header_vlan = np.zeros(n, np.uint16)
        self.src_vlan = np.zeros(n, np.uint32)
        self.dst_vlan = np.zeros(n, np.uint32)

    def apply_records(self, buf: Buffer, records: Children, skips: Skips) -> None:
        enterprise0 = (records.format >> 12) == 0
        kind = np.where(enterprise0, records.format & 0xFFF, 0)
        # Order matters: the sampled header is the most exact source, so it is applied last.
        for fmt, minimum, apply in (
            (ETHERNET_DATA, 24, self._ethernet),
            (IPV4_DATA, 32, self._ipv4),
            (IPV6_DATA, 56, self._ipv6),
            (EXTENDED_SWITCH, 16, self._switch),
            (EXTENDED_GATEWAY, 24, self._gateway),
            (EXTENDED_ROUTER, 16, self._router),
            (RAW_HEADER, 16, self._raw_header),
        ):
            chosen = kind == fmt
            short = chosen & (records.length < minimum)
            skips.add(f"sFlow flow records (format {fmt}) shorter than their fixed fields", int(short.sum()))
            chosen &= ~short
            if chosen.any():
                apply(buf, records.select(chosen), skips)

    def _ethernet(self, buf: Buffer, rec: Children, skips: Skips) -> None:
        rows, at = rec.parent, rec.body
        self.bytes[rows] = buf.u32(at)
        self.ints["src_mac"][rows] = buf.mac(at + 4)
        self.ints["dst_mac"][rows] = buf.mac(at + 12)
        self.ints["etype"][rows] = buf.u32(at + 20) & 0xFFFF

    def _ip(self, buf: Buffer, rec: Children, width: int, etype: int) -> None:
        rows, at = rec.parent, rec.body
        ports_at = at + 8 + 2 * width
        self.bytes[rows] = buf.u32(at)
        self.ints["proto"][rows] = buf.u32(at + 4) & 0xFF
        self.ints["etype"][rows] = etype
        self.ints["src_port"][rows] = buf.u32(ports_at) & 0xFFFF
        self.ints["dst_port"][rows] = buf.u32(ports_at + 4) & 0xFFFF
        self.ints["tcp_flags"][rows] = buf.u32(ports_at + 8) & 0xFF
        self.ints["ip_tos"][rows] = buf.u32(ports_at + 12) & 0xFF
        if width == 4:
            self.src[rows] = _mapped(buf.rows(at + 8, 4))
            self.dst[rows] = _mapped(buf.rows(at + 12, 4))
        else:
            self.src[rows] = buf.rows(at + 8, 16)
            self.dst[rows] = buf.rows(at + 24, 16)
        self.has_addr[rows] = True

    def _ipv4(self, buf: Buffer, rec: Children, skips: Skips) -> None:
        self._ip(buf, rec, 4, 0x0800)

    def _ipv6(self, buf: Buffer, rec: Children, skips: Skips) -> None:
        self._ip(buf, rec, 16, 0x86DD)

    def _switch(self, buf: Buffer, rec: Children, skips: Skips) -> None:
        self.src_vlan[rec.parent] = buf.u32(rec.body)
        self.dst_vlan[rec.parent] = buf.u32(rec.body + 8)

    def _next_hop(self, buf: Buffer, rec: Children, skips: Skips, what: str) -> tuple[Children, np.ndarray]:
        """Read the leading next-hop address; returns the records that hold one and its length (4 or 16)."""
        kind = buf.u32(rec.body)
        width = np.select([kind == 1, kind == 2], [4, 16], 0).astype(np.int64)
        bad = (width == 0) | (rec.length < 4 + width + 8)
        skips.add(f"sFlow extended {what} records with a bad next-hop address", int(bad.sum()))
        rec, width = rec.select(~bad), width[~bad]
        v4 = width == 4
        self.next_hop[rec.parent[v4]] = _mapped(buf.rows(rec.body[v4] + 4, 4))
        self.next_hop[rec.parent[~v4]] = buf.rows(rec.body[~v4] + 4, 16)
        self.has_next_hop[rec.parent] = True
        return rec, width

    def _router(self, buf: Buffer, rec: Children, skips: Skips) -> None:
        self._next_hop(buf, rec, skips, "router")

    def _gateway(self, buf: Buffer, rec: Children, skips: Skips) -> None:
        rec, width = self._next_hop(buf, rec, skips, "gateway")
        at = rec.body + 4 + width
        router_as = buf.u32(at)
        source_as = buf.u32(at + 4)
        # A zero AS means "this router's own AS" (locally originated or delivered routes).
        self.ints["src_as"][rec.parent] = np.where(source_as > 0, source_as, router_as)
        last_as = _last_path_as(buf, at + 16, buf.u32(at + 12), rec.body + rec.length)
        self.ints["dst_as"][rec.parent] = np.where(last_as >= 0, last_as, router_as)

    def _raw_header(self, buf: Buffer, rec: Children, skips: Skips) -> None:
        at = rec.body
        protocol = buf.u32(at)
        frame_length = buf.u32(at + 4)
        header_length = buf.u32(at + 12).astype(np.int64)
        fits = 16 + header_length <= rec.length
        skips.add("sFlow sampled headers longer than their record", int((~fits).sum()))
        linktype = np.zeros(protocol.shape[0], np.int64)
        for header_protocol, link in HEADER_LINKTYPES.items():
            linktype[protocol == header_protocol] = link
        unknown = fits & (linktype == 0)
        if unknown.any():
            example = f"header_protocol {int(protocol[np.flatnonzero(unknown)[0]])}"
            skips.add(
                "sFlow sampled headers of an undecoded protocol (flow kept without header fields)",
                int(unknown.sum()),
                example,
            )
        self.bytes[rec.parent[fits]] = frame_length[fits]  # replaced by the IP length below when IP
        decodable = fits & (linktype != 0)
        rows = rec.parent[decodable]
        frame_skips = Skips(unit="sampled headers")
        packets = decode_frames(
            buf.data,
            at[decodable] + 16,
            header_length[decodable],
            frame_length[decodable],
            linktype[decodable],
            np.arange(rows.shape[0], dtype=np.int64),
            tunnels="outer",
            skips=frame_skips,
            keep_non_ip=True,
        )
        for reason, count in frame_skips.counts.items():
            skips.add(f"sFlow sampled header: {reason} (flow kept)", count, frame_skips.examples.get(reason))
        rows = rows[packets.ts_ns]
        ip = packets.ip_version > 0
        ethernet = linktype[decodable][packets.ts_ns] == LINK_ETHERNET
        for name in ("src_mac", "dst_mac"):
            self.ints[name][rows[ethernet]] = getattr(packets, name)[ethernet]
        self.ints["etype"][rows] = packets.etype
        self.header_vlan[rows] = packets.vlan_id
        ip_rows = rows[ip]
        self.bytes[ip_rows] = packets.ip_len[ip]
        self.src[ip_rows] = packets.src_addr[ip]
        self.dst[ip_rows] = packets.dst_addr[ip]
        self.has_addr[ip_rows] = True
        for name in ("src_port", "dst_port", "proto", "tcp_flags", "ip_tos", "ip_ttl", "icmp_type", "icmp_code"):
            self.ints[name][ip_rows] = getattr(packets, name)[ip]

    def columns(self) -> dict[str, pa.Array]:
        vlan = np.where(
            _is_vlan(self.src_vlan), self.src_vlan, np.where(_is_vlan(self.dst_vlan), self.dst_vlan, self.header_vlan)
        )
        return {
            "src_addr": addresses.from_ipv6_bytes(self.src, self.has_addr),
            "dst_addr": addresses.from_ipv6_bytes(self.dst, self.has_addr),
            "next_hop": addresses.from_ipv6_bytes(self.next_hop, self.has_next_hop),
            "bytes": pa.array(self.bytes),
            "vlan_id": pa.array(vlan.astype(np.uint16)),
            **{name: pa.array(values) for name, values in self.ints.items()},
        }


def _is_vlan(values: np.ndarray) -> np.ndarray:
    """802.1Q ids 1-4094 (switches report 0xFFFFFFFF for "unknown")."""
    return (values >= 1) & (values <= 4094)


def _mapped(v4: np.ndarray) -> np.ndarray:
    out = np.zeros((v4.shape[0], 16), np.uint8)
    out[:, 10:12] = 0xFF
    out[:, 12:] = v4
    return out


def _last_path_as(buf: Buffer, starts: np.ndarray, segment_counts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The last AS number of each AS path (-1 when the path is empty): the destination AS.

    A path is a list of (type u32, count u32, count x AS u32) segments; like ``walk``, the
    loop runs once per segment position for all paths together.
    """
    last = np.full(starts.shape[0], -1, np.int64)
    cursor = starts.astype(np.int64)
    left = segment_counts.astype(np.int64)
    active = np.flatnonzero(left > 0)
    while active.size:
        count = buf.u32(cursor[active] + 4).astype(np.int64)
        end = cursor[active] + 8 + 4 * count
        fits = end <= ends[active]
        active, count, end = active[fits], count[fits], end[fits]
        has = count > 0
        last[active[has]] = buf.u32(end[has] - 4)
        cursor[active] = end
        left[active] -= 1
        active = active[left[active] > 0]
    return last


def _counter_samples(
    buf: Buffer, samples: Children, header: _Header, received_ns: np.ndarray, skips: Skips
) -> tuple[pa.Table, _Sequences]:
    """One ``interface_counters`` row per generic interface counter record."""
    kinds = _kinds_of(samples)
    samples = _drop_short(samples, kinds, {COUNTER_SAMPLE: 12, EXPANDED_COUNTER_SAMPLE: 16}, skips, "counter")
    expanded = _kinds_of(samples) == EXPANDED_COUNTER_SAMPLE
    body = samples.body
    compact_source = buf.u32(body + 4)
    source_type = np.where(expanded, buf.u32(body + 4), compact_source >> 24)
    source_index = np.where(expanded, buf.u32(body + 8), compact_source & 0xFFFFFF)
    sequence = buf.u32(body)
    sequences = _Sequences(samples.parent, _source_key(source_type, source_index), sequence)
    records = walk(
        buf,
        body + np.where(expanded, 16, 12),
        np.where(expanded, buf.u32(body + 12), buf.u32(body + 8)),
        body + samples.length,
    )
    skips.add("sFlow counter samples with a record list cut short (earlier records kept)", int(records.truncated.sum()))
    generic = (records.format == GENERIC_INTERFACE) & (records.length >= GENERIC_INTERFACE_SIZE)
    skips.add(
        "sFlow generic interface counter records too short",
        int(((records.format == GENERIC_INTERFACE) & ~generic).sum()),
    )
    records = records.select(generic)
    sample = records.parent
    d = samples.parent[sample]
    columns: dict[str, pa.Array] = {
        "time_received": pa.array(received_ns[d], pa.int64()).cast(TIMESTAMP),
        "sampler_address": addresses.from_ipv6_bytes(header.agent[d]),
        "sub_agent_id": pa.array(header.sub_agent[d], pa.uint32()),
        "sequence_num": pa.array(sequence[sample], pa.uint32()),
        "source_id_type": pa.array(source_type[sample].astype(np.uint32)),
        "source_id_index": pa.array(source_index[sample].astype(np.uint32)),
    }
    for name, offset in GENERIC_INTERFACE_OFFSETS.items():
        kind = INTERFACE_COUNTERS_SCHEMA.field(name).type
        read = buf.u64 if kind == pa.uint64() else buf.u32
        columns[name] = pa.array(read(records.body + offset), kind)
    return pa.table(columns, schema=INTERFACE_COUNTERS_SCHEMA), sequences
