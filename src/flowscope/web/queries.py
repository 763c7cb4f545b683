"""The console's queries: SQL built from catalogue names and fixed text, values only as parameters, run with a
time-out and a row limit on a fresh read-only connection to the lake or to a database server.

Every statement is assembled here from three things: fixed SQL, column names looked up in the catalogue
(``schema.column``; a request naming anything else is refused before SQL exists) and a compiled filter
(``query.filter_language``: its own keywords and catalogue names, values as parameters of the store's
driver). Time bounds, bucket sizes and row counts are numbers computed here, never request text.

The statements are the same on every store (``query.dialects`` renders what differs): no window functions
and no WITH (ClickHouse 18.16 has neither), so a time series is two statements (the top keys, then the
buckets with those keys ranked by CASE); keys come back in the store's own form and are bound again as
parameters. Labels (address text, protocol names) are made from the few result rows in Python.

Each statement runs on its own cursor of the server's one DuckDB database (``open_lake(database=...)``), with
temporary views of just the tables it names (binding a view reads the footers of all its files), so each
answer sees the files published since the last one and a compaction waits only as long as one query. A new
database with the helpers per statement cost 80 ms (load average 7); with views of every table as well, the
console's roll-up time series (two statements, 10 M flows, ``flows_5m``) took 473 ms, now 157 ms (median of 5,
same run, load average 6.7).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.db.urls import shown_url
from flowscope.display import textual
from flowscope.errors import FlowscopeError
from flowscope.lake.layout import Lake
from flowscope.query import open_lake, tables_named
from flowscope.query.connection import helper_database
from flowscope.query.dialects import LAKE, Dialect, dialect_for
from flowscope.query.filter_language import CompiledFilter
from flowscope.query.helpers import PROTOCOL_NAMES
from flowscope.query.reports.top import flow_parts
from flowscope.query.stores import QueryTimeout, run_sql, table_names
from flowscope.schema import FLOWS, Column, Role, column, table_columns
from flowscope.transforms.rollups.choose import choose_store_table, choose_table

UNITS = {
    "bps": ("total_bytes * 8", "bits per second, both directions, sampling applied"),
    "pps": ("total_packets", "packets per second, both directions, sampling applied"),
    "fps": ("records", "flow records per second"),
}
"""unit -> (the SQL of one row's contribution over ``flow_parts``' columns, what it means)."""

STEPS_S = (10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86_400, 7 * 86_400)
"""Bucket sizes a time series may use: the smallest that gives at most the points asked for."""

SEARCH_COLUMNS = (
    "time_flow_start", "time_flow_end", "type", "sampler_address", "src_addr", "src_port", "dst_addr", "dst_port",
    "proto", "bytes", "packets", "bytes_rev", "packets_rev", "tcp_flags", "sampling_rate", "in_if", "out_if",
)  # fmt: skip
"""What flow search shows of each flow."""


def dimensions() -> tuple[Column, ...]:
    """The flow columns a chart may be split by: identifiers, labels and addresses (not counters or times)."""
    return tuple(c for c in table_columns(FLOWS) if c.role in (Role.DIMENSION, Role.ADDRESS, Role.MAC))


def dimension(name: str) -> Column:
    found = column(name, FLOWS)
    if found is None or found not in dimensions():
        raise FlowscopeError(f"unknown dimension {name!r} (known: {', '.join(c.name for c in dimensions())})")
    return found


_PROTOCOLS = pa.array([PROTOCOL_NAMES.get(number, str(number)) for number in range(256)])


def labels(table: pa.Table) -> pa.Table:
    """Result columns named like catalogue columns as the text the console shows: addresses, MACs and times
    as ``display.textual`` writes them, protocols by name, other values as text (nulls stay null)."""
    shown = textual(table)
    for index, name in enumerate(shown.column_names):
        values = shown.column(index)
        if name == "proto":
            values = pc.take(_PROTOCOLS, values.cast(pa.int64()))
        elif not pa.types.is_string(values.type):
            values = values.cast(pa.string())
        shown = shown.set_column(index, name, values)
    return shown


def step_for(since: datetime, until: datetime, points: int) -> int:
    span = (until - since).total_seconds()
    return next((step for step in STEPS_S if span / step <= points), STEPS_S[-1])


@dataclass(frozen=True)
class Window:
    """A time range and a filter (compiled for the store): the condition every console query starts from."""

    since: datetime
    until: datetime
    selected: CompiledFilter

    def shifted(self, seconds: int) -> Window:
        """The same span ``seconds`` earlier (the previous period)."""
        return replace(
            self, since=self.since - timedelta(seconds=seconds), until=self.until - timedelta(seconds=seconds)
        )

    @property
    def seconds(self) -> int:
        return max(1, round((self.until - self.since).total_seconds()))


@dataclass(frozen=True)
class Source:
    """Where a query reads: the raw flows, or a roll-up for the part ``covers`` of the window (``choose``)."""

    table: str = FLOWS
    covers: tuple[datetime | None, datetime | None] = (None, None)


def relation(window: Window, columns: list[str], dialect: Dialect, source: Source = Source()) -> str:
    """A FROM item with ``columns`` and ``flow_parts``' ``t``, ``total_bytes``, ``total_packets``, ``records``
    for the window's traffic (a roll-up is only chosen for a window without filter)."""
    where = None if source.table != FLOWS else window.selected.sql
    parts = flow_parts(window.since, window.until, where, dialect, source.table, source.covers)
    shown = ", ".join([*columns, "t", "total_bytes", "total_packets", "records"])
    return "(" + " UNION ALL ".join(f"SELECT {shown} FROM {part}" for part in parts) + ") AS s"


