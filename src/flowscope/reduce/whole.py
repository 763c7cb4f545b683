"""A reduction over a whole input, one row per key however large the input (``spilling.Fold`` with
``apply.Reducer`` as its merge).

Rows reduced once may be reduced again (held batches re-reduced when the budget fills) only where that gives
what one reduction of the records gives (``merges_exactly``): the ``first``/``last`` picks and the record
order of reduced rows must still be their records'. Otherwise records are held and spilled as they came and
each spill file is reduced once. Either way the result is the reduction of all records at once (tests hold it
to the SQL view on random data, with budgets small enough to re-reduce and spill).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from flowscope.reduce.apply import Reducer
from flowscope.reduce.spec import DURATION, Reduction
from flowscope.spilling import Fold

HELD_ROWS = 1 << 21
"""Records (or reduced rows) held before they are re-reduced or spilled (``Fold``), so the memory bound: a
few times this many rows of the columns read. Measured on the ``pairs`` view of the issue-17 lake (2.8 M CSV
records, 11 columns holding values, 1.03 M pairs; in process, loaded machine): 2 M re-reduces once and keeps
the rows, peak RSS 704-715 MiB for the view; 4 M holds every record (814-818 MiB, CPU within the noise);
1 M no longer shrinks them enough and spills (502-519 MiB, the spill's extra passes: 5 groupings instead of
2). DuckDB's view peaked at 670-790 MiB."""


def merges_exactly(reduction: Reduction, schema: pa.Schema) -> bool:
    """Whether reducing reduced rows (in the order of their batches) gives the reduction of their records.

    Without a start time (or with it in the key) record order within a key is arrival order, so the first and
    last reduced rows of a key hold its first and last records. Otherwise a reduced row sorts by its start
    time, which is its last record's only where the start is reduced as ``last``: then every ``last`` pick
    and sum, min, max and integer merge combine exactly, but a ``first`` pick, the last non-null value of a
    non-integer ``merge`` or a picked duration would come from the wrong record."""
    names = schema.names
    if "time_flow_start" not in names or "time_flow_start" in reduction.key:
        return True
    if reduction.strategy("time_flow_start") != "last":
        return False
    derived_end = reduction.reduces_duration(names) and "time_flow_end" not in reduction.key
    for field in schema:
        if field.name in reduction.key or (derived_end and field.name == "time_flow_end"):
            continue
        strategy = reduction.strategy(field.name)
        if strategy == "first" or (strategy == "merge" and not pa.types.is_integer(field.type)):
            return False
    return not derived_end or reduction.fields[DURATION] in ("sum", "min", "max")


def whole_fold(
    reduction: Reduction,
    schema: pa.Schema,
    directory: Path,
    expected_rows: Callable[[], int],
    held_rows: int | None = None,
) -> Fold:
    """A ``Fold`` reducing tables of ``schema`` (added in record arrival order) to one row per key; spill
    files go in a hidden directory under ``directory``."""
    return Fold(
        Reducer(reduction),
        reduction.key,
        held_rows=HELD_ROWS if held_rows is None else held_rows,
        directory=directory,
        expected_rows=expected_rows,
        mergeable=merges_exactly(reduction, schema),
    )
