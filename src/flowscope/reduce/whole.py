"""A reduction over a whole input, one row per key however large the input (``spilling.Fold`` with
``apply.Reducer`` as its merge).

Rows reduced once may be reduced again (held batches re-reduced when the budget fills) only where that gives
what one reduction of the records gives (``merges_exactly``): the ``first``/``last`` picks and the record
order of reduced rows must still be their records'. Otherwise records are held and spilled as they came and
each spill file is reduced once. Either way the result is the reduction of all records at once (tests hold it
to the SQL view on random data, with budgets small enough to re-reduce and spill).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa

from flowscope.pipeline import Checkpoint, Sink, Transform, table_of
from flowscope.reduce.apply import Reducer
from flowscope.reduce.spec import DURATION, Reduction
from flowscope.schema import FLOWS
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


WHOLE_INPUT_HELD_ROWS = 2 * HELD_ROWS
"""Records held by ``read --reduce-whole`` before re-reducing or spilling: twice the views' budget. On the
issue-17 hostile CSV (2.8 M rows, every pair distinct) the views' 2 M merged rows that did not shrink and spilled
them: 9.39 -> 5.20 s, peak 1212 -> 1092 MiB (DuckDB's GROUP BY: 1108 MiB); the realistic CSV 3.05 -> 3.06 s (the
whole-input helper's A/B, alternated whole processes, loaded machine)."""


class WholeReduction:
    """A sink stage: the flows written to it reduced over the whole input (one row per key), handed to ``sink``
    when the input ends, after ``after`` (the transforms that follow a reduction: enrichment, anonymisation).

    ``read --reduce NAME --reduce-whole``, into files and standard output only: a file is published whole at the
    end anyway, where a per-batch reduction writes a key once per batch it appears in (2.58 M rows for the 1.03 M
    pairs of the issue-17 CSV, where DuckDB's GROUP BY writes one per pair). Other tables (sFlow's
    ``interface_counters``) pass straight through. Memory is bounded by spilling next to the output beyond
    ``WHOLE_INPUT_HELD_ROWS`` (``whole_fold``); an abort (error, Ctrl-C) removes the spill files and aborts
    ``sink``.
    """

    def __init__(
        self,
        sink: Sink,
        reduction: Reduction,
        after: Sequence[Transform],
        directory: Path,
        expected_rows: Callable[[int], int],
    ) -> None:
        """``expected_rows(rows_so_far)``: the input's rows as guessed while reading (how many spill files)."""
        self.sink = sink
        self.name = sink.name
        self.reduction = reduction
        self.after = after
        self.directory = directory
        self.expected_rows = expected_rows
        self.fold: Fold | None = None
        self.rows_in = 0
        self.rows_out = 0

    def write(self, batch: pa.Table) -> None:
        if table_of(batch) != FLOWS:
            self.sink.write(batch)
            return
        if self.fold is None:
            self.fold = whole_fold(
                self.reduction,
                batch.schema,
                self.directory,
                lambda: self.expected_rows(self.rows_in),
                WHOLE_INPUT_HELD_ROWS,
            )
        self.fold.add(batch)
        self.rows_in += batch.num_rows

    def flush(self, checkpoint: Checkpoint | None = None) -> None:
        """Nothing is durable before the end (file destinations publish at close)."""

    def close(self) -> None:
        """Reduce and write (an error or Ctrl-C here: ``pipeline.run`` aborts this stage, as while reading)."""
        if self.fold is not None:
            with self.fold:
                for rows in self.fold.results():
                    for transform in self.after:
                        rows = transform(rows)
                    self.sink.write(rows)
                    self.rows_out += rows.num_rows
        self.sink.close()

    def abort(self) -> None:
        if self.fold is not None:
            self.fold.close()
        self.sink.abort()

    def kept(self) -> list[str]:
        kept: Callable[[], list[str]] = getattr(self.sink, "kept", list)
        return kept()

    def notes(self) -> list[str]:
        notes: Callable[[], list[str]] = getattr(self.sink, "notes", list)
        return notes()
