"""Running a reduction on an Arrow table: one batch at ingest (``--reduce``) or a partition at compaction.

The rows are grouped by sorting (``groups``), aggregated with numpy (``aggregate``), and key,
first and last fields are gathered from each group's first and last record with Arrow ``take``.
Query views compute the same reduction in SQL (``sql.reduce_sql``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.arrays import contiguous
from flowscope.reduce.aggregate import aggregate, pick_valid
from flowscope.reduce.groups import Groups, group
from flowscope.reduce.spec import DURATION, Reduction, load


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


def _taken(column: pa.ChunkedArray, rows: pa.Array) -> pa.Array:
    if column.null_count == len(column):  # common: fields a source does not fill
        return pa.nulls(len(rows), column.type)
    return contiguous(column).take(rows)  # from one contiguous array: take across chunks is twice as slow


def _durations(table: pa.Table) -> pa.Array:
    """``time_flow_end - time_flow_start`` in nanoseconds (null when either is)."""
    start, end = (pc.cast(contiguous(table.column(name)), pa.int64()) for name in ("time_flow_start", "time_flow_end"))
    return pc.subtract(end, start)


class Reducer:
    """Applies one reduction to tables (any schema holding the key fields)."""

    def __init__(self, reduction: Reduction) -> None:
        self.reduction = reduction

    def _reduced_duration(self, table: pa.Table, groups: Groups) -> pa.Array:
        strategy = self.reduction.fields[DURATION]
        durations = _durations(table)
        if strategy in ("first", "last", "merge"):
            return pick_valid(durations, groups, last=strategy != "first")
        return aggregate(durations, strategy, groups, DURATION)

    def __call__(self, table: pa.Table) -> pa.Table:
        reduction = self.reduction
        reduction.check(table.column_names)  # before the shortcut: a bad spec fails on every batch alike
        if table.num_rows < 2:
            return table
        ranks, by_rank = record_ranks(table)
        groups = group(table, reduction.key, ranks, by_rank)
        picked = {"first": pa.array(groups.first), "last": pa.array(groups.last)}
        end_from_duration = reduction.reduces_duration(table.column_names) and "time_flow_end" not in reduction.key
        output: dict[str, pa.Array] = {}
        for field in table.schema:
            strategy = "first" if field.name in reduction.key else reduction.strategy(field.name)
            if end_from_duration and field.name == "time_flow_end":
                continue  # start + reduced duration, once the start is known
            column = table.column(field.name)
            if strategy in picked:
                output[field.name] = _taken(column, picked[strategy])
            else:
                output[field.name] = aggregate(column, strategy, groups, field.name)
        if end_from_duration:
            start = pc.cast(output["time_flow_start"], pa.int64())
            end = pc.add(start, self._reduced_duration(table, groups))
            output["time_flow_end"] = end.cast(table.schema.field("time_flow_end").type)
        return pa.Table.from_arrays([output[name] for name in table.column_names], schema=table.schema)


def transform(name_or_path: str) -> Callable[[pa.Table], pa.Table]:
    """The reduction as a batch transform, for ``pipeline.run`` (ingest) and ``maintenance.compact(reduce=...)``."""
    return Reducer(load(name_or_path))
