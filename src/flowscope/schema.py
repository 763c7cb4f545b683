"""The flow schema every source produces and every sink consumes.

Field names follow GoFlow2's, which flow users already know. Addresses are 16-byte
big-endian IPv6 (IPv4 as IPv4-mapped ``::ffff:a.b.c.d``): one column type for both
families that sorts and range-filters by CIDR prefix as plain bytes (see
``flowscope.addresses`` and the SQL helpers in ``flowscope.lake.sql``).
See docs/SCHEMA.md for units and meaning.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

ADDRESS = pa.binary(16)
TIMESTAMP = pa.timestamp("ns", tz="UTC")

FLOW_SCHEMA = pa.schema(
    [
        pa.field("type", pa.string()),
        pa.field("time_received", TIMESTAMP),
        pa.field("time_flow_start", TIMESTAMP),
        pa.field("time_flow_end", TIMESTAMP),
        pa.field("sampler_address", ADDRESS),
        pa.field("observation_domain_id", pa.uint32()),
        pa.field("sequence_num", pa.uint32()),
        pa.field("sampling_rate", pa.uint64()),
        pa.field("src_addr", ADDRESS),
        pa.field("dst_addr", ADDRESS),
        pa.field("src_port", pa.uint16()),
        pa.field("dst_port", pa.uint16()),
        pa.field("proto", pa.uint8()),
        pa.field("etype", pa.uint16()),
        pa.field("bytes", pa.uint64()),
        pa.field("packets", pa.uint64()),
        pa.field("bytes_rev", pa.uint64()),
        pa.field("packets_rev", pa.uint64()),
        pa.field("tcp_flags", pa.uint16()),
        pa.field("ip_tos", pa.uint8()),
        pa.field("ip_ttl", pa.uint8()),
        pa.field("in_if", pa.uint32()),
        pa.field("out_if", pa.uint32()),
        pa.field("vlan_id", pa.uint16()),
        pa.field("src_as", pa.uint32()),
        pa.field("dst_as", pa.uint32()),
        pa.field("next_hop", ADDRESS),
        pa.field("icmp_type", pa.uint8()),
        pa.field("icmp_code", pa.uint8()),
        pa.field("src_mac", pa.uint64()),
        pa.field("dst_mac", pa.uint64()),
        pa.field("community_id", pa.string()),
    ]
)

FLOW_COLUMNS = frozenset(FLOW_SCHEMA.names)

# One-way records have no reverse direction: 0, not "unknown".
_ZERO_WHEN_MISSING = ("bytes_rev", "packets_rev")


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
