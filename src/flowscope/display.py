"""Turning stored values into what people read: addresses and MACs as text.

Used by every textual output (tables, CSV, JSON); Parquet output keeps raw values.
"""

from __future__ import annotations

import pyarrow as pa

from flowscope import addresses


def is_mac_column(name: str, type_: pa.DataType) -> bool:
    return name.endswith("_mac") and pa.types.is_integer(type_)


def textual(table: pa.Table) -> pa.Table:
    """Replace 16-byte address columns and ``*_mac`` integer columns by their text form."""
    for index, field in enumerate(table.schema):
        if pa.types.is_fixed_size_binary(field.type) and field.type.byte_width == 16:
            converted = addresses.format_text(table.column(index))
        elif pa.types.is_binary(field.type) and field.name.endswith(("_addr", "next_hop", "_address")):
            converted = addresses.format_text(table.column(index).cast(pa.binary(16)))
        elif is_mac_column(field.name, field.type):
            converted = addresses.format_mac(table.column(index).cast(pa.uint64()))
        else:
            continue
        table = table.set_column(index, field.name, converted)
    return table
