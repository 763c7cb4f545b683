"""Rows into a SQLite table without binding values one at a time: one BLOB per column and chunk.

Python's sqlite3 binds each value by itself (a Python object, a type check, a bind call: about 0.25 us),
and JSON text unpacked by SQLite's ``json_each`` and ``->>`` costs more still (0.35 us per ``->>``).
Here each column of a chunk becomes one block of cells of equal width, built with numpy: integers as
decimal digits, times as ISO text (``time_text``), other text and blobs as their bytes padded with spaces,
with a second block of lengths where those vary. One ``INSERT ... SELECT`` over a counter cuts the cells
back out with ``substr`` and ``CAST``, in SQLite's C (about 0.08 us per fixed-width value). Measured on
``materialize pairs`` of 1 M rows (11 columns with values, 2-core machine at load 6), CPU s of the load:
``executemany`` 3.6-3.8, ``json_each`` + ``->>`` 6.5, this 2.6-2.7 (SQLite's part 2.0-2.1, of which
inserting the rows into the keyed table is 0.9: ``INSERT ... SELECT`` from another table).

Values keep their stored types and the text forms the target always had: integers exactly (an unsigned
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
COUNTER = "temp.flowscope_counter"
"""The numbers 0 to ``CHUNK_ROWS - 1``, one row each: the rows of a statement. Scanning this table costs about
0.03 s per million rows, a recursive CTE counting them 0.19 s."""
CHUNK_BYTES = 64 << 20
"""Cells per statement at most (a chunk with a very long value is split until it fits, or is one row)."""
_SPACE = ord(" ")
_INT64_MAX = (1 << 63) - 1
_QUADS = np.array([f"{value:04d}".encode() for value in range(10_000)], "S4").view(np.uint32)
"""The four ASCII digits of 0000-9999 as one word each."""

Kind = Literal["INTEGER", "REAL", "TEXT", "BLOB"]


@dataclass
class _Integers:
    """An integer column: cells are a sign and zero-padded digits, made per chunk from the values with numpy
    (no text column in between)."""

    name: str
    values: np.ndarray
    nulls: np.ndarray | None
    """True where the value is null; None when none is."""

    def width(self, start: int, stop: int) -> int:
        return _decimal_width(self.values[start:stop])

    def expression(self, start: int, stop: int, values: list[object]) -> str:
        block, width = _decimal(self.values[start:stop], None if self.nulls is None else self.nulls[start:stop])
        values.append(block)
        return f"CAST({_nullable(_cell(len(values), width), width, self.nulls)} AS INTEGER)"


@dataclass
class _Bytes:
    """Any other column as bytes (text forms, text, blobs): ``data`` holds the values back to back (nulls
    empty), ``offsets`` where each starts."""

    name: str
    kind: Kind
    data: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    nulls: np.ndarray | None

    def width(self, start: int, stop: int) -> int:
        return max(int(self.lengths[start:stop].max()), 1)

    def fixed(self, start: int, stop: int) -> bool:
        """Whether every value of the rows has the same length and none is null: no lengths needed."""
        lengths = self.lengths[start:stop]
        return self.nulls is None and int(lengths.min()) == int(lengths.max()) > 0

    def expression(self, start: int, stop: int, values: list[object]) -> str:
        width = self.width(start, stop)
        values.append(self._block(start, stop, width))
        cell = _cell(len(values), width)
        if self.kind == "REAL":
            return f"CAST({_nullable(cell, width, self.nulls)} AS REAL)"
        if not self.fixed(start, stop):
            lengths = self.lengths[start:stop]
            if self.nulls is not None:  # stored one more, 0 for null: substr(.., NULL) is NULL
                lengths = np.where(self.nulls[start:stop], 0, lengths + 1)
            block, digits = _decimal(lengths, None)
            values.append(block)
            length = f"CAST({_cell(len(values), digits)} AS INTEGER)"
            if self.nulls is not None:
                length = f"NULLIF({length}, 0) - 1"
            cell = f"substr(?{len(values) - 1}, n * {width} + 1, {length})"
        return f"CAST({cell} AS TEXT)" if self.kind == "TEXT" else cell

    def _block(self, start: int, stop: int, width: int) -> memoryview:
        """The rows' cells, ``width`` bytes each, values left-aligned and padded with spaces."""
        data = self.data[self.offsets[start] : self.offsets[stop]]
        if self.fixed(start, stop):
            return np.ascontiguousarray(data).data
        block = np.full((stop - start, width), _SPACE, np.uint8)
        block[np.arange(width) < self.lengths[start:stop, None]] = data
        return block.reshape(-1).data


def insert(cursor: sqlite3.Cursor, table: str, rows: pa.Table, order: np.ndarray | None = None) -> None:
    """All ``rows`` into ``table`` (quoted name), in row order or in ``order`` (row indices); columns null in
    every row are left out (NULL by default). Cells are made per slice of ``CHUNK_ROWS``, so they take memory
    for one slice only.

    Making the next statement's cells in a second thread while SQLite ran the current one (it releases the GIL)
    did not pay at load 6 on two cores: 2.91-4.51 s wall against 2.74-4.56 s for 1.03 M rows, the same CPU."""
    present = [name for name in rows.column_names if rows.column(name).null_count < rows.num_rows]
    cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {COUNTER} (n INTEGER PRIMARY KEY)")
    missing = f"SELECT coalesce(max(n) + 1, 0) FROM {COUNTER} UNION ALL SELECT n + 1 FROM c WHERE n < {CHUNK_ROWS - 1}"
    cursor.execute(f"WITH RECURSIVE c(n) AS ({missing}) INSERT INTO {COUNTER} SELECT n FROM c WHERE n < {CHUNK_ROWS}")
    for statement, values in _statements(table, rows.select(present), order):
        cursor.execute(statement, values)


