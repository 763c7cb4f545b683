"""Decoding the records of nfdump data blocks into flow-schema columns, vectorised by layout.

A V3 flow record is a 12-byte header followed by extension elements, each with its own
(type, length) header. Records with the same element sequence have the same byte layout,
so a run of consecutive same-layout records is one numpy structured array viewed straight
on the block (no copy, no Python per record). The Python loop runs once per run of
same-layout records, which nfcapd writes back to back (one exporter, one template).
Element layouts are from nfdump's nfxV3.h (see docs/NFDUMP.md).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope import addresses
from flowscope.diagnostics import Skips
from flowscope.schema import ADDRESS, TIMESTAMP

V3_RECORD = 11
EXPORTER_INFO = 7
SAMPLER = 15
# Records that carry no flow: exporter statistics, legacy sampler, NBAR / interface / VRF name tables.
METADATA_RECORDS = frozenset({8, 9, 12, 13, 14})
LEGACY_FLOW_RECORDS = frozenset({1, 2, 5, 6, 10})

_V3_HEADER = 12
_ELEMENT_HEADER = struct.Struct("<HH")
_EXPORTER_INFO = struct.Struct("<I16sHHI")
_SAMPLER = struct.Struct("<HHqII")

_BYTES16 = ("u1", (16,))

# element id -> (minimum length including its 4-byte header, {field: (offset in element data, dtype)})
ELEMENTS: dict[int, tuple[int, dict[str, tuple[int, object]]]] = {
    1: (
        52,
        {
            "msec_first": (0, "<u8"),
            "msec_last": (8, "<u8"),
            "msec_received": (16, "<u8"),
            "in_packets": (24, "<u8"),
            "in_bytes": (32, "<u8"),
            "src_port": (40, "<u2"),
            "dst_port": (42, "<u2"),
            "proto": (44, "u1"),
            "tcp_flags": (45, "u1"),
            "src_tos": (47, "u1"),
        },
    ),
    2: (12, {"src4": (0, "<u4"), "dst4": (4, "<u4")}),
    3: (36, {"src6": (0, _BYTES16), "dst6": (16, _BYTES16)}),
    4: (16, {"input": (0, "<u4"), "output": (4, "<u4")}),
    5: (28, {"out_packets": (8, "<u8"), "out_bytes": (16, "<u8")}),
    6: (12, {"src_vlan": (0, "<u4")}),
    7: (12, {"src_as": (0, "<u4"), "dst_as": (4, "<u4")}),
    10: (8, {"next_hop4": (0, "<u4")}),
    11: (20, {"next_hop6": (0, _BYTES16)}),
    12: (8, {"router4": (0, "<u4")}),
    13: (20, {"router6": (0, _BYTES16)}),
    15: (
        36,
        {"in_src_mac": (0, "<u8"), "out_dst_mac": (8, "<u8"), "in_dst_mac": (16, "<u8"), "out_src_mac": (24, "<u8")},
    ),
}
_HEADER_FIELDS: dict[str, tuple[int, object]] = {
    "exporter_sysid": (8, "<u2"),
    "flags": (10, "u1"),
    "nfversion": (11, "u1"),
}
V3_FLAG_SAMPLED = 2

# nfdump stores IPv6 addresses as two host-order 64-bit words: reverse each half for network order.
_V6_ORDER = np.array([7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8])
_V4_MAPPED_LOW = np.uint64(0xFFFF_0000_0000)  # ::ffff:0:0/96 in the low 64 bits of an address
# The flow schema's source kinds: the export protocol nfcapd received the record with, else "nfcapd".
_RECORD_TYPES = {1: "netflow_v1", 5: "netflow_v5", 7: "netflow_v7", 9: "netflow_v9", 10: "ipfix"}
_TYPE_NAMES = pa.array([_RECORD_TYPES.get(version, "nfcapd") for version in range(256)], pa.string())


@dataclass(frozen=True)
class Layout:
    """One V3 record layout: its size, the bytes that identify it, and a structured dtype over it."""

    size: int
    signature_positions: np.ndarray
    signature_values: np.ndarray
    dtype: np.dtype
    elements: frozenset[int]


class CorruptRecord(ValueError):
    pass


def _layout_of(block: bytes, pos: int, size: int) -> Layout:
    """Walk one record's element headers (once per run) and build its layout."""
    if size < _V3_HEADER:
        raise CorruptRecord(f"V3 record of {size} bytes")
    (num_elements,) = struct.unpack_from("<H", block, pos + 4)
    positions = [0, 1, 2, 3, 4, 5]
    names: list[str] = []
    formats: list[object] = []
    offsets: list[int] = []
    for name, (offset, dtype) in _HEADER_FIELDS.items():
        names.append(name)
        formats.append(dtype)
        offsets.append(offset)
    present: set[int] = set()
    cursor = _V3_HEADER
    for _ in range(num_elements):
        if cursor + 4 > size:
            raise CorruptRecord("element header beyond record end")
        element, length = _ELEMENT_HEADER.unpack_from(block, pos + cursor)
        if length < 4 or cursor + length > size:
            raise CorruptRecord(f"element {element} of length {length} does not fit the record")
        positions.extend(range(cursor, cursor + 4))
        known = ELEMENTS.get(element)
        if known is not None and length >= known[0] and element not in present:
            present.add(element)
            for name, (offset, dtype) in known[1].items():
                names.append(name)
                formats.append(dtype)
                offsets.append(cursor + 4 + offset)
        cursor += length
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": size})
    array = np.frombuffer(block, dtype=np.uint8, count=size, offset=pos)
    index = np.array(positions, dtype=np.intp)
    return Layout(size, index, array[index].copy(), dtype, frozenset(present))


