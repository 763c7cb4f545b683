"""The column catalogue: every column of every lake table declared once, and the schemas derived from it.

Each ``Column`` says what a column is (Arrow type, role, unit, one-line meaning) and what it is called and
typed elsewhere: GoFlow2 v2's ``flowpb.FlowMessage`` field, flow-pipeline's CamelCase name, the ClickHouse
and PostgreSQL column types. ``FLOW_SCHEMA`` and ``INTERFACE_COUNTERS_SCHEMA`` are derived from it, outputs
look roles up in it (``role_of``) instead of guessing from column names, and docs/SCHEMA.md's column tables
are rendered from it (``flowscope.schema_doc``).

Field names follow GoFlow2's, which flow users already know. Addresses are 16-byte big-endian IPv6 (IPv4 as
IPv4-mapped ``::ffff:a.b.c.d``): one column type for both families that sorts and range-filters by CIDR
prefix as plain bytes (see ``flowscope.addresses`` and the SQL helpers in ``flowscope.query.helpers``).

Types in other systems (one rule per role and Arrow type, so every column follows it):

- ClickHouse: addresses ``FixedString(16)`` (the same 16 bytes; the 18.16 server has no IPv6 type), MACs
  ``UInt64`` (GoFlow2's and flow-pipeline's form), times ``UInt64`` nanoseconds since 1970-01-01 UTC
  (lossless, GoFlow2's ``*_ns`` fields; 18.16 has no ``DateTime64``, ``toDateTime(intDiv(t, 1000000000))``
  gives a ``DateTime``), integers the same width and signedness, text ``String``; a column that may be null
  is ``Nullable(...)`` (null means unknown here, never 0).
- PostgreSQL: addresses ``inet``, MACs ``macaddr``, times ``timestamp with time zone`` (microseconds:
  PostgreSQL keeps no finer), unsigned integers the next wider signed type (``uint8`` ``smallint``,
  ``uint16`` ``integer``, ``uint32`` ``bigint``) except ``uint64``, which stays ``bigint`` (there is no
  wider integer short of ``numeric``; the COPY encoder refuses values above 2**63-1), text ``text``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa
import pyarrow.compute as pc

from flowscope.errors import FlowscopeError

ADDRESS = pa.binary(16)
TIMESTAMP = pa.timestamp("ns", tz="UTC")

FLOWS = "flows"
INTERFACE_COUNTERS = "interface_counters"
PACKETS = "packets"


class Role(StrEnum):
    """What a column's values are, which decides how outputs show them and how they may be combined."""

    TIME = "time"
    """A moment (UTC timestamp); shown as ISO 8601 text."""
    ADDRESS = "address"
    """An IP address (16 bytes, IPv4-mapped); shown as text, ``inet`` in PostgreSQL."""
    MAC = "mac"
    """A MAC address (48-bit integer); shown as ``aa:bb:cc:dd:ee:ff``, ``macaddr`` in PostgreSQL."""
    DIMENSION = "dimension"
    """What rows are grouped and filtered by: labels, identifiers, codes and flag sets (a port or an AS
    number is a name for something, not a quantity; shown without thousands separators)."""
    COUNTER = "counter"
    """A quantity that sums across rows (the bytes and packets of flow records)."""
    CUMULATIVE = "cumulative"
    """A running total since the device's counter was reset (SNMP interface counters): the difference
    between two samples is the traffic in between; summing rows means nothing."""
    GAUGE = "gauge"
    """A quantity that does not sum across rows (a sampling rate, an interface speed, a TTL)."""


@dataclass(frozen=True)
class GoFlow2Field:
    """A field of GoFlow2 v2's ``flowpb.FlowMessage`` (``pb/flow.proto``), as declared there."""

    proto_type: str
    name: str
    number: int


@dataclass(frozen=True)
class Column:
    name: str
    arrow_type: pa.DataType
    role: Role
    unit: str
    meaning: str
    """One line; Markdown (it is rendered into docs/SCHEMA.md)."""
    goflow2: GoFlow2Field | None
    """The FlowMessage field carrying the same value, None where GoFlow2 has none."""
    pipeline_name: str
    """flow-pipeline's CamelCase name (GoFlow v1's spelling where it had the field)."""
    nullable: bool
    """False: never null (0 when a source has nothing to count, e.g. the reverse counters of one-way records)."""
    clickhouse: str
    postgres: str

    @property
    def field(self) -> pa.Field:
        return pa.field(self.name, self.arrow_type)