def series_keys_sql(window: Window, by: Column, unit: str, count: int, dialect: Dialect, source: Source) -> str:
    """The ``count`` heaviest values of ``by`` over the window (column ``by.name``)."""
    key = by.name
    return (
        f"SELECT {key}, sum({UNITS[unit][0]}) AS total FROM {relation(window, [key], dialect, source)} "
        f"GROUP BY {key} ORDER BY total DESC, {key} LIMIT {int(count)}"
    )


def series_sql(
    window: Window,
    by: Column | None,
    keys: list[Any],
    unit: str,
    step_s: int,
    dialect: Dialect,
    source: Source,
    *,
    origin_s: int,
) -> tuple[str, dict[str, Any]]:
    """Rows (b, rank, rate): bucket number counted from ``origin_s`` (epoch seconds) in steps of ``step_s``,
    the rank of the row's key among ``keys`` (1..; 0: any other, "Other"), the unit's rate in the bucket."""
    params = dict(window.selected.params)
    ranks = []
    for rank, value in enumerate(keys, 1):
        assert by is not None
        test = (
            f"{by.name} IS NULL" if value is None else f"{by.name} = {dialect.bind(params, f'k{rank}', by.role, value)}"
        )
        ranks.append(f"WHEN {test} THEN {rank}")
    rank_sql = f"CASE {' '.join(ranks)} ELSE 0 END" if ranks else "1"
    bucket = dialect.int_div(
        f"{dialect.epoch_ns('t')} - {int(origin_s) * 1_000_000_000}", str(int(step_s) * 1_000_000_000)
    )
    columns = [by.name] if by is not None else []
    return (
        f"SELECT {bucket} AS b, {rank_sql} AS rank, sum({UNITS[unit][0]}) / {int(step_s)}.0 AS rate "
        f"FROM {relation(window, columns, dialect, source)} GROUP BY b, rank ORDER BY b, rank",
        params,
    )


def sankey_sql(window: Window, by: list[Column], unit: str, count: int, dialect: Dialect) -> str:
    """Rows (one column per dimension, total): the ``count`` heaviest paths through the dimensions."""
    keys = ", ".join(c.name for c in by)
    return (
        f"SELECT {keys}, sum({UNITS[unit][0]}) AS total FROM {relation(window, [c.name for c in by], dialect)} "
        f"GROUP BY {keys} ORDER BY total DESC, {keys} LIMIT {int(count)}"
    )


def flows_sql(window: Window, limit: int, offset: int, dialect: Dialect) -> str:
    """The newest flows of the window first, one page (``limit`` + 1 rows, so the caller sees whether more follow).

    The page's oldest start time is found first from that one column; the full rows are then read only from
    there on. On the 2 M flows of ``demo --flows 2000000`` (best of 5): 585 -> 275 ms for the first page,
    830 -> 200 ms at offset 100,000, against sorting every column of every flow in the window.
    """
    where = " AND ".join([*dialect.time_predicates(window.since, window.until), window.selected.sql])
    return (
        f"SELECT {', '.join(SEARCH_COLUMNS)} FROM {dialect.flows} AS f WHERE {where} AND time_flow_start >= "
        f"(SELECT min(t) FROM (SELECT time_flow_start AS t FROM {dialect.flows} AS g WHERE {where} "
        f"ORDER BY t DESC LIMIT {int(offset) + int(limit) + 1}) AS c) "
        f"ORDER BY time_flow_start DESC, src_addr, dst_addr LIMIT {int(limit) + 1} OFFSET {int(offset)}"
    )