def _statements(table: str, rows: pa.Table, order: np.ndarray | None) -> Iterator[tuple[str, list[object]]]:
    """The ``INSERT`` statements loading ``rows`` (every column with a value) and their bound cells."""
    names = ", ".join(quote(name) for name in rows.column_names)
    for first in range(0, rows.num_rows if rows.num_columns else 0, CHUNK_ROWS):
        part = rows.slice(first, CHUNK_ROWS) if order is None else rows.take(order[first : first + CHUNK_ROWS])
        columns = [_column(name, part.column(name)) for name in part.column_names]
        for start, stop in _chunks(columns, 0, part.num_rows):
            values: list[object] = [stop - start]
            expressions = [column.expression(start, stop, values) for column in columns]
            yield f"INSERT INTO {table} ({names}) SELECT {', '.join(expressions)} FROM {COUNTER} WHERE n < ?1", values


def _chunks(columns: list[_Integers | _Bytes], start: int, stop: int) -> Iterator[tuple[int, int]]:
    """``start``-``stop`` if its padded cells stay within ``CHUNK_BYTES``, else its halves, halved again until
    they do (one long value only narrows the chunks around it) or are one row."""
    size = (stop - start) * sum(column.width(start, stop) for column in columns)
    if size <= CHUNK_BYTES or stop - start == 1:
        yield start, stop
    else:
        middle = (start + stop) // 2
        yield from _chunks(columns, start, middle)
        yield from _chunks(columns, middle, stop)


def _cell(parameter: int, width: int) -> str:
    """Row ``n``'s cell of the block bound as ``?parameter``."""
    return f"substr(?{parameter}, n * {width} + 1, {width})"


def _nullable(cell: str, width: int, nulls: np.ndarray | None) -> str:
    """A number's cell, NULL where it is all spaces (a null; no number is)."""
    return cell if nulls is None else f"NULLIF({cell}, X'{'20' * width}')"


def _decimal_width(numbers: np.ndarray) -> int:
    """Digits of the largest magnitude, and one for a sign when a number is negative."""
    if not len(numbers):
        return 1
    low, high = int(numbers.min()), int(numbers.max())
    return max(len(str(abs(low))), len(str(high))) + (low < 0)


def _decimal(numbers: np.ndarray, nulls: np.ndarray | None) -> tuple[memoryview, int]:
    """Integers as decimal text of one width (``-`` and zeros before the digits), back to back, spaces for the
    nulls; and that width. Four digits per division, looked up in a table: a digit at a time took 0.4 s for
    the seven integer columns of 1 M rows."""
    width = _decimal_width(numbers)
    negative = numbers < 0
    magnitude = numbers.astype(np.uint64)
    magnitude[negative] = ~magnitude[negative] + np.uint64(1)  # two's complement: also -2**63
    digits = width - bool(negative.any())
    groups = -(-digits // 4)
    words = np.empty((len(numbers), groups), np.uint32)
    for group in range(groups):
        words[:, group] = _QUADS[magnitude // np.uint64(10 ** (4 * (groups - 1 - group))) % np.uint64(10_000)]
    text = words.view(np.uint8)[:, 4 * groups - width :]
    if digits < width:
        text[:, 0] = np.where(negative, ord("-"), ord("0"))
    if nulls is not None:
        text[nulls] = _SPACE
    return np.ascontiguousarray(text).reshape(-1).data, width


def _column(name: str, column: pa.ChunkedArray) -> _Integers | _Bytes:
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    nulls = array.is_null().to_numpy(zero_copy_only=False) if array.null_count else None
    kind = array.type
    if pa.types.is_dictionary(kind):
        array, kind = array.cast(kind.value_type), kind.value_type
    if pa.types.is_boolean(kind) or pa.types.is_integer(kind):
        if kind == pa.uint64() and (pc.max(array).as_py() or 0) > _INT64_MAX:
            raise FlowscopeError(
                f"column {name} holds {pc.max(array).as_py()}, beyond SQLite's largest INTEGER (2**63-1)"
            )
        values = array.cast(pa.int64())
        values = (pc.fill_null(values, 0) if nulls is not None else values).to_numpy(zero_copy_only=False)
        return _Integers(name, values, nulls)
    text_kind, text = _text(name, array)
    binary = text.cast(pa.large_binary())
    if binary.null_count:
        binary = pc.fill_null(binary, b"")
    buffers = binary.buffers()
    offsets = np.frombuffer(buffers[1], np.int64, len(binary) + 1, binary.offset * 8)
    data = np.frombuffer(buffers[2], np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    nulls = text.is_null().to_numpy(zero_copy_only=False) if text.null_count else None  # NaN included
    return _Bytes(name, text_kind, data, offsets, np.diff(offsets), nulls)


def _text(name: str, array: pa.Array) -> tuple[Kind, pa.Array]:
    """A column other than integers as text or bytes (nulls stay null), and the type SQLite casts it back to."""
    kind = array.type
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