_CLICKHOUSE_INTEGERS = {
    pa.uint8(): "UInt8",
    pa.uint16(): "UInt16",
    pa.uint32(): "UInt32",
    pa.uint64(): "UInt64",
}


def clickhouse_type(arrow_type: pa.DataType, role: Role, *, nullable: bool = True) -> str:
    """The ClickHouse column type of a catalogue column (the rules are in the module docstring)."""
    if role is Role.ADDRESS:
        base = "FixedString(16)"
    elif role in (Role.MAC, Role.TIME):
        base = "UInt64"
    elif pa.types.is_boolean(arrow_type):
        base = "UInt8"  # 0/1: the 18.16 server has no Bool type
    elif pa.types.is_string(arrow_type):
        base = "String"
    elif arrow_type in _CLICKHOUSE_INTEGERS:
        base = _CLICKHOUSE_INTEGERS[arrow_type]
    else:
        raise FlowscopeError(f"no ClickHouse column type for Arrow type {arrow_type}")
    return f"Nullable({base})" if nullable else base


def postgres_type(arrow_type: pa.DataType, role: Role | None = None) -> str:
    """The PostgreSQL column type for values of ``arrow_type`` in a column of ``role`` (None: unknown).

    An address is ``inet`` and a MAC ``macaddr`` only when the values can be one (binary, integer);
    everything else follows the Arrow type. Names are PostgreSQL's canonical spelling (``format_type``),
    so an existing table's columns can be compared with them.
    """
    if role is Role.ADDRESS and (pa.types.is_binary(arrow_type) or pa.types.is_fixed_size_binary(arrow_type)):
        return "inet"
    if role is Role.MAC and pa.types.is_integer(arrow_type):
        return "macaddr"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if arrow_type in (pa.int8(), pa.uint8(), pa.int16()):
        return "smallint"
    if arrow_type in (pa.uint16(), pa.int32()):
        return "integer"
    if arrow_type in (pa.uint32(), pa.int64(), pa.uint64()):
        return "bigint"
    if pa.types.is_floating(arrow_type):
        return "double precision"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp with time zone"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "text"
    if pa.types.is_binary(arrow_type) or pa.types.is_fixed_size_binary(arrow_type):
        return "bytea"
    raise FlowscopeError(f"no PostgreSQL column type for Arrow type {arrow_type}")


def _column(
    name: str,
    arrow_type: pa.DataType,
    role: Role,
    unit: str,
    meaning: str,
    goflow2: tuple[str, str, int] | None = None,
    *,
    pipeline_name: str | None = None,
    nullable: bool = True,
) -> Column:
    """One declaration; ``goflow2`` is (proto type, field name, field number), ``pipeline_name`` defaults to
    the CamelCase of ``name``."""
    return Column(
        name=name,
        arrow_type=arrow_type,
        role=role,
        unit=unit,
        meaning=meaning,
        goflow2=GoFlow2Field(*goflow2) if goflow2 else None,
        pipeline_name=pipeline_name or "".join(part.capitalize() for part in name.split("_")),
        nullable=nullable,
        clickhouse=clickhouse_type(arrow_type, role, nullable=nullable),
        postgres=postgres_type(arrow_type, role),
    )


