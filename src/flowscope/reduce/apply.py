"""Running a reduction on an Arrow table: one batch at ingest (``--reduce``) or a partition at compaction."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.reduce.spec import DURATION, Reduction, load
from flowscope.reduce.sql import DURATION_COLUMN, Plan, plan, quote

_ORDER = "__order"
_GROUP = "__group"
_CODE_LIMIT = 1 << 62


def _column_ids(column: pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """Per row a number in ``range(count)`` that is equal exactly when the values are (nulls alike).

    Narrow integers are their own numbers (no hashing); anything else is dictionary-encoded.
    """
    kind = column.type
    if pa.types.is_integer(kind) and kind.bit_width <= 16:
        low = 0 if pa.types.is_unsigned_integer(kind) else -(1 << (kind.bit_width - 1))
        span = 1 << kind.bit_width
        ids = pc.fill_null(pc.subtract(pc.cast(column, pa.int64()), low), span)
        return ids.to_numpy(), span + 1
    encoded = pc.dictionary_encode(column, null_encoding="encode").combine_chunks()
    return encoded.indices.to_numpy().astype(np.int64), max(len(encoded.dictionary), 1)


def group_codes(table: pa.Table, key: Sequence[str]) -> list[pa.Array]:
    """Int64 columns whose values are equal together exactly when the rows' key values are.

    The key columns' ids (``_column_ids``) are packed positionally into as few int64 codes
    as fit without overflow: grouping by one or two integers is much cheaper than by the key
    columns themselves (16-byte addresses), and packing never needs a renumbering pass.
    """
    codes: list[pa.Array] = []
    packed: np.ndarray | None = None
    size = 1
    for name in key:
        ids, count = _column_ids(table.column(name))
        if packed is not None and size * count < _CODE_LIMIT:
            packed, size = packed * count + ids, size * count
            continue
        if packed is not None:
            codes.append(pa.array(packed))
        packed, size = ids, count
    if packed is not None:
        codes.append(pa.array(packed))
    return codes


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

    DuckDB does the GROUP BY on the rows' ``group_codes`` (aggregates, each group's first and
    last row number); key fields and first/last fields are then gathered from those rows
    with Arrow ``take``.
    """

    def __init__(self, reduction: Reduction, *, threads: int = 1) -> None:
        self.reduction = reduction
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET TimeZone = 'UTC'")
        self._con.execute(f"SET threads = {int(threads)}")
        self._plans: dict[tuple[pa.Schema, int], Plan] = {}

    def _plan(self, schema: pa.Schema, codes: int) -> Plan:
        """The plan for tables of this schema grouped by ``codes`` code columns (DuckDB types come
        from a zero-row probe; cached).

        The key fields are planned as taken from each group's first record while the GROUP BY
        runs on the ``codes`` columns ``__group0``... (``group_codes``); with no codes it runs on
        the key fields themselves.
        """
        if (schema, codes) not in self._plans:
            self._con.register("probe", schema.empty_table())
            try:
                described = self._con.sql("SELECT * FROM probe")
                columns = [(n, str(t)) for n, t in zip(described.columns, described.types, strict=True)]
            finally:
                self._con.unregister("probe")
            steps = plan(self.reduction, "batch", columns, quote(_ORDER))  # errors name the user's key fields
            if codes:
                names = [f"{_GROUP}{i}" for i in range(codes)]
                by_code = dataclasses.replace(self.reduction, key=tuple(names))
                rest = [(name, kind) for name, kind in columns if name not in self.reduction.key]
                steps = plan(by_code, "batch", [*((c, "BIGINT") for c in names), *rest], quote(_ORDER))
                sources = {name: "first" if name in self.reduction.key else steps.sources[name] for name, _ in columns}
                steps = Plan(steps.group_sql, sources)
            self._plans[schema, codes] = steps
        return self._plans[schema, codes]

    def _by_code(self) -> bool:
        """Whether the key can be grouped by code: not when it holds a time the reduced duration uses."""
        times = {"time_flow_start", "time_flow_end"} & set(self.reduction.key)
        return not (times and DURATION in self.reduction.fields)

    def __call__(self, table: pa.Table) -> pa.Table:
        if table.num_rows < 2:
            return table
        ranks, by_rank = record_ranks(table)
        codes = group_codes(table, self.reduction.key) if self._by_code() else []
        steps = self._plan(table.schema, len(codes))
        needed = [name for name, source in steps.sources.items() if source == "group"]
        if "duration" in steps.sources.values():
            needed += ["time_flow_start", "time_flow_end"]
        scanned = table.select(list(dict.fromkeys(needed)))
        for i, code in enumerate(codes):
            scanned = scanned.append_column(f"{_GROUP}{i}", code)
        scanned = scanned.append_column(_ORDER, pa.array(ranks))
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
                else:  # take from one contiguous array: take across many chunks is far slower
                    column = column.combine_chunks().take(rows[source])
            output.append(column.cast(field.type) if column.type != field.type else column)
        return pa.Table.from_arrays(output, schema=table.schema)


def transform(name_or_path: str, *, threads: int = 1) -> Callable[[pa.Table], pa.Table]:
    """The reduction as a batch transform, for ``pipeline.run`` (ingest) and ``maintenance.compact(reduce=...)``."""
    return Reducer(load(name_or_path), threads=threads)
