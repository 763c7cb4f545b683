"""Per-group values of one column (sum, min, max, merge, first/last non-null), one numpy pass per column whatever
the number of groups: integers are accumulated in table order into their group (``ufunc.at``, exact in any
order), the rest gathered into group order and combined with ``reduceat``.

Nulls are skipped as SQL aggregates skip them; a group with no value gets null.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.arrays import buffer_values, contiguous
from flowscope.errors import FlowscopeError
from flowscope.reduce.groups import Groups

_REDUCE = {"sum": np.add, "min": np.minimum, "max": np.maximum, "merge": np.bitwise_or}


def _number_type(kind: pa.DataType) -> np.dtype:
    """What values of ``kind`` are computed as: float64, uint64 or int64 (times as their int64 count)."""
    return np.dtype(
        np.float64 if pa.types.is_floating(kind) else np.uint64 if pa.types.is_unsigned_integer(kind) else np.int64
    )


def _numbers(array: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """The values as ``_number_type`` (no copy for 64-bit types), and which are valid (None: all)."""
    kind = array.type
    number = _number_type(kind)
    values = buffer_values(array, f"<{number.kind}{kind.bit_width // 8}").astype(number, copy=False)
    if not array.null_count:
        return values, None
    return values, array.is_valid().to_numpy(zero_copy_only=False)


def all_null(column: pa.Array | pa.ChunkedArray, n: int) -> pa.Array | pa.ChunkedArray:
    """``n`` nulls from a column that holds only nulls (and at least ``n`` rows): its head, no copy. ``pa.nulls``
    zeroes fresh memory for each field, a tenth of a second for the unfilled fields of a million groups."""
    return column.slice(0, n)


def _no_value(valid_in_group_order: np.ndarray, groups: Groups) -> np.ndarray:
    return ~np.logical_or.reduceat(valid_in_group_order, groups.starts)


def _in_table_order(
    column: pa.Array | pa.ChunkedArray, groups: Groups, neutral: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Per chunk: its rows' group numbers, their values (``neutral`` where null) and which are valid (None: all)."""
    start = 0
    for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
        if len(chunk):
            values, valid = _numbers(chunk)
            if valid is not None:
                values = np.where(valid, values, neutral)
            yield groups.ids[start : start + len(chunk)], values, valid
        start += len(chunk)


def _accumulated(column: pa.Array | pa.ChunkedArray, strategy: str, groups: Groups, name: str) -> pa.Array:
    """An integer or time column's sum, min or max: each chunk's values are accumulated into their groups in
    table order (``ufunc.at``, exact in any order), with no join of the chunks and no gather into group order."""
    number = _number_type(column.type)
    neutral = 0
    if strategy in ("min", "max"):
        neutral = np.iinfo(number).max if strategy == "min" else np.iinfo(number).min
    reduced = np.full(len(groups.starts), neutral, number)
    has_value = np.zeros(len(groups.starts), bool) if column.null_count else None
    for ids, values, valid in _in_table_order(column, groups, neutral):
        _REDUCE[strategy].at(reduced, ids, values)
        if has_value is not None:
            has_value[ids if valid is None else ids[valid]] = True  # a chunk without nulls has values too
    if strategy == "sum":
        _check_sum_fits(column, reduced, groups, name)
    return pa.array(reduced, mask=None if has_value is None else ~has_value).cast(column.type)


