"""The derived views: every built-in reduction over ``flows``, and ``services_by_day`` over ``pairs``.

Reduction views order records for first/last by start time, then by lake file and row
within it (the order they were written). ``services_by_day``: for each ``pairs`` record,
every endpoint whose port is below 1024 is a service, keyed by (UTC day of the record's
start, the service address with its last IPv4 octet dropped or its IPv6 /48, port), and
counting what the service sent: forward counters when it is the source, backward
counters when it is the destination.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb

from flowscope.errors import FlowscopeError
from flowscope.lake.layout import Lake
from flowscope.lake.sql import table_source
from flowscope.reduce.spec import BUILTIN, Reduction
from flowscope.reduce.sql import quote, reduce_sql

_PARTITION_COLUMNS = ("date", "hour")


@dataclass(frozen=True)
class DerivedView:
    name: str
    description: str
    key: tuple[str, ...]
    sql: Callable[[duckdb.DuckDBPyConnection, Lake], str]
    """The SELECT defining the view, given a connection that already has ``flows`` (and earlier views)."""
    for_keys: Callable[[duckdb.DuckDBPyConnection, Lake, str], str] | None = None
    """The view's rows for just the keys an SQL relation (of the key columns) holds, or None when the view can
    only be computed whole. Lets ``materialize`` recompute only the keys new lake files touch."""


# service_net(addr): '50.31.185' for 50.31.185.39, '2001:db8:1::/48' for an IPv6 address (its /48 in canonical
# text: only the trailing zero groups are compressed). Pure SQL on hex(addr), so DuckDB runs it vectorised.
SERVICE_NET_MACROS = (
    "CREATE MACRO _fs_octet(h, i) AS CAST(CAST('0x' || substr(h, 2 * i + 1, 2) AS INTEGER) AS VARCHAR)",
    "CREATE MACRO _fs_hextet(h, i) AS coalesce(nullif(lower(ltrim(substr(h, 4 * i + 1, 4), '0')), ''), '0')",
    "CREATE MACRO _fs_net6(a, b, c) AS (CASE WHEN c <> '0' THEN a || ':' || b || ':' || c || '::' "
    "WHEN b <> '0' THEN a || ':' || b || '::' WHEN a <> '0' THEN a || '::' ELSE '::' END) || '/48'",
    "CREATE MACRO _fs_net(h) AS CASE WHEN h IS NULL THEN NULL "
    "WHEN substr(h, 1, 24) = '00000000000000000000FFFF' "
    "THEN _fs_octet(h, 12) || '.' || _fs_octet(h, 13) || '.' || _fs_octet(h, 14) "
    "ELSE _fs_net6(_fs_hextet(h, 0), _fs_hextet(h, 1), _fs_hextet(h, 2)) END",
    "CREATE MACRO service_net(address) AS _fs_net(hex(address))",
)


def reduction_over_flows(
    reduction: Reduction,
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    only: Sequence[str] | None = None,
    keys: str | None = None,
) -> str:
    """SQL reducing all of ``flows`` (or just the columns ``only``, which must cover what the reduction uses);
    with ``keys`` (an SQL relation of the key columns) only the records of those keys."""
    described = con.sql("SELECT * FROM flows LIMIT 0")
    columns = [
        (name, str(kind))
        for name, kind in zip(described.columns, described.types, strict=True)
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
    order = "{'t': coalesce(epoch_ns(time_flow_start), -9223372036854775807), 'f': __file, 'r': __row}"
    return reduce_sql(reduction, relation, columns, order, {"f": "__file", "r": "__row"})


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


def register_views(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """Create every derived view (after ``flows`` exists) and the ``service_net`` SQL macro."""
    for macro in SERVICE_NET_MACROS:
        con.execute(macro)
    for view in DERIVED_VIEWS.values():
        con.execute(f"CREATE VIEW {quote(view.name)} AS {view.sql(con, lake)}")


def view_key(name: str) -> tuple[str, ...]:
    """The columns identifying one row of a derived view."""
    if name not in DERIVED_VIEWS:
        raise FlowscopeError(f"{name!r} is not a derived view (known: {', '.join(DERIVED_VIEWS)}); use --key")
    return DERIVED_VIEWS[name].key