_FLOWS = (
    _column("type", pa.string(), Role.DIMENSION, "label",
            "source kind: `netflow_v5`, `netflow_v9`, `ipfix`, `sflow_v5`, `pcap`, `csv`, `nfcapd`, `synthetic`, ...",
            ("FlowType", "type", 1)),
    _column("time_received", TIMESTAMP, Role.TIME, "ns, UTC",
            "when flowscope received the record (export datagram arrival, file read time)",
            ("uint64", "time_received_ns", 110)),
    _column("time_flow_start", TIMESTAMP, Role.TIME, "ns, UTC", "first packet of the flow; partitions the lake",
            ("uint64", "time_flow_start_ns", 111)),
    _column("time_flow_end", TIMESTAMP, Role.TIME, "ns, UTC", "last packet of the flow",
            ("uint64", "time_flow_end_ns", 112)),
    _column("sampler_address", ADDRESS, Role.ADDRESS, "IP address", "exporter / sFlow agent address",
            ("bytes", "sampler_address", 11)),
    _column("observation_domain_id", pa.uint32(), Role.DIMENSION, "id",
            "IPFIX observation domain, NetFlow v9 source id, sFlow sub-agent id",
            ("uint32", "observation_domain_id", 70)),
    _column("sequence_num", pa.uint32(), Role.DIMENSION, "sequence number",
            "export sequence number of the message that carried the record", ("uint32", "sequence_num", 4)),
    _column("sampling_rate", pa.uint64(), Role.GAUGE, "1-in-N packets",
            "packet sampling rate; 1 = unsampled; null = unknown", ("uint64", "sampling_rate", 3)),
    _column("src_addr", ADDRESS, Role.ADDRESS, "IP address", "source IP address (see [Addresses](#addresses))",
            ("bytes", "src_addr", 6)),
    _column("dst_addr", ADDRESS, Role.ADDRESS, "IP address", "destination IP address", ("bytes", "dst_addr", 7)),
    _column("src_port", pa.uint16(), Role.DIMENSION, "port number",
            "source TCP/UDP/SCTP port; 0 for protocols without ports", ("uint32", "src_port", 21)),
    _column("dst_port", pa.uint16(), Role.DIMENSION, "port number",
            "destination TCP/UDP/SCTP port; 0 for protocols without ports", ("uint32", "dst_port", 22)),
    _column("proto", pa.uint8(), Role.DIMENSION, "IP protocol number",
            "transport protocol (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...)", ("uint32", "proto", 20)),
    _column("etype", pa.uint16(), Role.DIMENSION, "EtherType",
            "EtherType of the network layer (0x0800 IPv4, 0x86DD IPv6)", ("uint32", "etype", 30),
            pipeline_name="EType"),
    _column("bytes", pa.uint64(), Role.COUNTER, "octets",
            "octets src -> dst, **IP layer** (IP header + payload, as IPFIX octetDeltaCount), raw (not scaled by "
            "sampling)", ("uint64", "bytes", 9)),
    _column("packets", pa.uint64(), Role.COUNTER, "packets", "packets src -> dst, raw", ("uint64", "packets", 10)),
    _column("bytes_rev", pa.uint64(), Role.COUNTER, "octets",
            "octets dst -> src in biflows (IP layer, raw); 0 for one-way records", nullable=False),
    _column("packets_rev", pa.uint64(), Role.COUNTER, "packets",
            "packets dst -> src in biflows (raw); 0 for one-way records", nullable=False),
    _column("tcp_flags", pa.uint16(), Role.DIMENSION, "bit set",
            "OR of the TCP flags seen (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20, ECE 0x40, CWR "
            "0x80)", ("uint32", "tcp_flags", 26), pipeline_name="TCPFlags"),
    _column("ip_tos", pa.uint8(), Role.DIMENSION, "DSCP and ECN bits",
            "IPv4 TOS / IPv6 traffic class of the first packet", ("uint32", "ip_tos", 23), pipeline_name="IPTos"),
    _column("ip_ttl", pa.uint8(), Role.GAUGE, "hops", "IPv4 TTL / IPv6 hop limit", ("uint32", "ip_ttl", 25),
            pipeline_name="IPTTL"),
    _column("in_if", pa.uint32(), Role.DIMENSION, "ifIndex", "SNMP ifIndex of the input interface",
            ("uint32", "in_if", 18)),
    _column("out_if", pa.uint32(), Role.DIMENSION, "ifIndex", "SNMP ifIndex of the output interface",
            ("uint32", "out_if", 19)),
    _column("vlan_id", pa.uint16(), Role.DIMENSION, "VLAN id", "802.1Q VLAN id (outermost)",
            ("uint32", "vlan_id", 29)),
    _column("src_as", pa.uint32(), Role.DIMENSION, "AS number", "source BGP autonomous system",
            ("uint32", "src_as", 14), pipeline_name="SrcAS"),
    _column("dst_as", pa.uint32(), Role.DIMENSION, "AS number", "destination BGP autonomous system",
            ("uint32", "dst_as", 15), pipeline_name="DstAS"),
    _column("next_hop", ADDRESS, Role.ADDRESS, "IP address", "IP next hop", ("bytes", "next_hop", 12)),
    _column("icmp_type", pa.uint8(), Role.DIMENSION, "ICMP type", "ICMP / ICMPv6 type (ports are 0 for ICMP)",
            ("uint32", "icmp_type", 31)),
    _column("icmp_code", pa.uint8(), Role.DIMENSION, "ICMP code", "ICMP / ICMPv6 code", ("uint32", "icmp_code", 32)),
    _column("src_mac", pa.uint64(), Role.MAC, "48-bit MAC", "source MAC address", ("uint64", "src_mac", 27)),
    _column("dst_mac", pa.uint64(), Role.MAC, "48-bit MAC", "destination MAC address", ("uint64", "dst_mac", 28)),
    _column("community_id", pa.string(), Role.DIMENSION, "Community ID v1",
            "flow hash (`1:...`), where the source computes it"),
)  # fmt: skip


