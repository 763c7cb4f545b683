"""The filter language (``--where``/``--filter``, the console's filter box): compile, then run the SQL.

A text either compiles or raises ``FilterError`` (a ``FlowscopeError``); a compiled filter must then be SQL
DuckDB accepts over the table with its parameters: a DuckDB error would reach the console as a 500.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb

from flowscope.errors import FlowscopeError
from flowscope.query.filter_language import compile_filter
from flowscope.schema import FLOWS, INTERFACE_COUNTERS, table_schema
from fuzz.harness import ROOT

MAX_LEN = 512
TABLES = (FLOWS, INTERFACE_COUNTERS)
_DATABASE = duckdb.connect()
for _name in TABLES:
    _DATABASE.register(_name, table_schema(_name).empty_table())

EXAMPLES = (
    "src_addr << 10.0.0.0/8 and dst_port = 443 and proto in (tcp, udp)",
    "not (addr = 192.0.2.1 or port < 1024) and time_flow_start >= 2024-05-01T00:00:00Z",
    "as in (64496, 64511) or src_mac = 00:11:22:33:44:55",
    "dst_addr << 2001:db8::/32 and tcp_flags != 0x12",
    "exporter_name = 'edge ''1''' or in_if_name not in (\"ge-0/0/1\", xe-1)",
    "bytes > 1000000 and packets <= 10 and in_if = 7",
)


def seeds() -> Iterator[bytes]:
    """The examples above and the filters shown in docs/FILTERS.md (the project's own text)."""
    for text in EXAMPLES:
        yield b"\x00" + text.encode()
    in_block = False
    for line in (ROOT / "docs" / "FILTERS.md").read_text().splitlines():
        if line.startswith("```"):
            in_block = not in_block
        elif in_block and line.strip():
            yield b"\x00" + line.strip().encode()


def one_input(data: bytes) -> None:
    if not data:
        return
    try:
        text = data[1:].decode()
    except UnicodeDecodeError:
        return  # the CLI and the web API hand over str; bytes that are no text never reach the compiler
    table = TABLES[data[0] % len(TABLES)]
    try:
        compiled = compile_filter(text, table)
    except FlowscopeError:
        return
    _DATABASE.execute(f"SELECT count(*) FROM {table} WHERE {compiled.sql}", compiled.params).fetchall()
