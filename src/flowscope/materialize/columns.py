"""The text form of view columns holding IP or MAC addresses, for targets without such types.

A view passes lake columns through: addresses are 16-byte binaries (IPv4 mapped into IPv6; variable
binary once DuckDB has read them), MACs 48-bit integers; ``schema.role_of`` tells which columns are
which. PostgreSQL stores them natively (``inet``, ``macaddr``); SQLite and DuckDB targets get text,
which sorts and compares as people write addresses.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from flowscope import addresses
from flowscope.schema import ADDRESS, Role, role_of


def with_text_addresses(table: pa.Table, *, dictionary: bool = False) -> pa.Table:
    """Address and MAC columns as text; other values keep their types (timestamps stay timestamps,
    unlike ``display.textual``, which is for people). ``dictionary``: addresses as dictionaries of the
    distinct addresses' texts, each formatted once (``key_order`` ranks the distinct values only)."""
    for index, field in enumerate(table.schema):
        column = table.column(index)
        role = role_of(field)
        if role is Role.ADDRESS and dictionary:
            encoded = pc.dictionary_encode(column.cast(ADDRESS).combine_chunks())
            texts = pa.DictionaryArray.from_arrays(encoded.indices, addresses.format_text(encoded.dictionary))
            table = table.set_column(index, field.name, texts)
        elif role is Role.ADDRESS:
            table = table.set_column(index, field.name, addresses.format_text(column.cast(ADDRESS)))
        elif role is Role.MAC:
            table = table.set_column(index, field.name, addresses.format_mac(column.cast(pa.uint64())))
    return table
