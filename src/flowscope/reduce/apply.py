"""Running a reduction on an Arrow table: one batch at ingest (``--reduce``) or a partition at compaction."""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.reduce.spec import Reduction, load
from flowscope.reduce.sql import reduce_sql

_ORDER = "__order"


def record_order(table: pa.Table) -> pa.Array:
    """Each row's rank by start time, then position (arrival); null start times count as the earliest."""
    n = table.num_rows
    if "time_flow_start" not in table.column_names:
        return pa.array(np.arange(n, dtype=np.int64))
    starts = pc.fill_null(pc.cast(table.column("time_flow_start"), pa.int64()), np.iinfo(np.int64).min).to_numpy()
    if n < 2 or bool(np.all(starts[1:] >= starts[:-1])):
        return pa.array(np.arange(n, dtype=np.int64))
    ranks = np.empty(n, dtype=np.int64)
    ranks[np.argsort(starts, kind="stable")] = np.arange(n, dtype=np.int64)
    return pa.array(ranks)


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
        numbered = table.append_column(_ORDER, record_order(table))
        self._con.register("batch", numbered)
        try:
            described = self._con.sql("SELECT * FROM batch")
            columns = [
                (name, str(duck_type))
                for name, duck_type in zip(described.columns, described.types, strict=True)
                if name != _ORDER
            ]
            sql = reduce_sql(self.reduction, "batch", columns, _ORDER)
            reduced = self._con.sql(sql).to_arrow_table()
        finally:
            self._con.unregister("batch")
        return reduced.cast(pa.schema([table.schema.field(name) for name in reduced.column_names]))


def transform(name_or_path: str, *, threads: int = 1) -> Callable[[pa.Table], pa.Table]:
    """The reduction as a batch transform, for ``pipeline.run`` (ingest) and ``maintenance.compact(reduce=...)``."""
    return Reducer(load(name_or_path), threads=threads)
