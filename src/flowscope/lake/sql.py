"""DuckDB over the lake: one view per table and SQL helpers for the 16-byte address type.

Helpers available in every ``flowscope query``:

    ip_text(addr)             16-byte address -> '192.0.2.1' / '2001:db8::1'
    ip('192.0.2.1')           text -> 16-byte address (for equality filters)
    in_cidr(addr, '10.0.0.0/8')   prefix filter (a byte-range test, so Parquet statistics prune files)
    mac_text(mac)             uint64 MAC -> 'aa:bb:cc:dd:ee:ff'
    proto_name(proto)         6 -> 'tcp', 17 -> 'udp', ... (the number as text when not a common one)
    scaled(bytes, sampling_rate)  a sampled counter scaled to the traffic it stands for (rate unknown: as is)
    sampling_known(sampling_rate) false where the exporter's sampling rate is unknown (null or 0)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa

from flowscope import addresses
from flowscope.lake.layout import Lake
from flowscope.schema import FLOW_SCHEMA


def _register_helpers(con: duckdb.DuckDBPyConnection) -> None:
    def ip_text(values: pa.Array) -> pa.Array:
        return addresses.format_text(values)

    def ip(values: pa.Array) -> pa.Array:
        return addresses.parse_text(values)

    def cidr_lo(values: pa.Array) -> pa.Array:
        return pa.array([addresses.cidr_bounds(v)[0] for v in values.to_pylist()], pa.binary())

    def cidr_hi(values: pa.Array) -> pa.Array:
        return pa.array([addresses.cidr_bounds(v)[1] for v in values.to_pylist()], pa.binary())

    def mac_text(values: pa.Array) -> pa.Array:
        return addresses.format_mac(values)

    for name, function, argument, result in (
        ("ip_text", ip_text, "BLOB", "VARCHAR"),
        ("ip", ip, "VARCHAR", "BLOB"),
        ("cidr_lo", cidr_lo, "VARCHAR", "BLOB"),
        ("cidr_hi", cidr_hi, "VARCHAR", "BLOB"),
        ("mac_text", mac_text, "UBIGINT", "VARCHAR"),
    ):
        con.create_function(name, function, [argument], result, type="arrow")
    con.execute("CREATE MACRO in_cidr(address, prefix) AS address BETWEEN cidr_lo(prefix) AND cidr_hi(prefix)")
    con.execute(
        "CREATE MACRO proto_name(p) AS CASE p WHEN 1 THEN 'icmp' WHEN 2 THEN 'igmp' WHEN 6 THEN 'tcp' "
        "WHEN 17 THEN 'udp' WHEN 47 THEN 'gre' WHEN 50 THEN 'esp' WHEN 51 THEN 'ah' WHEN 58 THEN 'ipv6-icmp' "
        "WHEN 89 THEN 'ospf' WHEN 132 THEN 'sctp' ELSE CAST(p AS VARCHAR) END"
    )
    con.execute("CREATE MACRO scaled(value, rate) AS value * coalesce(nullif(rate, 0), 1)")
    con.execute("CREATE MACRO sampling_known(rate) AS coalesce(rate, 0) > 0")


def table_source(lake: Lake, table: str) -> str:
    """The ``read_parquet`` expression for one lake table (with ``date`` and ``hour`` partition columns)."""
    pattern = str(lake.table_dir(table) / "date=*" / "hour=*" / "*.parquet").replace("'", "''")
    return (
        f"read_parquet('{pattern}', hive_partitioning = true, union_by_name = true, "
        "hive_types = {'date': DATE, 'hour': INTEGER})"
    )


def _create_views(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    tables = lake.tables()
    for table in tables:
        con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM {table_source(lake, table)}')
    if "flows" not in tables:
        con.register("_no_flows", FLOW_SCHEMA.empty_table())
        con.execute("CREATE VIEW flows AS SELECT *, NULL::DATE AS date, NULL::INTEGER AS hour FROM _no_flows")
    from flowscope.views import register_views  # derived views build on this module (import cycle)

    register_views(con, lake)


@contextmanager
def open_lake(
    lake: Lake | str | os.PathLike[str] | None = None, *, threads: int | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection with the lake's views; compaction waits while it is open."""
    lake = lake if isinstance(lake, Lake) else Lake.at(lake)
    with lake.reading():
        con = duckdb.connect(":memory:")
        try:
            con.execute("SET TimeZone = 'UTC'")
            if threads:
                con.execute(f"SET threads = {int(threads)}")
            _register_helpers(con)
            _create_views(con, lake)
            yield con
        finally:
            con.close()