def _sflow(name: str, arrow_type: pa.DataType, role: Role, unit: str, meaning: str) -> Column:
    """An ``interface_counters`` column: sFlow carries every one in every record, so none is ever null; GoFlow2
    has no counter messages."""
    return _column(name, arrow_type, role, unit, meaning, nullable=False)


_INTERFACE_COUNTERS = (
    _sflow("time_received", TIMESTAMP, Role.TIME, "ns, UTC", "when flowscope received the sFlow datagram"),
    _sflow("sampler_address", ADDRESS, Role.ADDRESS, "IP address", "sFlow agent address"),
    _sflow("sub_agent_id", pa.uint32(), Role.DIMENSION, "id", "sFlow sub-agent id"),
    _sflow("sequence_num", pa.uint32(), Role.DIMENSION, "sequence number",
           "counter sample sequence number of the data source"),
    _sflow("source_id_type", pa.uint32(), Role.DIMENSION, "code",
           "data source type: 0 ifIndex, 1 smonVlanDataSource, 2 entPhysicalEntry"),
    _sflow("source_id_index", pa.uint32(), Role.DIMENSION, "index",
           "data source index (the ifIndex when `source_id_type` is 0)"),
    _sflow("if_index", pa.uint32(), Role.DIMENSION, "ifIndex", "ifIndex of the interface"),
    _sflow("if_type", pa.uint32(), Role.DIMENSION, "IANAifType", "ifType (6 ethernetCsmacd, 24 softwareLoopback, ...)"),
    _sflow("if_speed", pa.uint64(), Role.GAUGE, "bit/s", "ifSpeed: nominal interface speed"),
    _sflow("if_direction", pa.uint32(), Role.DIMENSION, "code",
           "duplex: 0 unknown, 1 full-duplex, 2 half-duplex, 3 in, 4 out"),
    _sflow("if_status", pa.uint32(), Role.DIMENSION, "bit set", "bit 0 ifAdminStatus up, bit 1 ifOperStatus up"),
    _sflow("in_octets", pa.uint64(), Role.CUMULATIVE, "octets", "ifInOctets: octets received, framing included"),
    _sflow("in_ucast_pkts", pa.uint32(), Role.CUMULATIVE, "packets", "ifInUcastPkts: unicast packets received"),
    _sflow("in_multicast_pkts", pa.uint32(), Role.CUMULATIVE, "packets",
           "ifInMulticastPkts: multicast packets received"),
    _sflow("in_broadcast_pkts", pa.uint32(), Role.CUMULATIVE, "packets",
           "ifInBroadcastPkts: broadcast packets received"),
    _sflow("in_discards", pa.uint32(), Role.CUMULATIVE, "packets",
           "ifInDiscards: inbound packets discarded without an error (e.g. to free buffer space)"),
    _sflow("in_errors", pa.uint32(), Role.CUMULATIVE, "packets", "ifInErrors: inbound packets with errors"),
    _sflow("in_unknown_protos", pa.uint32(), Role.CUMULATIVE, "packets",
           "ifInUnknownProtos: inbound packets of an unknown or unsupported protocol"),
    _sflow("out_octets", pa.uint64(), Role.CUMULATIVE, "octets", "ifOutOctets: octets sent, framing included"),
    _sflow("out_ucast_pkts", pa.uint32(), Role.CUMULATIVE, "packets", "ifOutUcastPkts: unicast packets sent"),
    _sflow("out_multicast_pkts", pa.uint32(), Role.CUMULATIVE, "packets",
           "ifOutMulticastPkts: multicast packets sent"),
    _sflow("out_broadcast_pkts", pa.uint32(), Role.CUMULATIVE, "packets",
           "ifOutBroadcastPkts: broadcast packets sent"),
    _sflow("out_discards", pa.uint32(), Role.CUMULATIVE, "packets",
           "ifOutDiscards: outbound packets discarded without an error"),
    _sflow("out_errors", pa.uint32(), Role.CUMULATIVE, "packets", "ifOutErrors: outbound packets not sent for errors"),
    _sflow("promiscuous_mode", pa.uint32(), Role.DIMENSION, "code", "ifPromiscuousMode as the agent reports it"),
)  # fmt: skip


