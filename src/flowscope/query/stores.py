"""Run a report's SQL on a database server (ClickHouse, PostgreSQL) and return its rows as the lake would.

Reports are small results (top-N rows), so values are converted one by one; what matters is that every
store answers in the same types: addresses as the 16-byte flow-schema form (ClickHouse's FixedString(16)
bytes, PostgreSQL's ``inet`` parsed), counts as integers, shares as floats.
"""

from __future__ import annotations

import ipaddress
from decimal import Decimal
from typing import Any

import pyarrow as pa

from flowscope import addresses
from flowscope.errors import FlowscopeError
from flowscope.query.dialects import ADDRESS_COLUMNS


def _column(name: str, values: list[Any]) -> pa.Array:
    if name in ADDRESS_COLUMNS:
        return pa.array(
            [None if v is None else v if isinstance(v, bytes) else addresses.parse_one(str(v)) for v in values],
            pa.binary(16),
        )
    converted = []
    for value in values:
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, Decimal):
            value = int(value) if value == value.to_integral_value() and name != "share_pct" else float(value)
        elif isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            value = str(value)
        converted.append(value)
    if name == "share_pct":
        return pa.array(converted, pa.float64())
    return pa.array(converted)


def to_table(names: list[str], rows: list[tuple]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return pa.table({name: _column(name, list(values)) for name, values in zip(names, columns, strict=True)})


def run_sql(source: str, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
    """``sql``'s result on the server of ``source`` (a clickhouse:// or postgresql:// URL); ``params``: the
    values of its ``%(name)s`` placeholders (``Dialect.bind``)."""
    if source.startswith("clickhouse://"):
        from flowscope.db import clickhouse as ch

        url = ch.ClickHouseURL.parse(source)
        client = ch.connect(url)
        client.settings["strings_as_bytes"] = True
        try:
            rows, types = ch.execute(client, url, sql, params or None, with_column_types=True)
        finally:
            client.disconnect()
        return to_table([name for name, _ in types], rows)
    if source.startswith(("postgresql://", "postgres://")):
        import psycopg

        from flowscope.db import postgres as pg

        target = pg.PostgresURL.parse(source)
        with pg.connect(target, "flowscope-report") as con:
            try:
                cursor = con.execute(sql, params or None)
            except psycopg.Error as exc:
                raise FlowscopeError(f"PostgreSQL at {target.shown}: {' '.join(str(exc).split())}") from None
            names = [column.name for column in cursor.description or ()]
            return to_table(names, cursor.fetchall())
    raise FlowscopeError(f"not a database URL: {source!r}")
