"""The derived views: every built-in reduction over ``flows``, and ``services_by_day`` over ``pairs``.

Reduction views order records for first/last by start time, then by lake file and row
within it (the order they were written). ``services_by_day``: for each ``pairs`` record,
every endpoint whose port is below 1024 is a service, keyed by (UTC day of the record's
start, the service address with its last IPv4 octet dropped or its IPv6 /48, port), and
counting what the service sent: forward counters when it is the source, backward
counters when it is the destination.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from flowscope import addresses
from flowscope.errors import FlowscopeError
from flowscope.lake.layout import Lake
from flowscope.lake.sql import table_source
from flowscope.reduce.spec import BUILTIN, Reduction
from flowscope.reduce.sql import quote, reduce_sql
from flowscope.schema import ADDRESS

_PARTITION_COLUMNS = ("date", "hour")


@dataclass(frozen=True)
class DerivedView:
    name: str
    description: str
    key: tuple[str, ...]
    sql: Callable[[duckdb.DuckDBPyConnection, Lake], str]
    """The SELECT defining the view, given a connection that already has ``flows`` (and earlier views)."""


def service_net(values: pa.Array) -> pa.Array:
    """16-byte addresses -> ``50.31.185`` (IPv4 without its last octet) or ``2001:db8:1::/48`` (IPv6 /48)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = values.cast(ADDRESS)  # DuckDB passes BLOBs as variable-length binary
    matrix = addresses.to_matrix(values).copy()
    v4 = addresses.is_ipv4(values)
    matrix[v4, 15] = 0
    matrix[~v4, 6:] = 0
    valid = None if values.null_count == 0 else values.is_valid().to_numpy(zero_copy_only=False)
    text = addresses.format_text(addresses.from_ipv6_bytes(matrix, valid))
    v4_net = pc.replace_substring_regex(text, r"\.0$", "")
    v6_net = pc.binary_join_element_wise(text, pa.scalar("/48"), "")
    return pc.if_else(pa.array(v4, pa.bool_()), v4_net, v6_net)


def _reduction_sql(reduction: Reduction) -> Callable[[duckdb.DuckDBPyConnection, Lake], str]:
    def build(con: duckdb.DuckDBPyConnection, lake: Lake) -> str:
        described = con.sql("SELECT * FROM flows LIMIT 0")
        columns = [
            (name, str(kind))
            for name, kind in zip(described.columns, described.types, strict=True)
            if name not in _PARTITION_COLUMNS
        ]
        names = ", ".join(quote(name) for name, _ in columns)
        if "flows" in lake.tables():
            # Record order: start time, then lake file and row within it (the order they were written).
            order = "row_number() OVER (ORDER BY time_flow_start NULLS FIRST, filename, file_row_number)"
            relation = f"(SELECT {names}, {order} AS __order FROM {table_source(lake, 'flows')})"
        else:
            relation = f"(SELECT {names}, 0::BIGINT AS __order FROM flows)"
        return reduce_sql(reduction, relation, columns, "__order")

    return build


def _services_by_day(con: duckdb.DuckDBPyConnection, lake: Lake) -> str:
    day = "CAST(timezone('UTC', time_flow_start) AS DATE)"
    return f"""
        SELECT day, service_net, service_port, sum(packets)::UBIGINT AS packets, sum(bytes)::UBIGINT AS bytes
        FROM (
            SELECT {day} AS day, service_net(src_addr) AS service_net, src_port AS service_port, packets, bytes
            FROM pairs WHERE src_port < 1024
            UNION ALL
            SELECT {day}, service_net(dst_addr), dst_port, packets_rev, bytes_rev
            FROM pairs WHERE dst_port < 1024
        ) AS services
        WHERE day IS NOT NULL AND service_net IS NOT NULL
        GROUP BY day, service_net, service_port
    """


DERIVED_VIEWS: dict[str, DerivedView] = {
    view.name: view
    for view in (
        *(DerivedView(r.name, r.description, r.key, _reduction_sql(r)) for r in BUILTIN.values()),
        DerivedView(
            "services_by_day",
            "per UTC day, service /24 (IPv6 /48) and port below 1024: packets and bytes the service sent",
            ("day", "service_net", "service_port"),
            _services_by_day,
        ),
    )
}


def register_views(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """Create every derived view (after ``flows`` exists) and the ``service_net`` SQL function."""
    con.create_function("service_net", service_net, ["BLOB"], "VARCHAR", type="arrow")
    for view in DERIVED_VIEWS.values():
        con.execute(f"CREATE VIEW {quote(view.name)} AS {view.sql(con, lake)}")


def view_key(name: str) -> tuple[str, ...]:
    """The columns identifying one row of a derived view."""
    if name not in DERIVED_VIEWS:
        raise FlowscopeError(f"{name!r} is not a derived view (known: {', '.join(DERIVED_VIEWS)}); use --key")
    return DERIVED_VIEWS[name].key