_PACKETS = (
    _column("time", TIMESTAMP, Role.TIME, "ns, UTC",
            "capture time of the packet at the capture's own resolution (µs or ns); partitions the lake; "
            "pcapstream's milliseconds: `epoch_ms(time::TIMESTAMPTZ)` (DuckDB)", nullable=False),
    _column("wire_len", pa.uint32(), Role.COUNTER, "octets",
            "length of the frame on the wire (link layer, the capture record's original length)", nullable=False),
    _column("ip_len", pa.uint32(), Role.COUNTER, "octets",
            "IP total length from the header (IPv6: payload length + 40); pcapstream's length", nullable=False),
    _column("ip_version", pa.uint8(), Role.DIMENSION, "4 or 6", "IP version of the (outer, or with "
            "`--tunnels inner` innermost) IP header", nullable=False),
    _column("src_addr", ADDRESS, Role.ADDRESS, "IP address", "source IP address", nullable=False),
    _column("dst_addr", ADDRESS, Role.ADDRESS, "IP address", "destination IP address", nullable=False),
    _column("proto", pa.uint8(), Role.DIMENSION, "IP protocol number",
            "transport protocol (after IPv6 extension headers)", nullable=False),
    _column("src_port", pa.uint16(), Role.DIMENSION, "port number",
            "source TCP/UDP/SCTP port; null when the packet carries none (other protocols, later fragments)"),
    _column("dst_port", pa.uint16(), Role.DIMENSION, "port number", "destination TCP/UDP/SCTP port; null likewise"),
    _column("ip_ttl", pa.uint8(), Role.GAUGE, "hops", "IPv4 TTL / IPv6 hop limit", nullable=False),
    _column("ip_tos", pa.uint8(), Role.DIMENSION, "DSCP and ECN bits", "IPv4 TOS / IPv6 traffic class",
            nullable=False),
    _column("tcp_flags", pa.uint16(), Role.DIMENSION, "bit set",
            "TCP flags of the packet (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, ...); null unless the whole "
            "TCP header was captured"),
    _column("tcp_seq", pa.uint32(), Role.DIMENSION, "sequence number",
            "TCP sequence number (raw, not relative); null unless the whole TCP header was captured"),
    _column("tcp_ack", pa.uint32(), Role.DIMENSION, "sequence number",
            "TCP acknowledgment number (raw; meaningful when the ACK flag is set); null likewise"),
    _column("frag_id", pa.uint32(), Role.DIMENSION, "id",
            "IPv4 identification, IPv6 fragment header identification (0 for IPv6 without one)", nullable=False),
    _column("frag_offset", pa.uint16(), Role.DIMENSION, "8-octet units",
            "fragment offset as the header carries it (bytes / 8, as tshark's `ip.frag_offset`); not 0: a later "
            "fragment (no transport header)", nullable=False),
    _column("more_fragments", pa.bool_(), Role.DIMENSION, "flag",
            "more-fragments flag: the packet is a fragment, and not the last", nullable=False),
    _column("vlan_id", pa.uint16(), Role.DIMENSION, "VLAN id", "802.1Q VLAN id (outermost), 0 if none",
            nullable=False),
)  # fmt: skip


