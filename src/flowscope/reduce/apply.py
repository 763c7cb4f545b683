"""Running a reduction on an Arrow table: one batch at ingest (``--reduce``) or a partition at compaction.

The rows are grouped by sorting (``groups``), aggregated with numpy (``aggregate``), and key,
first and last fields are gathered from each group's first and last record with Arrow ``take``.
Query views compute the same reduction in SQL (``sql.reduce_sql``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.arrays import contiguous
from flowscope.reduce.aggregate import aggregate, all_null, pick_valid
from flowscope.reduce.groups import Groups, group
from flowscope.reduce.spec import DURATION, Reduction, load


def record_ranks(table: pa.Table) -> tuple[np.ndarray, np.ndarray | None]:
    """Each row's rank in record order (start time, then arrival; null start times first), and the
    rows by rank (None when rows already are in record order, the usual case)."""
    n = table.num_rows
    if "time_flow_start" not in table.column_names:
        return np.arange(n, dtype=np.int64), None
    starts = pc.fill_null(pc.cast(table.column("time_flow_start"), pa.int64()), np.iinfo(np.int64).min).to_numpy()
    if bool(np.all(starts[1:] >= starts[:-1])):
        return np.arange(n, dtype=np.int64), None
    by_rank = np.argsort(starts, kind="stable")
    ranks = np.empty(n, dtype=np.int64)
    ranks[by_rank] = np.arange(n, dtype=np.int64)
    return ranks, by_rank


def _taken(column: pa.ChunkedArray, rows: pa.Array) -> pa.Array | pa.ChunkedArray:
    if column.null_count == len(column):  # common: fields a source does not fill
        return all_null(column, len(rows))
    return contiguous(column).take(rows)  # from one contiguous array: take across chunks is twice as slow


def _joined(table: pa.Table, names: Sequence[str]) -> pa.Table:
    """``table`` with the columns ``names`` each joined into one chunk."""
    for name in names:
        index = table.schema.get_field_index(name)
        if index >= 0 and table.column(index).num_chunks > 1:
            table = table.set_column(index, table.schema.field(index), contiguous(table.column(index)))
    return table


def _durations(table: pa.Table) -> pa.ChunkedArray:
    """``time_flow_end - time_flow_start`` in nanoseconds (null when either is), chunk by chunk."""
    start, end = (pc.cast(table.column(name), pa.int64()) for name in ("time_flow_start", "time_flow_end"))
    return pc.subtract(end, start)


_END_FROM_DURATION = "start + reduced duration"


class Reducer:
    """Applies one reduction to tables (any schema holding the key fields)."""

    def __init__(self, reduction: Reduction) -> None:
        self.reduction = reduction

    def _strategies(self, names: Sequence[str]) -> dict[str, str]:
        """How each field is reduced: key fields are their group's first record's."""
        reduction = self.reduction
        end_from_duration = reduction.reduces_duration(names) and "time_flow_end" not in reduction.key
        strategies = {name: reduction.strategy(name) for name in names}
        strategies.update(dict.fromkeys(reduction.key, "first"))
        if end_from_duration:
            strategies["time_flow_end"] = _END_FROM_DURATION
        return strategies

    def _grouped(
        self, table: pa.Table, strategies: dict[str, str]
    ) -> tuple[Groups, dict[str, pa.Array | pa.ChunkedArray]]:
        """The groups, and the fields picked from each group's first or last record.

        Grouping, record order and the picks all read the key fields and start times: those are joined
        into one chunk once for this step (joining costs as much as reading), and only for this step
        (holding them longer raises peak memory).
        """
        joined = _joined(table, (*self.reduction.key, "time_flow_start"))
        groups = group(joined, self.reduction.key, *record_ranks(joined))
        rows = {"first": pa.array(groups.first), "last": pa.array(groups.last)}
        picked = {name: _taken(joined.column(name), rows[s]) for name, s in strategies.items() if s in rows}
        return groups, picked

    def _reduced_duration(self, table: pa.Table, groups: Groups) -> pa.Array | pa.ChunkedArray:
        strategy = self.reduction.fields[DURATION]
        durations = _durations(table)
        if strategy in ("first", "last", "merge"):
            return pick_valid(durations, groups, last=strategy != "first")
        return aggregate(durations, strategy, groups, DURATION)

    def __call__(self, table: pa.Table) -> pa.Table:
        self.reduction.check(table.column_names)  # before the shortcut: a bad spec fails on every batch alike
        if table.num_rows < 2:
            return table
        strategies = self._strategies(table.column_names)
        groups, output = self._grouped(table, strategies)
        for name, strategy in strategies.items():
            if name not in output and strategy != _END_FROM_DURATION:
                output[name] = aggregate(table.column(name), strategy, groups, name)
        if _END_FROM_DURATION in strategies.values():
            start = pc.cast(output["time_flow_start"], pa.int64())
            end = pc.add(start, self._reduced_duration(table, groups))
            output["time_flow_end"] = end.cast(table.schema.field("time_flow_end").type)
        return pa.Table.from_arrays([output[name] for name in table.column_names], schema=table.schema)


def transform(name_or_path: str) -> Callable[[pa.Table], pa.Table]:
    """The reduction as a batch transform, for ``pipeline.run`` (ingest) and ``maintenance.compact(reduce=...)``."""
    return Reducer(load(name_or_path))
