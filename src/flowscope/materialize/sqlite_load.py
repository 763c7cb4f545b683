"""Rows into a SQLite table without binding values one at a time: one BLOB per column and chunk.

Python's sqlite3 binds each value by itself (a Python object, a type check, a bind call: about 0.25 us),
and JSON text unpacked by SQLite's ``json_each`` and ``->>`` costs more still (0.35 us per ``->>``).
Here each column of a chunk becomes one block of cells of equal width, built with Arrow and numpy:
numbers as decimal text padded with spaces, times as ISO text (``time_text``), text and blobs as their
bytes, with a second block of lengths where they vary. One ``INSERT ... SELECT`` over a counter cuts the
cells back out with ``substr`` and ``CAST``, in SQLite's C (about 0.08 us per fixed-width value).
Measured on ``materialize pairs`` of 1 M rows (11 columns with values): ``executemany`` 3.8 CPU s,
``json_each`` 6.5 s, this 2.3 s, of which SQLite inserting into the keyed table is 0.9 s.

Values keep their stored types and the text form the target always had: integers exactly (an unsigned
value beyond 2**63-1, which a SQLite INTEGER cannot hold, is an error), floats by their shortest
round-trip text (infinities as ``9e999``, NaN as NULL as SQLite stores it), booleans as 0/1, dates
``YYYY-MM-DD``, timestamps ISO 8601 with every stored fraction digit (``Z`` with a zone).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.errors import FlowscopeError
from flowscope.materialize.upsert import quote
from flowscope.time_text import format_timestamps

CHUNK_ROWS = 1 << 17
CHUNK_BYTES = 64 << 20
"""Cells per statement at most (a chunk with a very long value is split until it fits, or is one row)."""
_SPACE = ord(" ")
_INT64_MAX = (1 << 63) - 1

Kind = Literal["INTEGER", "REAL", "TEXT", "BLOB"]


@dataclass
class _Cells:
    """One column's values as bytes: ``data`` holds them back to back (nulls empty), ``offsets`` where each starts."""

    name: str
    kind: Kind
    data: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    nulls: np.ndarray | None
    """True where the value is null; None when none is."""

    def width(self, start: int, stop: int) -> int:
        return max(int(self.lengths[start:stop].max()), 1)

    def fixed(self, start: int, stop: int) -> bool:
        """Whether every value of the rows has the same length and none is null: no lengths needed."""
        lengths = self.lengths[start:stop]
        return self.nulls is None and int(lengths.min()) == int(lengths.max()) > 0


def insert(cursor: sqlite3.Cursor, table: str, rows: pa.Table) -> None:
    """All ``rows`` into ``table`` (quoted name), in row order; columns null in every row are left out
    (NULL by default)."""
    columns = [
        _cells(name, rows.column(name)) for name in rows.column_names if rows.column(name).null_count < rows.num_rows
    ]
    if not columns or not rows.num_rows:
        return
    names = ", ".join(quote(column.name) for column in columns)
    for start, stop in _chunks(columns, 0, rows.num_rows):
        values: list[object] = [stop - start]
        expressions = [_expression(column, start, stop, values) for column in columns]
        counter = "WITH RECURSIVE c(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM c WHERE n < ?1 - 1) "
        sql = f"{counter}INSERT INTO {table} ({names}) SELECT {', '.join(expressions)} FROM c"
        cursor.execute(sql, values)


def _chunks(columns: list[_Cells], start: int, stop: int) -> Iterator[tuple[int, int]]:
    """Row ranges of at most ``CHUNK_ROWS`` whose padded cells stay within ``CHUNK_BYTES`` (halved until they
    do: one long value only narrows the chunks around it)."""
    for first in range(start, stop, CHUNK_ROWS):
        last = min(first + CHUNK_ROWS, stop)
        size = (last - first) * sum(column.width(first, last) for column in columns)
        if size <= CHUNK_BYTES or last - first == 1:
            yield first, last
        else:
            middle = (first + last) // 2
            yield from _chunks(columns, first, middle)
            yield from _chunks(columns, middle, last)


