"""The derived views: every built-in reduction over ``flows``, and ``services_by_day`` over ``pairs``.

Reduction views order records for first/last by start time, then by lake file and row
within it (the order they were written). ``services_by_day``: for each ``pairs`` record,
every endpoint whose port is below 1024 is a service, keyed by (UTC day of the record's
start, the service address with its last IPv4 octet dropped or its IPv6 /48, port), and
counting what the service sent: forward counters when it is the source, backward
counters when it is the destination.

A connection gets only the derived views its SQL names (``views_named``), because DuckDB
binds a view when it is created, and binding a lake scan reads every Parquet footer: on a
lake of 2,048 files (2 M demo flows written 1,000 rows per file) creating all three took
2.4 s of the 2.7 s ``open_lake`` cost (1.2 s since ``flows`` is described from the catalog,
``tables.view_columns``), for queries that mostly read ``flows`` alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowscope.errors import FlowscopeError
from flowscope.lake.layout import Lake
from flowscope.query.tables import table_source, view_columns
from flowscope.reduce.spec import BUILTIN, Reduction
from flowscope.reduce.sql import quote, reduce_sql

if TYPE_CHECKING:  # DuckDB loads with a connection (query.connection), not with the view catalogue
    import duckdb

_PARTITION_COLUMNS = ("date", "hour")


@dataclass(frozen=True)
class DerivedView:
    name: str
    description: str
    key: tuple[str, ...]
    sql: Callable[[duckdb.DuckDBPyConnection, Lake], str]
    """The SELECT defining the view, given a connection with the lake's table views and SQL helpers."""
    for_keys: Callable[[duckdb.DuckDBPyConnection, Lake, str], str] | None = None
    """The view's rows for just the keys an SQL relation (of the key columns) holds, or None when the view can
    only be computed whole. Lets ``materialize`` recompute only the keys new lake files touch."""


def reduction_over_flows(
    reduction: Reduction,
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    only: Sequence[str] | None = None,
    keys: str | None = None,
) -> str:
    """SQL reducing all of ``flows`` (or just the columns ``only``, which must cover what the reduction uses);
    with ``keys`` (an SQL relation of the key columns) only the records of those keys."""
    columns = [
        (name, kind)
        for name, kind in view_columns(con, "flows")
        if name not in _PARTITION_COLUMNS and (only is None or name in only)
    ]
    names = ", ".join(quote(name) for name, _ in columns)
    if "flows" in lake.tables():
        # DuckDB numbers the files of a glob in sorted name order, which is the order they were written.
        source = table_source(lake, "flows")
        if keys is not None:
            match = " AND ".join(f"__flows.{quote(k)} = __keys.{quote(k)}" for k in reduction.key)
            source = f"{source} AS __flows SEMI JOIN ({keys}) AS __keys ON {match}"
        relation = f"(SELECT {names}, file_index AS __file, file_row_number AS __row FROM {source})"
    else:
        relation = f"(SELECT {names}, 0::UBIGINT AS __file, 0::BIGINT AS __row FROM flows)"
    # Record order: start time, then lake file and row within it (the order they were written).
    return reduce_sql(reduction, relation, columns, "__file", "__row")


def _reduction_view(reduction: Reduction) -> DerivedView:
    return DerivedView(
        reduction.name,
        reduction.description,
        reduction.key,
        lambda con, lake: reduction_over_flows(reduction, con, lake),
        lambda con, lake, keys: reduction_over_flows(reduction, con, lake, keys=keys),
    )


_SERVICE_COLUMNS = (
    "time_flow_start", "time_flow_end", "src_addr", "src_port", "dst_addr", "dst_port",
    "packets", "bytes", "packets_rev", "bytes_rev",
)  # fmt: skip


def _services_by_day(con: duckdb.DuckDBPyConnection, lake: Lake) -> str:
    day = "CAST(timezone('UTC', time_flow_start) AS DATE)"
    # The pairs reduction over just the columns needed here (the full pairs view carries every column),
    # computed once (MATERIALIZED) for both ends of each pair.
    pairs = reduction_over_flows(BUILTIN["pairs"], con, lake, only=_SERVICE_COLUMNS)
    return f"""
        WITH p AS MATERIALIZED (
            SELECT {day} AS day, src_addr, src_port, dst_addr, dst_port, packets, bytes, packets_rev, bytes_rev
            FROM ({pairs}) AS pairs
            WHERE (src_port < 1024 OR dst_port < 1024) AND time_flow_start IS NOT NULL
        ), ends AS (
            -- per service address first, so service_net() runs once per address and day, not per pair
            SELECT day, src_addr AS address, src_port AS port, sum(packets) AS packets, sum(bytes) AS bytes
            FROM p WHERE src_port < 1024 AND src_addr IS NOT NULL GROUP BY day, src_addr, src_port
            UNION ALL
            SELECT day, dst_addr, dst_port, sum(packets_rev), sum(bytes_rev)
            FROM p WHERE dst_port < 1024 AND dst_addr IS NOT NULL GROUP BY day, dst_addr, dst_port
        )
        SELECT day, service_net(address) AS service_net, port AS service_port,
            sum(packets)::UBIGINT AS packets, sum(bytes)::UBIGINT AS bytes
        FROM ends GROUP BY day, service_net(address), port
    """


DERIVED_VIEWS: dict[str, DerivedView] = {
    view.name: view
    for view in (
        *(_reduction_view(r) for r in BUILTIN.values()),
        DerivedView(
            "services_by_day",
            "per UTC day, service /24 (IPv6 /48) and port below 1024: packets and bytes the service sent",
            ("day", "service_net", "service_port"),
            _services_by_day,
        ),
    )
}


_WORD = re.compile(r"[a-z_][a-z0-9_]*")


def views_named(sql: str) -> tuple[str, ...]:
    """The derived views whose name is a word of ``sql`` (case-insensitive, as DuckDB identifiers are).

    A superset of the views the SQL reads: a column alias or a string spelling a view's name
    only adds that view's creation cost, never a wrong answer, and no SQL is parsed or bound.
    """
    words = tables_named(sql)
    return tuple(name for name in DERIVED_VIEWS if name in words)


def tables_named(sql: str) -> frozenset[str]:
    """The words of ``sql``: a superset of the lake tables it reads (``open_lake(tables=...)``), by the same
    rule as ``views_named``."""
    return frozenset(_WORD.findall(sql.lower()))


def create_views(con: duckdb.DuckDBPyConnection, lake: Lake, names: Iterable[str], *, temporary: bool = False) -> None:
    """Create the named derived views in a connection that has the lake's table views and SQL helpers
    (``temporary``: views of this connection alone)."""
    for name in names:
        con.execute(f"CREATE {'TEMP ' if temporary else ''}VIEW {quote(name)} AS {DERIVED_VIEWS[name].sql(con, lake)}")


def view_key(name: str) -> tuple[str, ...]:
    """The columns identifying one row of a derived view."""
    if name not in DERIVED_VIEWS:
        raise FlowscopeError(f"{name!r} is not a derived view (known: {', '.join(DERIVED_VIEWS)}); use --key")
    return DERIVED_VIEWS[name].key
