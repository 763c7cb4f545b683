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
from flowscope.db.urls import shown_url
from flowscope.errors import FlowscopeError
from flowscope.query.dialects import ADDRESS_COLUMNS
from flowscope.schema import FLOWS, TIMESTAMP, Role, table_columns


class QueryTimeout(FlowscopeError):
    """A query ran longer than the caller allows."""


_TIMES = frozenset(c.name for c in table_columns(FLOWS) if c.role is Role.TIME)
_MACS = frozenset(c.name for c in table_columns(FLOWS) if c.role is Role.MAC)
_CLICKHOUSE_TIMEOUT = 159  # ClickHouse's TIMEOUT_EXCEEDED


def _column(name: str, values: list[Any]) -> pa.Array:
    if name in ADDRESS_COLUMNS:
        return pa.array(
            [None if v is None else v if isinstance(v, bytes) else addresses.parse_one(str(v)) for v in values],
            pa.binary(16),
        )
    if name in _TIMES:  # ClickHouse: UInt64 nanoseconds; PostgreSQL: datetimes
        if all(v is None or isinstance(v, int) for v in values):
            return pa.array(values, pa.int64()).cast(TIMESTAMP)
        return pa.array(values, pa.timestamp("us", "UTC")).cast(TIMESTAMP)
    if name in _MACS:  # PostgreSQL's macaddr comes back as text
        return pa.array([int(v.replace(":", ""), 16) if isinstance(v, str) else v for v in values], pa.uint64())
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


def run_sql(
    source: str,
    sql: str,
    params: dict[str, Any] | None = None,
    *,
    timeout_s: float | None = None,
    max_rows: int | None = None,
) -> pa.Table:
    """``sql``'s result on the server of ``source`` (a clickhouse:// or postgresql:// URL); ``params``: the
    values of its ``%(name)s`` placeholders (``Dialect.bind``). With ``timeout_s`` the server stops the query
    after that long (``QueryTimeout``) and the connection is read-only (ClickHouse ``readonly = 2``: reads
    and settings only; PostgreSQL: a read-only transaction); ``max_rows`` cuts the result."""
    if source.startswith("clickhouse://"):
        return _clickhouse(source, sql, params, timeout_s, max_rows)
    if source.startswith(("postgresql://", "postgres://")):
        return _postgres(source, sql, params, timeout_s, max_rows)
    raise FlowscopeError(f"not a database URL: {shown_url(source)!r}")


def _clickhouse(
    source: str, sql: str, params: dict[str, Any] | None, timeout_s: float | None, max_rows: int | None
) -> pa.Table:
    from clickhouse_driver import errors

    from flowscope.db import clickhouse as ch

    url = ch.ClickHouseURL.parse(source)
    client = ch.connect(url)
    client.settings["strings_as_bytes"] = True
    settings: dict[str, Any] = {}
    if timeout_s is not None:
        settings |= {"readonly": 2, "max_execution_time": max(1, round(timeout_s))}
    if max_rows is not None:
        settings |= {"max_result_rows": max_rows, "result_overflow_mode": "break"}
    try:
        rows, types = client.execute(sql, params or None, with_column_types=True, settings=settings)
    except errors.ServerException as exc:
        if exc.code == _CLICKHOUSE_TIMEOUT:
            raise QueryTimeout(f"the query ran longer than {timeout_s:g} s; narrow the time range") from None
        raise ch.server_error(url, exc) from None
    except (errors.NetworkError, errors.SocketTimeoutError, OSError, EOFError) as exc:
        raise FlowscopeError(f"cannot reach {url.where}: {ch.first_line(exc)}") from None
    finally:
        client.disconnect()
    return to_table([name for name, _ in types], rows[:max_rows] if max_rows is not None else rows)


def _postgres(
    source: str, sql: str, params: dict[str, Any] | None, timeout_s: float | None, max_rows: int | None
) -> pa.Table:
    import psycopg

    from flowscope.db import postgres as pg

    target = pg.PostgresURL.parse(source)
    with pg.connect(target, "flowscope-report") as con:
        try:
            if timeout_s is not None:
                con.read_only = True
                con.execute("SELECT set_config('statement_timeout', %s, false)", (f"{round(timeout_s * 1000)}ms",))
            cursor = con.execute(sql, params or None)
            rows = cursor.fetchall() if max_rows is None else cursor.fetchmany(max_rows)
        except psycopg.errors.QueryCanceled:
            raise QueryTimeout(f"the query ran longer than {timeout_s:g} s; narrow the time range") from None
        except psycopg.Error as exc:
            raise FlowscopeError(f"PostgreSQL at {target.shown}: {' '.join(str(exc).split())}") from None
        names = [column.name for column in cursor.description or ()]
        return to_table(names, rows)


def table_names(source: str) -> frozenset[str]:
    """The tables of the database ``source`` names; on ClickHouse none of the roll-ups when a Kafka-engine
    table feeds ``flows_raw`` (its views do not feed theirs: their roll-ups would miss those flows)."""
    if source.startswith("clickhouse://"):
        from flowscope.db.clickhouse_kafka import KAFKA_TABLE

        names = run_sql(source, "SELECT name FROM system.tables WHERE database = currentDatabase()")
        found = frozenset(names.column(0).to_pylist())
        return frozenset(n for n in found if not n.startswith("rollup_")) if KAFKA_TABLE in found else found
    names = run_sql(source, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return frozenset(names.column(0).to_pylist())
