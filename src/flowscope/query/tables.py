"""One DuckDB view per lake table, reading its Parquet files with the ``date`` and ``hour`` partition columns."""

from __future__ import annotations

import duckdb

from flowscope.lake.layout import Lake
from flowscope.schema import FLOW_SCHEMA


def table_source(lake: Lake, table: str) -> str:
    """The ``read_parquet`` expression for one lake table (with ``date`` and ``hour`` partition columns)."""
    pattern = str(lake.table_dir(table) / "date=*" / "hour=*" / "*.parquet").replace("'", "''")
    return (
        f"read_parquet('{pattern}', hive_partitioning = true, union_by_name = true, "
        "hive_types = {'date': DATE, 'hour': INTEGER})"
    )


def create_table_views(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """A view per table with files; ``flows`` always exists (typed and empty in a lake without flows yet)."""
    tables = lake.tables()
    for table in tables:
        con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM {table_source(lake, table)}')
    if "flows" not in tables:
        con.register("_no_flows", FLOW_SCHEMA.empty_table())
        con.execute("CREATE VIEW flows AS SELECT *, NULL::DATE AS date, NULL::INTEGER AS hour FROM _no_flows")


def view_columns(con: duckdb.DuckDBPyConnection, view: str) -> list[tuple[str, str]]:
    """A view's columns and DuckDB types, as the catalog recorded them when the view was created.

    Read from ``duckdb_columns()`` rather than by describing ``SELECT * FROM view``, which binds the
    view again and so reads every Parquet footer of its table: 0.27 s against 0.01 s for the
    ``flows`` view of a lake of 2,048 files (2 M demo flows written 1,000 rows per file).
    """
    return [
        (str(name), str(kind))
        for name, kind in con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = current_schema() AND table_name = ? ORDER BY column_index",
            [view],
        ).fetchall()
    ]
