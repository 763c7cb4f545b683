"""Which view columns hold IP addresses or MAC addresses, and their text form for targets without such types.

A view passes lake columns through: addresses are 16-byte binaries (IPv4 mapped into IPv6), MACs
48-bit integers in ``*_mac`` columns. PostgreSQL stores them natively (``inet``, ``macaddr``);
SQLite and DuckDB targets get text, which sorts and compares as people write addresses.
"""

from __future__ import annotations

import pyarrow as pa

from flowscope import addresses
from flowscope.display import is_mac_column
from flowscope.schema import ADDRESS

_ADDRESS_SUFFIXES = ("_addr", "next_hop", "_address")


def is_address(field: pa.Field) -> bool:
    """16-byte binaries, and variable binaries named like an address (SQL expressions lose the fixed width)."""
    if pa.types.is_fixed_size_binary(field.type):
        return field.type.byte_width == 16
    return pa.types.is_binary(field.type) and field.name.endswith(_ADDRESS_SUFFIXES)


def is_mac(field: pa.Field) -> bool:
    return is_mac_column(field.name, field.type)


def with_text_addresses(table: pa.Table) -> pa.Table:
    """Address and MAC columns as text; other values keep their types (timestamps stay timestamps,
    unlike ``display.textual``, which is for people)."""
    for index, field in enumerate(table.schema):
        column = table.column(index)
        if is_address(field):
            table = table.set_column(index, field.name, addresses.format_text(column.cast(ADDRESS)))
        elif is_mac(field):
            table = table.set_column(index, field.name, addresses.format_mac(column.cast(pa.uint64())))
    return table