def _expression(column: _Cells, start: int, stop: int, values: list[object]) -> str:
    """The SQL reading ``column``'s value of row ``n`` of the chunk; appends the blobs it binds to ``values``."""
    width = column.width(start, stop)
    values.append(_block(column, start, stop, width))
    cell = f"substr(?{len(values)}, n * {width} + 1, {width})"
    if column.kind in ("INTEGER", "REAL"):
        if column.nulls is not None:  # a null is a cell of spaces, which no number is
            cell = f"NULLIF({cell}, X'{'20' * width}')"
        return f"CAST({cell} AS {column.kind})"
    if not column.fixed(start, stop):
        lengths = column.lengths[start:stop]
        if column.nulls is not None:  # stored one more, 0 for null: substr(.., NULL) is NULL
            lengths = np.where(column.nulls[start:stop], 0, lengths + 1)
        block, digits = _digits(lengths)
        values.append(block)
        length = f"CAST(substr(?{len(values)}, n * {digits} + 1, {digits}) AS INTEGER)"
        if column.nulls is not None:
            length = f"NULLIF({length}, 0) - 1"
        cell = f"substr(?{len(values) - 1}, n * {width} + 1, {length})"
    return f"CAST({cell} AS TEXT)" if column.kind == "TEXT" else cell


def _block(column: _Cells, start: int, stop: int, width: int) -> memoryview:
    """The rows' cells, ``width`` bytes each, values left-aligned and padded with spaces."""
    data = column.data[column.offsets[start] : column.offsets[stop]]
    if column.fixed(start, stop):
        return np.ascontiguousarray(data).data
    block = np.full((stop - start, width), _SPACE, np.uint8)
    block[np.arange(width) < column.lengths[start:stop, None]] = data
    return block.reshape(-1).data


def _digits(numbers: np.ndarray) -> tuple[memoryview, int]:
    """Non-negative integers as zero-padded decimal text of one width, back to back, and that width."""
    width = len(str(int(numbers.max()))) if len(numbers) else 1
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    text = (numbers.astype(np.int64)[:, None] // powers % 10 + ord("0")).astype(np.uint8)
    return text.reshape(-1).data, width


def _cells(name: str, column: pa.ChunkedArray) -> _Cells:
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    kind, text = _text(name, array)
    binary = text.cast(pa.large_binary())
    if binary.null_count:
        binary = pc.fill_null(binary, b"")
    buffers = binary.buffers()
    offsets = np.frombuffer(buffers[1], np.int64, len(binary) + 1, binary.offset * 8)
    data = np.frombuffer(buffers[2], np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    nulls = text.is_null().to_numpy(zero_copy_only=False) if text.null_count else None  # NaN included
    return _Cells(name, kind, data, offsets, np.diff(offsets), nulls)


def _text(name: str, array: pa.Array) -> tuple[Kind, pa.Array]:
    """The column's values as text or bytes (nulls stay null), and the type SQLite casts them back to."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        return _text(name, array.cast(kind.value_type))
    if pa.types.is_boolean(kind):
        return "INTEGER", array.cast(pa.int8()).cast(pa.string())
    if pa.types.is_integer(kind):
        if kind == pa.uint64() and (pc.max(array).as_py() or 0) > _INT64_MAX:
            raise FlowscopeError(
                f"column {name} holds {pc.max(array).as_py()}, beyond SQLite's largest INTEGER (2**63-1)"
            )
        return "INTEGER", array.cast(pa.string())
    if pa.types.is_floating(kind):
        array = array.cast(pa.float64())
        infinite = pc.is_inf(array)
        text = pc.if_else(pc.is_nan(array), pa.scalar(None, pa.string()), array.cast(pa.string()))
        text = pc.if_else(infinite, pc.if_else(pc.greater(array, 0), "9e999", "-9e999"), text)
        return "REAL", text
    if pa.types.is_timestamp(kind):
        return "TEXT", format_timestamps(array)
    if pa.types.is_date(kind):
        days = array.cast(pa.date32()).to_numpy(zero_copy_only=False).astype("datetime64[D]")
        missing = pc.is_null(array).to_numpy(zero_copy_only=False)
        return "TEXT", pa.array(np.datetime_as_string(days), pa.string(), mask=missing)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "TEXT", array
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        return "BLOB", array
    raise FlowscopeError(f"column {name} has type {kind}, which the SQLite target cannot store")
