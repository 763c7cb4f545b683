"""A reduction view's whole result computed in this process (``reduce.whole``) instead of by DuckDB.

``materialize`` recomputes a whole view on a first run and after compaction or retention. For the reduction
views DuckDB's plan is a hash GROUP BY that hardly reduces (2.8 M records into 1.03 M groups on 16-byte keys:
two threads each building a nearly full hash table) and a join back for the last record: about 2.5 CPU s.
Here pyarrow reads the lake's flow files in the order the view numbers them (sorted paths), only the
columns that hold a value somewhere (the others, null in every file's statistics, are added as nulls at the
end), and ``apply.Reducer`` sorts the records into groups (``reduce.whole``: bounded memory, spilled by key
hash beyond ``HELD_ROWS``). The result is the view's: the same rows, and the types DuckDB gives them
(addresses as variable binary), which tests compare on every target. Measured (that lake, in process, CPU
user + sys at load 5): 2.06-2.59 s against DuckDB's 3.75-3.90 s; the target's load after it is unchanged.

A target that loads part by part (``Target.loads_in_parts``: a new PostgreSQL table) gets the rows in parts as
they are merged (``PARTS``: the held rows split by ranges of the key's first column), so it loads one part while
the next is merged; every other target gets them as one part. Within a part the rows come grouped by a hash of
their key, not in key order: PostgreSQL's first load sorts each part (then the whole table is in key order),
SQLite's sorts them all its own way (``key_order``: text addresses compare as text, "10.0.0.10" before
"10.0.0.2").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flowscope.errors import FlowscopeError
from flowscope.lake import Lake
from flowscope.materialize.key_order import key_ranges
from flowscope.memory import keep_freed_memory
from flowscope.reduce.spec import DURATION, Reduction
from flowscope.reduce.whole import whole_fold
from flowscope.schema import FLOWS

READ_ROWS = 1 << 20
"""Records read at a time from one file."""
_PARTITION_COLUMNS = ("date", "hour")


class Unsupported(Exception):
    """The lake's files differ in a way only DuckDB's ``union_by_name`` reconciles (a column of two types)."""


def _union(footers: list[pq.FileMetaData]) -> pa.Schema:
    """The columns of all files in order of first appearance (DuckDB's ``union_by_name``)."""
    fields: dict[str, pa.Field] = {}
    for footer in footers:
        for field in footer.schema.to_arrow_schema():
            known = fields.setdefault(field.name, field.remove_metadata())
            if known.type != field.type:
                raise Unsupported(field.name)
    return pa.schema([f for name, f in fields.items() if name not in _PARTITION_COLUMNS])


def _holding_values(footers: list[pq.FileMetaData], schema: pa.Schema) -> set[str]:
    """The columns not null in every row of every file by the files' statistics (no statistics: held)."""
    held: set[str] = set()
    for footer in footers:
        names = footer.schema.to_arrow_schema().names
        for group in range(footer.num_row_groups):
            chunk = footer.row_group(group)
            for index, name in enumerate(names):
                if name in held or name not in schema.names:
                    continue
                stats = chunk.column(index).statistics
                if stats is None or not stats.has_null_count or stats.null_count < chunk.num_rows:
                    held.add(name)
    return held


def _duckdb_type(kind: pa.DataType) -> pa.DataType:
    """The Arrow type DuckDB hands back for a lake column's type (fixed-size binaries become BLOBs)."""
    return pa.binary() if pa.types.is_fixed_size_binary(kind) else kind


def _batches(files: list[Path], footers: list[pq.FileMetaData], schema: pa.Schema) -> Iterator[pa.Table]:
    """Each file's records with the columns of ``schema`` (nulls where a file lacks one), in file order."""
    for path, footer in zip(files, footers, strict=True):
        present = [name for name in schema.names if name in footer.schema.names]
        source = pq.ParquetFile(path, metadata=footer)
        for batch in source.iter_batches(READ_ROWS, columns=present, use_threads=True):
            columns = [
                batch.column(name) if name in present else pa.nulls(batch.num_rows, field.type)
                for name, field in zip(schema.names, schema, strict=True)
            ]
            yield pa.Table.from_arrays(columns, schema=schema)


def _nulls(kind: pa.DataType, n: int, zeros: pa.Buffer) -> pa.Array:
    """``n`` nulls of ``kind`` (at most 8 bytes a value, or variable width) over one shared zeroed buffer:
    ``pa.nulls`` zeroes fresh memory per column."""
    if pa.types.is_string(kind) or pa.types.is_binary(kind):
        return pa.Array.from_buffers(kind, n, [zeros, zeros, zeros], null_count=n)
    return pa.Array.from_buffers(kind, n, [zeros, zeros], null_count=n)


PARTS = 4
"""For a target that loads part by part (``Target.loads_in_parts``), the final merge is handed over in this many
parts when nothing was spilled, so it loads one part while the next is merged (``Fold.results``); split by
ranges of the key's first column (``key_ranges``), so a target sorting each part by the key loads the whole view
in key order. Other targets get one part: splitting cost SQLite 0.13 s of 3.4 (1.03 M rows, 8 runs each, quiet)."""


@contextlib.contextmanager
def reduction_parts(
    lake: Lake, reduction: Reduction, spill_dir: Path, parts: int = 1
) -> Iterator[tuple[Iterator[pa.Table], bool]]:
    """The reduction view of ``reduction`` over ``lake``'s flows, as DuckDB computes it (rows in no order), and
    whether its parts are ranges of the key (``key_ranges``; not when the records were spilled by key hash):
    every record is read on entering (the caller holds the lake's read lock then); the rows are merged as the
    parts are asked for (each key in exactly one part, at least one part; up to ``parts`` of them when nothing
    spilled, one per spill file otherwise). Leaving removes any spill files.

    ``Unsupported`` (on entering) where only DuckDB can tell the columns."""
    # Batch-sized blocks kept on the C heap, Arrow's too: system CPU 0.21-0.28 s against 0.19-1.10 s (page faults
    # of fresh mappings, by the machine's load), peak RSS 623-638 against 682-724 MiB (realistic lake, 3 runs each).
    keep_freed_memory(arrow=True)
    files = sorted(lake.files(FLOWS), key=str) if FLOWS in lake.tables() else []
    try:
        footers = [pq.read_metadata(path) for path in files]
    except (pa.ArrowException, OSError) as exc:
        raise FlowscopeError(f"a damaged lake file ({exc}); flowscope lake info lists damaged files") from exc
    schema = _union(footers)
    if not files:
        raise Unsupported("no flow files")
    reduction.check(schema.names)
    needed = _holding_values(footers, schema) | {*reduction.key, *reduction.fields, "time_flow_start"}
    if DURATION in reduction.fields:
        needed.add("time_flow_end")
    read = pa.schema([field for field in schema if field.name in needed])
    output = pa.schema([pa.field(field.name, _duckdb_type(field.type)) for field in schema])
    with whole_fold(reduction, read, spill_dir, lambda: sum(footer.num_rows for footer in footers)) as fold:
        for table in _batches(files, footers, read):
            fold.add(table)
        ranges = not fold.spilled
        split = (lambda rows: key_ranges(rows, reduction.key, parts)) if parts > 1 else None
        yield _view_parts(fold.results(split), read, output), ranges


def _view_parts(results: Iterator[pa.Table], read: pa.Schema, output: pa.Schema) -> Iterator[pa.Table]:
    """Each part of reduced rows with the view's columns (``output``), or one empty table when there are none."""
    empty = True
    for rows in results:
        empty = False
        yield _view_columns(rows, read, output)
    if empty:
        yield _view_columns(read.empty_table(), read, output)


def _view_columns(rows: pa.Table, read: pa.Schema, output: pa.Schema) -> pa.Table:
    """The reduced ``rows`` (columns ``read``) as the view's, the columns not read added as nulls."""
    zeros = pa.py_buffer(np.zeros((rows.num_rows + 1) * 8, np.uint8))  # offsets, validity and values of nulls
    columns = [
        rows.column(field.name).cast(field.type)
        if field.name in read.names
        else _nulls(field.type, rows.num_rows, zeros)
        for field in output
    ]
    return pa.Table.from_arrays(columns, schema=output)