def source_for(queries: Queries, window: Window, columns: list[str], step: int | None) -> Source:
    """The table a query over ``columns`` of the window reads: the coarsest roll-up that answers it exactly
    (``transforms.rollups.choose``; none while a filter is set, as for ``flowscope top --filter``), else the
    raw flows. ``step``: a time series' bucket width, which the roll-up's must divide."""
    if window.selected.params or window.selected.sql != "1 = 1":
        return Source()
    if queries.dialect.name == "lake":
        if queries.lake is None:
            return Source()
        choice = choose_table(queries.lake, columns, since=window.since, until=window.until, step=step)
    else:
        tables = queries.tables() if isinstance(queries, StoreQueries) else frozenset()
        choice = choose_store_table(columns, since=window.since, until=window.until, step=step, tables=tables)
    return Source(choice.table, choice.covers)


class Queries(Protocol):
    """What the API runs its statements on: the lake or a database server."""

    @property
    def dialect(self) -> Dialect: ...

    @property
    def lake(self) -> Lake | None:
        """The lake (its collector health, its roll-up state); None for a server without one."""

    def run(self, sql: str, params: dict[str, Any]) -> pa.Table: ...

    def shown(self) -> str:
        """Where the flows are, for the store page."""
        ...


@dataclass(frozen=True)
class LakeQueries:
    """Runs the console's statements on ``lake``: each on its own connection, interrupted after ``timeout_s``
    seconds (DuckDB has no statement time-out; ``interrupt()`` from a timer thread cancels it), its result
    cut at ``max_rows`` rows."""

    lake: Lake
    timeout_s: float = 10.0
    max_rows: int = 100_000
    threads: int | None = None
    dialect: Dialect = LAKE
    cache: dict[str, duckdb.DuckDBPyConnection] = field(default_factory=dict, compare=False, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def database(self) -> duckdb.DuckDBPyConnection:
        """The server's one DuckDB database with the SQL helpers, made on first use; each statement runs on a
        cursor of it (``open_lake(database=...)``) rather than a database of its own."""
        with self.lock:
            if "database" not in self.cache:
                self.cache["database"] = helper_database(self.threads)
            return self.cache["database"]

    def run(self, sql: str, params: dict[str, Any]) -> pa.Table:
        with open_lake(self.lake, tables=tables_named(sql), database=self.database()) as con:
            timer = threading.Timer(self.timeout_s, con.interrupt)
            timer.start()
            try:
                return con.sql(sql, params=params).limit(self.max_rows).to_arrow_table()
            except duckdb.InterruptException:
                raise QueryTimeout(f"the query ran longer than {self.timeout_s:g} s; narrow the time range") from None
            finally:
                timer.cancel()

    def shown(self) -> str:
        return str(self.lake.root)


@dataclass(frozen=True)
class StoreQueries:
    """Runs the console's statements on a ClickHouse or PostgreSQL server (``source``: its URL): a connection
    per statement, read-only, with the server's own time-out and row limit (``stores.run_sql``); ``lake``:
    the collector's lake for exporter health, when there is one."""

    source: str
    timeout_s: float = 10.0
    max_rows: int = 100_000
    lake: Lake | None = None
    cache: dict[str, frozenset[str]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def dialect(self) -> Dialect:
        return dialect_for(self.source)

    def run(self, sql: str, params: dict[str, Any]) -> pa.Table:
        return run_sql(self.source, sql, params, timeout_s=self.timeout_s, max_rows=self.max_rows)

    def shown(self) -> str:
        return shown_url(self.source)

    def tables(self) -> frozenset[str]:
        """The store's tables, looked up once (``db init`` creating roll-ups later needs a restart to use them)."""
        if "tables" not in self.cache:
            self.cache["tables"] = table_names(self.source)
        return self.cache["tables"]