def _enrichment() -> tuple[Column, ...]:
    """The columns ``--enrich`` adds to flows (``flowscope.transforms.enrich``), generated per direction.

    They are not part of ``FLOW_SCHEMA``: only enriched batches carry them (``conform`` keeps them as extra
    columns), so sources and unenriched lakes do not store two dozen null columns, and lake queries read files
    with and without them alike (``union_by_name``: null where a file lacks one).
    """
    text = pa.string()
    columns = []
    for side, whose in (("src", "source"), ("dst", "destination")):
        columns += [
            _column(
                f"{side}_as_name",
                text,
                Role.DIMENSION,
                "label",
                f"organisation of `{side}_as` in the ASN database (null where it holds another AS or none)",
            ),
            _column(
                f"{side}_country",
                text,
                Role.DIMENSION,
                "ISO 3166-1 alpha-2",
                f"country of the {whose} address in the country database (`US`)",
            ),
            _column(
                f"{side}_city",
                text,
                Role.DIMENSION,
                "label",
                f"city of the {whose} address, where the country database is a City database (English name)",
            ),
        ]
    for side, whose in (("src", "source"), ("dst", "destination")):
        for attribute, meaning in _NETWORK_ATTRIBUTES:
            columns.append(
                _column(
                    f"{side}_net_{attribute}",
                    text,
                    Role.DIMENSION,
                    "label",
                    f"{meaning} of the most specific network of the networks file holding the {whose} address",
                )
            )
    for side, whose in (("in", "input"), ("out", "output")):
        columns += [
            _column(
                f"{side}_if_name", text, Role.DIMENSION, "label", f"name of the {whose} interface (interfaces file)"
            ),
            _column(f"{side}_if_description", text, Role.DIMENSION, "label", f"description of the {whose} interface"),
            _column(f"{side}_if_speed", pa.uint64(), Role.GAUGE, "bit/s", f"speed of the {whose} interface"),
            _column(
                f"{side}_if_boundary",
                text,
                Role.DIMENSION,
                "label",
                f"`external` or `internal`: whether the {whose} interface faces other networks",
            ),
        ]
    columns += [
        _column("exporter_name", text, Role.DIMENSION, "label", "name of the exporter (`sampler_address`)"),
        _column("exporter_group", text, Role.DIMENSION, "label", "group of the exporter (a site, a role)"),
    ]
    return tuple(columns)


_NETWORK_ATTRIBUTES = (
    ("name", "name"),
    ("role", "role"),
    ("site", "site"),
    ("region", "region"),
    ("tenant", "tenant (customer)"),
    ("boundary", "boundary (`external`/`internal`)"),
)
ENRICHMENT = "flow_enrichment"
"""The name of the enrichment columns' group (not a lake table: they are optional columns of ``flows``)."""
_ENRICHMENT = _enrichment()
ENRICHMENT_COLUMNS = frozenset(c.name for c in _ENRICHMENT)

_TABLES: dict[str, tuple[Column, ...]] = {FLOWS: _FLOWS, INTERFACE_COUNTERS: _INTERFACE_COUNTERS, PACKETS: _PACKETS}
TABLES = tuple(_TABLES)
"""The lake tables the catalogue declares."""

# flows last: its declaration wins a shared name
_BY_NAME = {c.name: c for c in (*_INTERFACE_COUNTERS, *_PACKETS, *_ENRICHMENT, *_FLOWS)}


def table_columns(table: str) -> tuple[Column, ...]:
    """The columns of a lake table, in schema order."""
    try:
        return _TABLES[table]
    except KeyError:
        raise FlowscopeError(f"no lake table {table!r} in the catalogue (known: {', '.join(TABLES)})") from None


def documented_columns(group: str) -> tuple[Column, ...]:
    """The columns of a lake table or of the ``ENRICHMENT`` group (docs/SCHEMA.md has a block for each)."""
    return _ENRICHMENT if group == ENRICHMENT else table_columns(group)


def column(name: str, table: str | None = None) -> Column | None:
    """The declaration of ``name`` in ``table``, or in any table when None (flows' when tables share a name:
    shared names have the same type and role everywhere, only the meaning is worded for the table)."""
    if table is None:
        return _BY_NAME.get(name)
    return next((c for c in table_columns(table) if c.name == name), None)


def columns_with_role(table: str, role: Role) -> tuple[str, ...]:
    """The names of ``table``'s columns of ``role``, in schema order."""
    return tuple(c.name for c in table_columns(table) if c.role is role)


def table_schema(table: str) -> pa.Schema:
    """The Arrow schema of a lake table (every field nullable, as the lake's Parquet files declare them)."""
    return pa.schema([c.field for c in table_columns(table)])


FLOW_SCHEMA = table_schema(FLOWS)
INTERFACE_COUNTERS_SCHEMA = table_schema(INTERFACE_COUNTERS)
"""Rows of the ``interface_counters`` lake table: sFlow generic interface counters (RFC 2233 ifTable)."""
PACKET_SCHEMA = table_schema(PACKETS)
"""Rows of the ``packets`` lake table: one per captured IP packet (``read --records packets``, pcapstream's rows)."""

FLOW_COLUMNS = frozenset(FLOW_SCHEMA.names)


