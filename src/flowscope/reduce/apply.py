"""Running a reduction on an Arrow table: one batch at ingest (``--reduce``) or a partition at compaction."""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pyarrow as pa

from flowscope.reduce.spec import Reduction, load
from flowscope.reduce.sql import reduce_sql

_ARRIVAL = "__arrival"


class Reducer:
    """Applies one reduction to tables; keeps one DuckDB connection (single-threaded, UTC) for all calls."""

    def __init__(self, reduction: Reduction, *, threads: int = 1) -> None:
        self.reduction = reduction
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET TimeZone = 'UTC'")
        self._con.execute(f"SET threads = {int(threads)}")

    def __call__(self, table: pa.Table) -> pa.Table:
        if table.num_rows < 2:
            return table
        numbered = table.append_column(_ARRIVAL, pa.array(range(table.num_rows), pa.int64()))
        self._con.register("batch", numbered)
        try:
            described = self._con.sql("SELECT * FROM batch")
            columns = [
                (name, str(duck_type))
                for name, duck_type in zip(described.columns, described.types, strict=True)
                if name != _ARRIVAL
            ]
            sql = reduce_sql(self.reduction, "batch", columns, _ARRIVAL)
            reduced = self._con.sql(sql).to_arrow_table()
        finally:
            self._con.unregister("batch")
        return reduced.cast(pa.schema([table.schema.field(name) for name in reduced.column_names]))


def transform(name_or_path: str, *, threads: int = 1) -> Callable[[pa.Table], pa.Table]:
    """The reduction as a batch transform, for ``pipeline.run`` (ingest) and ``maintenance.compact(reduce=...)``."""
    return Reducer(load(name_or_path), threads=threads)
