"""Turning stored values into what people read: addresses, MACs and times as text.

Used by every textual output (tables, CSV, JSON); Parquet output keeps raw values.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from flowscope import addresses
from flowscope.schema import Role, role_of
from flowscope.time_text import format_timestamps


def _binary_text(column: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """Variable binary from SQL (addresses lose their fixed width there): 16-byte values as addresses, else hex."""
    lengths = pc.binary_length(column)
    if pc.all(pc.equal(lengths, 16)).as_py() in (True, None):
        return addresses.format_text(column.cast(pa.binary(16)))
    return pa.array([None if v is None else v.hex() for v in column.to_pylist()], pa.string())


def textual(table: pa.Table) -> pa.Table:
    """Replace address columns, MAC columns (by the catalogue: ``src_mac``, ``dst_mac``) and timestamps by their
    text form.

    Timestamps become ISO 8601 with every stored digit (nanoseconds do not fit Python datetimes).
    """
    for index, field in enumerate(table.schema):
        if pa.types.is_fixed_size_binary(field.type) and field.type.byte_width == 16:
            converted = addresses.format_text(table.column(index))
        elif pa.types.is_binary(field.type):
            converted = _binary_text(table.column(index))
        elif role_of(field) is Role.MAC:
            converted = addresses.format_mac(table.column(index).cast(pa.uint64()))
        elif pa.types.is_timestamp(field.type):
            converted = format_timestamps(table.column(index))
        else:
            continue
        table = table.set_column(index, field.name, converted)
    return table