def _check_sum_fits(column: pa.Array | pa.ChunkedArray, sums: np.ndarray, groups: Groups, name: str) -> None:
    """Fail as the views' SQL does where a group's integer sum does not fit the column's type.

    Narrow types were summed exactly in 64 bits. A 64-bit sum can wrap; it cannot when the largest
    value times the largest group fits, the usual case; otherwise the values' high and low 32-bit
    halves are summed apart (exact in 64 bits) and the carried high sum must fit the type's high half.
    """
    kind = column.type
    limits = np.iinfo(kind.to_pandas_dtype())
    if kind.bit_width < 64:
        overflows = int(sums.min()) < limits.min or int(sums.max()) > limits.max
    else:
        largest_group = int(np.diff(groups.starts, append=len(groups.rows)).max())
        pieces = list(_in_table_order(column, groups, 0))
        smallest, largest = min(int(v.min()) for _, v, _ in pieces), max(int(v.max()) for _, v, _ in pieces)
        if limits.min <= smallest * largest_group and largest * largest_group <= limits.max:
            return
        low_sums, high = np.zeros_like(sums), np.zeros_like(sums)
        for ids, values, _ in pieces:
            np.add.at(low_sums, ids, values & 0xFFFFFFFF)
            np.add.at(high, ids, values >> 32)
        high += low_sums >> 32
        overflows = bool(np.any((high < limits.min >> 32) | (high > limits.max >> 32)))
    if overflows:
        raise FlowscopeError(f"the sum of {name} does not fit its type {kind}")


def aggregate(
    column: pa.Array | pa.ChunkedArray, strategy: str, groups: Groups, name: str
) -> pa.Array | pa.ChunkedArray:
    """``sum``, ``min``, ``max`` or ``merge`` (bitwise OR of integers, the last non-null value of anything else)
    of the field ``name``."""
    kind = column.type
    if column.null_count == len(column):
        return all_null(column, len(groups.starts))
    numeric = pa.types.is_integer(kind) or pa.types.is_temporal(kind)
    if strategy == "merge" and not pa.types.is_integer(kind):
        return pick_valid(column, groups, last=True)
    if strategy in ("min", "max") and not numeric:  # text, addresses, floats (NaN sorts last, as in SQL)
        return _extreme_by_rank(contiguous(column), strategy, groups)
    if strategy == "sum" and not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        raise FlowscopeError(f"cannot sum a {kind} field")
    if strategy != "merge" and numeric:
        return _accumulated(column, strategy, groups, name)
    # bitwise OR has no fast ufunc.at and a float sum depends on its order: these are gathered into group order
    values, valid = _numbers(contiguous(column).take(groups.row_array))
    if valid is not None:
        values = np.where(valid, values, 0)
    missing = None if valid is None else _no_value(valid, groups)
    return pa.array(_REDUCE[strategy].reduceat(values, groups.starts), mask=missing).cast(kind)


def pick_valid(column: pa.Array | pa.ChunkedArray, groups: Groups, *, last: bool) -> pa.Array:
    """Each group's first or last non-null value in record order."""
    valid = contiguous(pc.is_valid(column)).to_numpy(zero_copy_only=False)[groups.rows]
    positions = np.arange(len(groups.rows))
    if last:
        picked = np.maximum.reduceat(np.where(valid, positions, -1), groups.starts)
    else:
        picked = np.minimum.reduceat(np.where(valid, positions, len(positions)), groups.starts)
    rows = groups.rows[np.clip(picked, 0, len(positions) - 1)]
    return column.take(pa.array(rows, mask=_no_value(valid, groups)))


def _extreme_by_rank(array: pa.Array, strategy: str, groups: Groups) -> pa.Array:
    """min/max of any sortable type: the group's smallest/largest dense rank, mapped back to a row holding it.

    Dictionary arrays are ranked by their decoded values (Arrow cannot rank them) and taken as they are.
    """
    ranked = array.dictionary_decode() if pa.types.is_dictionary(array.type) else array
    ranks = pc.rank(ranked, sort_keys="ascending", tiebreaker="dense").to_numpy().astype(np.int64)
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    no_value = 0 if strategy == "max" else int(ranks.max()) + 1
    ranks = np.where(valid, ranks, no_value)
    best = _REDUCE[strategy].reduceat(ranks[groups.rows], groups.starts)
    row_of_rank = np.zeros(int(ranks.max()) + 2, np.int64)
    row_of_rank[ranks] = np.arange(len(ranks))
    return array.take(pa.array(row_of_rank[best], mask=best == no_value))