def _run_length(arr: np.ndarray, pos: int, layout: Layout, limit: int) -> int:
    """How many records from ``pos`` share ``layout`` (galloping, vectorised per step)."""
    size = layout.size
    available = min(limit, (len(arr) - pos) // size)
    count = 1
    step = 16
    while count < available:
        m = min(step, available - count)
        start = pos + count * size
        rows = arr[start : start + m * size].reshape(m, size)[:, layout.signature_positions]
        same = (rows == layout.signature_values).all(axis=1)
        if same.all():
            count += m
            step *= 2
            continue
        return count + int(same.argmin())
    return count


@dataclass
class FileState:
    """Per-file tables records refer to (exporters and samplers by sysid), and the layouts seen so far."""

    layouts: list[Layout] = field(default_factory=list)
    address: dict[int, bytes] = field(default_factory=dict)
    domain: dict[int, int] = field(default_factory=dict)
    sampling: dict[int, int] = field(default_factory=dict)

    def find_layout(self, arr: np.ndarray, pos: int, size: int) -> Layout | None:
        for layout in self.layouts:
            if layout.size == size and (arr[pos + layout.signature_positions] == layout.signature_values).all():
                return layout
        return None

    def add_layout(self, layout: Layout) -> Layout:
        self.layouts.append(layout)
        return layout

    def add_exporter(self, block: bytes, pos: int, size: int) -> None:
        if size < 4 + _EXPORTER_INFO.size:
            raise CorruptRecord("short exporter record")
        _, ip, family, sysid, ident = _EXPORTER_INFO.unpack_from(block, pos + 4)
        if family == 2:  # AF_INET: the address is the host-order word at bytes 8..11
            v4 = struct.unpack_from("<I", ip, 8)[0]
            self.address[sysid] = bytes(10) + b"\xff\xff" + v4.to_bytes(4, "big")
        else:
            self.address[sysid] = ip[7::-1] + ip[15:7:-1]
        self.domain[sysid] = ident

    def add_sampler(self, block: bytes, pos: int, size: int) -> None:
        if size < 4 + _SAMPLER.size:
            raise CorruptRecord("short sampler record")
        sysid, _algorithm, ident, packet_interval, space_interval = _SAMPLER.unpack_from(block, pos + 4)
        if ident < 0 and packet_interval:  # the exporter-wide (generic / default) sampler
            self.sampling[sysid] = (packet_interval + space_interval) // packet_interval

    def lookup(self, table: Mapping[int, object], sysid: np.ndarray) -> tuple[list[object], np.ndarray]:
        """The table's values (None last, for unknown sysids) and each record's index into them."""
        keys = sorted(table)
        size = max(keys[-1] if keys else 0, int(sysid.max(initial=0))) + 1
        position = np.full(size, len(keys), np.int32)
        position[keys] = np.arange(len(keys), dtype=np.int32)
        return [*(table[k] for k in keys), None], position[sysid]


@dataclass
class Part:
    """Records of one layout from one block: a structured view and the ordinals of its records."""

    layout: Layout
    records: np.ndarray
    ordinals: np.ndarray


def walk_block(block: bytes, num_records: int, state: FileState, skips: Skips, first_ordinal: int) -> list[Part]:
    """Split a decompressed block into same-layout runs; metadata records update ``state``."""
    arr = np.frombuffer(block, dtype=np.uint8)
    parts: list[Part] = []
    pos = 0
    seen = 0
    ordinal = first_ordinal
    end = len(block)
    while pos + 4 <= end and seen < num_records:
        rtype, size = struct.unpack_from("<HH", block, pos)
        try:
            if size < 4 or pos + size > end:
                raise CorruptRecord(f"record size {size} at offset {pos} exceeds the block")
            if rtype == V3_RECORD:
                layout = state.find_layout(arr, pos, size) or state.add_layout(_layout_of(block, pos, size))
                count = _run_length(arr, pos, layout, num_records - seen)
                records = np.frombuffer(block, dtype=layout.dtype, count=count, offset=pos)
                parts.append(Part(layout, records, np.arange(ordinal, ordinal + count)))
                ordinal += count
                pos += count * size
                seen += count
                continue
            if rtype == EXPORTER_INFO:
                state.add_exporter(block, pos, size)
            elif rtype == SAMPLER:
                state.add_sampler(block, pos, size)
            elif rtype in LEGACY_FLOW_RECORDS:
                skips.add(f"nfdump 1.6 record type {rtype} (convert the file with nfdump 1.7)", 1)
            elif rtype not in METADATA_RECORDS:
                skips.add(f"unknown nfdump record type {rtype}", 1)
        except CorruptRecord as exc:
            skips.add("corrupt record; rest of its block skipped", num_records - seen, str(exc))
            return parts
        pos += size
        seen += 1
    if seen < num_records:
        skips.add("block ended before its record count", num_records - seen)
    return parts


def _u64_times(ms: np.ndarray) -> pa.Array:
    """Milliseconds since 1970 as timestamps; 0 is nfdump's "not known" (an exporter that sent no time,
    a record without a receive time), so null rather than 1970-01-01."""
    return pa.array(ms.astype(np.int64) * 1_000_000, TIMESTAMP, mask=ms == 0)


def _masked(values: np.ndarray, valid: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    return pa.array(values, arrow_type, mask=~valid)


def _address(records: _Fields, v4: str, v6: str, elements_v4: bool, elements_v6: bool) -> pa.Array | None:
    if elements_v4:
        return addresses.from_ipv4(records[v4])
    if elements_v6:
        return addresses.from_ipv6_bytes(np.ascontiguousarray(records[v6][:, _V6_ORDER]))
    return None


def decode_layout(
    layout: Layout, records: _Fields, state: FileState, wanted: frozenset[str] | None = None
) -> dict[str, pa.Array]:
    """Flow-schema columns for records of one layout: those in ``wanted`` (all when None).

    Columns a layout lacks are left out (they become nulls when the batch is conformed).
    """

    def want(name: str) -> bool:
        return wanted is None or name in wanted

    has = layout.elements
    cols: dict[str, pa.Array] = {}
    if want("type"):
        cols["type"] = _TYPE_NAMES.take(pa.array(records["nfversion"]))
    if 1 in has:
        _generic_columns(records, want, cols)
    if 5 in has and want("packets_rev"):
        cols["packets_rev"] = pa.array(records["out_packets"], pa.uint64())
        cols["bytes_rev"] = pa.array(records["out_bytes"], pa.uint64())
    if want("src_addr") or want("dst_addr") or want("etype"):
        src = _address(records, "src4", "src6", 2 in has, 3 in has)
        if src is not None:
            cols["src_addr"] = src
            cols["dst_addr"] = _address(records, "dst4", "dst6", 2 in has, 3 in has)
            cols["etype"] = pa.array(np.full(len(records), 0x0800 if 2 in has else 0x86DD, np.uint16), pa.uint16())
    if 4 in has and (want("in_if") or want("out_if")):
        cols["in_if"] = pa.array(records["input"], pa.uint32())
        cols["out_if"] = pa.array(records["output"], pa.uint32())
    if 6 in has and want("vlan_id"):
        cols["vlan_id"] = pa.array((records["src_vlan"] & 0xFFFF).astype(np.uint16), pa.uint16())
    if 7 in has and (want("src_as") or want("dst_as")):
        cols["src_as"] = pa.array(records["src_as"], pa.uint32())
        cols["dst_as"] = pa.array(records["dst_as"], pa.uint32())
    if want("next_hop"):
        next_hop = _address(records, "next_hop4", "next_hop6", 10 in has, 11 in has)
        if next_hop is not None:
            cols["next_hop"] = next_hop
    if 15 in has and (want("src_mac") or want("dst_mac")):
        src_mac = np.where(records["in_src_mac"] != 0, records["in_src_mac"], records["out_src_mac"])
        dst_mac = np.where(records["in_dst_mac"] != 0, records["in_dst_mac"], records["out_dst_mac"])
        cols["src_mac"] = pa.array(src_mac, pa.uint64())
        cols["dst_mac"] = pa.array(dst_mac, pa.uint64())
    _exporter_columns(records, has, state, want, cols)
    return cols


def _generic_columns(records: _Fields, want: Callable[[str], bool], cols: dict[str, pa.Array]) -> None:
    """Columns of EXgenericFlow: times, counters, protocol, ports, ICMP type/code, flags, TOS."""
    for name, source in (
        ("time_received", "msec_received"),
        ("time_flow_start", "msec_first"),
        ("time_flow_end", "msec_last"),
    ):
        if want(name):
            cols[name] = _u64_times(records[source])
    for name, source, arrow_type in (
        ("packets", "in_packets", pa.uint64()),
        ("bytes", "in_bytes", pa.uint64()),
        ("proto", "proto", pa.uint8()),
        ("ip_tos", "src_tos", pa.uint8()),
    ):
        if want(name):
            cols[name] = pa.array(records[source], arrow_type)
    if want("tcp_flags"):
        cols["tcp_flags"] = pa.array(records["tcp_flags"].astype(np.uint16), pa.uint16())
    proto, dst_port = records["proto"], records["dst_port"]
    icmp = (proto == 1) | (proto == 58)
    # nfdump keeps ICMP type and code in the destination port; the schema has them apart and ports 0
    if want("src_port") or want("dst_port"):
        cols["src_port"] = pa.array(np.where(icmp, 0, records["src_port"]).astype(np.uint16), pa.uint16())
        cols["dst_port"] = pa.array(np.where(icmp, 0, dst_port).astype(np.uint16), pa.uint16())
    if want("icmp_type") or want("icmp_code"):
        cols["icmp_type"] = _masked((dst_port >> 8).astype(np.uint8), icmp, pa.uint8())
        cols["icmp_code"] = _masked((dst_port & 0xFF).astype(np.uint8), icmp, pa.uint8())


def _exporter_columns(
    records: _Fields, has: frozenset[int], state: FileState, want: Callable[[str], bool], cols: dict[str, pa.Array]
) -> None:
    """The exporter address (record element, else the exporter record), its domain and sampling rate."""
    sysid = records["exporter_sysid"]
    if want("sampler_address"):
        router = _address(records, "router4", "router6", 12 in has, 13 in has)
        if router is None:
            values, index = state.lookup(state.address, sysid)
            router = pa.array(values, ADDRESS).take(pa.array(index))
        cols["sampler_address"] = router
    if want("observation_domain_id"):
        values, index = state.lookup(state.domain, sysid)
        cols["observation_domain_id"] = pa.array(values, pa.uint32()).take(pa.array(index))
    if want("sampling_rate"):
        values, index = state.lookup(state.sampling, sysid)
        rates = pa.array(values, pa.uint64()).take(pa.array(index))
        sampled = pa.array((records["flags"] & V3_FLAG_SAMPLED) != 0)
        cols["sampling_rate"] = pc.if_else(sampled, rates, pa.scalar(1, pa.uint64()))


class _Fields:
    """Same-layout record runs read by field name: each field read is joined into one contiguous array.

    Joining whole structured records would copy every byte of every record; this copies only
    the fields the wanted columns need.
    """

    def __init__(self, runs: list[np.ndarray]) -> None:
        self._runs = runs
        self._joined: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return sum(len(run) for run in self._runs)

    def __getitem__(self, name: str) -> np.ndarray:
        values = self._joined.get(name)
        if values is None:
            values = self._joined[name] = np.concatenate([run[name] for run in self._runs])
        return values


@dataclass
class LayoutGroup:
    """The records of one layout among some parts: their fields by name and their ordinals (ascending)."""

    layout: Layout
    records: _Fields
    ordinals: np.ndarray


def by_layout(parts: Sequence[Part]) -> list[LayoutGroup]:
    """The parts' records grouped by layout (the groups in order of first appearance).

    Both the flow-table decoder and the profile's own extraction (``flowscope.profile.nfdump``) read the
    records this way, so each vectorised step runs once per layout, not once per run.
    """
    grouped: dict[int, list[Part]] = {}
    for part in parts:
        grouped.setdefault(id(part.layout), []).append(part)
    return [
        LayoutGroup(group[0].layout, _Fields([p.records for p in group]), np.concatenate([p.ordinals for p in group]))
        for group in grouped.values()
    ]


def in_file_order(ordinals: Sequence[np.ndarray]) -> np.ndarray | None:
    """The permutation that puts the groups' joined records back in file order (None: one group, already so)."""
    if len(ordinals) == 1:
        return None
    return np.argsort(np.concatenate(ordinals), kind="stable")


def decode_parts(parts: Sequence[Part], state: FileState, wanted: frozenset[str] | None = None) -> pa.Table:
    """One table of all parts' records, in file order."""
    if not parts:
        return pa.table({})
    groups = by_layout(parts)
    tables = [pa.table(decode_layout(g.layout, g.records, state, wanted)) for g in groups]
    order = in_file_order([g.ordinals for g in groups])
    if order is None:
        return tables[0]
    return pa.concat_tables(tables, promote_options="default").take(pa.array(order))


def address_words(records: _Fields, layout: Layout, v4: str, v6: str) -> tuple[np.ndarray, np.ndarray] | None:
    """An address field as two 64-bit numbers per record that compare like its 16 stored bytes (high, low), or
    None when the layout lacks it. IPv4 is IPv4-mapped; nfdump's two host-order words of an IPv6 address are
    these numbers as they are (no byte shuffling)."""
    if 2 in layout.elements:
        return np.zeros(len(records), np.uint64), records[v4].astype(np.uint64) | _V4_MAPPED_LOW
    if 3 in layout.elements:
        words = records[v6].view("<u8")
        return words[:, 0].astype(np.uint64), words[:, 1].astype(np.uint64)
    return None
