"""A reduction over a whole input, one row per key however large the input (``spilling.Fold`` with
``apply.Reducer`` as its merge): ``materialize``'s whole reduction views, and ``read FILE --reduce`` over
each input unit (``reduced_units``).

Rows reduced once may be reduced again (held batches re-reduced when the budget fills) only where that gives
what one reduction of the records gives (``merges_exactly``): the ``first``/``last`` picks and the record
order of reduced rows must still be their records'. Otherwise records are held and spilled as they came and
each spill file is reduced once. Either way the result is the reduction of all records at once (tests hold it
to the SQL view on random data, with budgets small enough to re-reduce and spill).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path

import pyarrow as pa

from flowscope.pipeline import Batch, Checkpoint, table_of
from flowscope.reduce.apply import Reducer
from flowscope.reduce.spec import DURATION, Reduction
from flowscope.schema import FLOWS, conform
from flowscope.spilling import SPILL_FILES, Fold

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


def reduced_units(
    source: Iterable[Batch | Checkpoint], reduction: Reduction
) -> Generator[Batch | Checkpoint, None, None]:
    """``source`` with the flows of each unit (the batches before a checkpoint, or before the end) reduced as a
    whole, one row per key, yielded just before its checkpoint; other tables pass as they come. Spill files
    go under the system's temporary directory; close the iterator (``contextlib.closing``) to remove them on
    an error or Ctrl-C as well."""
    fold: Fold | None = None
    try:
        for item in source:
            if isinstance(item, Checkpoint):
                if fold is not None:
                    yield from fold.results()
                    fold.close()
                    fold = None
                yield item
                continue
            table = item if isinstance(item, pa.Table) else pa.Table.from_batches([item])
            if table_of(table) != FLOWS:
                yield item
                continue
            table = conform(table)
            if fold is None:
                directory = Path(tempfile.gettempdir())
                fold = whole_fold(reduction, table.schema, directory, lambda: SPILL_FILES * HELD_ROWS)
            fold.add(table)
        if fold is not None:
            yield from fold.results()
    finally:
        if fold is not None:
            fold.close()


@contextlib.contextmanager
def units_reduced(
    source: Iterable[Batch | Checkpoint], reduction: Reduction | None
) -> Iterator[Iterable[Batch | Checkpoint]]:
    """``source`` with each unit's flows reduced whole (``reduced_units``; ``source`` itself without a
    reduction), closed on leaving: spill files are removed on an error or Ctrl-C too. The caller's per-batch
    transforms then leave the reduction out (``ReadOptions.transforms(per_batch_reduce=False)``)."""
    if reduction is None:
        yield source
        return
    with contextlib.closing(reduced_units(source, reduction)) as reduced:
        yield reduced
