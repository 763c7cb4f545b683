"""Running a reduction on an Arrow table: one batch at ingest (``--reduce``) or a partition at compaction."""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.reduce.spec import Reduction, load
from flowscope.reduce.sql import DURATION_COLUMN, Plan, plan, quote

_ORDER = "__order"


def record_ranks(table: pa.Table) -> tuple[np.ndarray, np.ndarray | None]:
    """Each row's rank in record order (start time, then arrival; null start times first), and the
    rows by rank (None when rows already are in record order, the usual case)."""
    n = table.num_rows
    identity = np.arange(n, dtype=np.int64)
    if "time_flow_start" not in table.column_names:
        return identity, None
    starts = pc.fill_null(pc.cast(table.column("time_flow_start"), pa.int64()), np.iinfo(np.int64).min).to_numpy()
    if bool(np.all(starts[1:] >= starts[:-1])):
        return identity, None
    by_rank = np.argsort(starts, kind="stable")
    ranks = np.empty(n, dtype=np.int64)
    ranks[by_rank] = identity
    return ranks, by_rank


class Reducer:
    """Applies one reduction to tables; keeps one DuckDB connection (single-threaded, UTC) for all calls.

    DuckDB does the GROUP BY (keys, aggregates, each group's first and last row number);
    first/last fields are then gathered from those rows with Arrow ``take``.
    """

    def __init__(self, reduction: Reduction, *, threads: int = 1) -> None:
        self.reduction = reduction
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET TimeZone = 'UTC'")
        self._con.execute(f"SET threads = {int(threads)}")
        self._plans: dict[pa.Schema, Plan] = {}

    def _plan(self, schema: pa.Schema) -> Plan:
        """The plan for tables of this schema (DuckDB types come from a zero-row probe; cached)."""
        if schema not in self._plans:
            self._con.register("probe", schema.empty_table())
            try:
                described = self._con.sql("SELECT * FROM probe")
                columns = [(n, str(t)) for n, t in zip(described.columns, described.types, strict=True)]
            finally:
                self._con.unregister("probe")
            self._plans[schema] = plan(self.reduction, "batch", columns, quote(_ORDER))
        return self._plans[schema]

    def __call__(self, table: pa.Table) -> pa.Table:
        if table.num_rows < 2:
            return table
        ranks, by_rank = record_ranks(table)
        steps = self._plan(table.schema)
        needed = [name for name, source in steps.sources.items() if source == "group"]
        if "duration" in steps.sources.values():
            needed += ["time_flow_start", "time_flow_end"]
        scanned = table.select(list(dict.fromkeys(needed))).append_column(_ORDER, pa.array(ranks))
        self._con.register("batch", scanned)
        try:
            groups = self._con.sql(steps.group_sql).to_arrow_table()
        finally:
            self._con.unregister("batch")
        rows = {}
        for source in ("first", "last"):
            picked = groups.column(f"__{source}").combine_chunks()
            rows[source] = picked if by_rank is None else pa.array(by_rank[picked.to_numpy()])
        output = []
        for field in table.schema:
            source = steps.sources[field.name]
            if source == "group":
                column = groups.column(field.name)
            elif source == "duration":
                start = output[table.schema.get_field_index("time_flow_start")]
                ends = pc.add(pc.cast(start, pa.int64()), groups.column(DURATION_COLUMN))
                column = pc.cast(ends, pa.int64()).cast(field.type)
            else:
                column = table.column(field.name)
                if column.null_count == len(column):  # common: fields a source does not fill
                    column = pa.nulls(groups.num_rows, field.type)
                else:
                    column = column.take(rows[source])
            output.append(column.cast(field.type) if column.type != field.type else column)
        return pa.Table.from_arrays(output, schema=table.schema)


def transform(name_or_path: str, *, threads: int = 1) -> Callable[[pa.Table], pa.Table]:
    """The reduction as a batch transform, for ``pipeline.run`` (ingest) and ``maintenance.compact(reduce=...)``."""
    return Reducer(load(name_or_path), threads=threads)