def _can_hold(role: Role, arrow_type: pa.DataType) -> bool:
    """Whether values of ``arrow_type`` can be of ``role`` (SQL may give a catalogue name to anything)."""
    if role is Role.ADDRESS:
        return pa.types.is_binary(arrow_type) or arrow_type == ADDRESS
    if role is Role.MAC:
        return pa.types.is_integer(arrow_type)
    if role is Role.TIME:
        return pa.types.is_timestamp(arrow_type)
    return True


def role_of(field: pa.Field) -> Role | None:
    """The role of a result column: the catalogue's for its name when its type can hold it, else what the Arrow
    type alone says (a 16-byte binary is an address, a timestamp a time, whatever the name), else None.

    Query results keep catalogue names for plain columns (a view or ``SELECT src_addr ...``; DuckDB returns
    addresses as variable binary, which the name then identifies); a renamed or computed column has no
    role-specific treatment unless its type gives one.
    """
    known = _BY_NAME.get(field.name)
    if known is not None and _can_hold(known.role, field.type):
        return known.role
    if field.type == ADDRESS:
        return Role.ADDRESS
    if pa.types.is_timestamp(field.type):
        return Role.TIME
    return None


def clickhouse_columns(table: str) -> str:
    """The column list of a ClickHouse ``CREATE TABLE`` for ``table``: one "`name` Type" per line."""
    return ",\n".join(f"`{c.name}` {c.clickhouse}" for c in table_columns(table))


def postgres_columns(table: str) -> list[tuple[str, str]]:
    """(name, PostgreSQL type) of ``table``'s columns, as ``materialize.upsert.TableSpec`` takes them."""
    return [(c.name, c.postgres) for c in table_columns(table)]


# The flow columns declared never null (one-way records have no reverse direction: 0, not "unknown").
_ZERO_WHEN_MISSING = frozenset(c.name for c in _FLOWS if not c.nullable)


_zero_bytes = pa.py_buffer(b"")


def _zeros(size: int) -> pa.Buffer:
    """At least ``size`` zero bytes, shared: Arrow buffers are immutable, so many arrays can point at one."""
    global _zero_bytes
    if _zero_bytes.size < size:
        _zero_bytes = pa.py_buffer(bytes(max(size, 2 * _zero_bytes.size)))
    return _zero_bytes


def _constant(n: int, type_: pa.DataType, *, null: bool) -> pa.Array:
    """``n`` nulls (or zeros, for fixed-width types) backed by the shared zero buffer.

    ``pa.nulls`` / ``pa.repeat`` allocate and fill fresh memory for every batch; sources
    that fill few schema columns (CSVs, captures) otherwise spend a large part of their
    time here.
    """
    validity = _zeros((n + 7) // 8) if null else None
    if pa.types.is_string(type_) and null:
        return pa.Array.from_buffers(type_, n, [validity, _zeros(4 * (n + 1)), _zeros(0)], null_count=n)
    if not null or type_.bit_width % 8 == 0:
        return pa.Array.from_buffers(type_, n, [validity, _zeros(type_.byte_width * n)], null_count=n if null else 0)
    return pa.nulls(n, type_) if null else pa.repeat(pa.scalar(0, type_), n)


def conform(data: pa.RecordBatch | pa.Table, *, keep_extra: bool = True) -> pa.Table:
    """Return ``data`` as a table in flow-schema order and types.

    Missing core columns become nulls (reverse counters become 0); columns outside
    the schema (a source's extra features) follow the core columns when
    ``keep_extra`` is set. A value that does not fit its column's type raises.
    """
    table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
    n = table.num_rows
    columns: list[pa.ChunkedArray | pa.Array] = []
    for field in FLOW_SCHEMA:
        if field.name in table.column_names:
            column = table.column(field.name)
            if column.type != field.type:
                column = pc.cast(column, field.type)
            if field.name in _ZERO_WHEN_MISSING and column.null_count:
                column = pc.fill_null(column, 0)
        elif field.name in _ZERO_WHEN_MISSING:
            column = _constant(n, field.type, null=False)
        else:
            column = _constant(n, field.type, null=True)
        columns.append(column)
    fields = list(FLOW_SCHEMA)
    if keep_extra:
        for field in table.schema:
            if field.name not in FLOW_COLUMNS:
                columns.append(table.column(field.name))
                fields.append(field)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def empty_flows() -> pa.Table:
    """A zero-row table with the flow schema."""
    return FLOW_SCHEMA.empty_table()
