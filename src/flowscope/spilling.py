"""An exact keyed reduction of an input larger than memory: held, re-reduced, spilled by key hash.

``Fold`` takes tables of rows (records, or rows some reduction already made of them) one at a time and
hands back the reduction of them all, where ``merge`` reduces one table (the roll-ups' sums, a keyed
reduction). Rows are held up to a row budget; when it is reached, the held rows are merged into one
table; when merging no longer shrinks them to half the budget (keys of nearly a row each), they are
spread by a hash of their key over spill files (Arrow IPC, in a hidden directory, at most ``SPILL_FILES``)
and each file is merged on its own at the end: every row of one key lands in the same file, in the order
the rows came. Memory stays within a few budgets of rows however many keys there are; the spill directory
is removed on every exit path (``close``, also on an error or Ctrl-C), and files are deleted as they are
read back.

Where merging rows that were already merged would not give the reduction of the records themselves
(``mergeable=False``: a keyed reduction whose first/last picks need each record's own place in record
order), rows are held as they came and spilled as they are; each spill file, holding every record of its
keys in arrival order, is then reduced once, exactly.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from flowscope.arrays import buffer_values, contiguous, string_parts
from flowscope.memory import return_freed_memory
from flowscope.scratch import owned_folder

SPILL_PREFIX = ".spill-"
"""Spill folders are hidden (lake readers glob ``*.parquet``; ``lake info`` lists no hidden folder)."""
SPILL_FILES = 64
"""At most this many spill files per fold, so as many descriptors: beyond 64 budgets of rows a spill file
holds more than one budget when read back."""

_MIX = np.uint64(0x9E3779B97F4A7C15)


def key_hash(columns: Sequence[pa.Array | pa.ChunkedArray]) -> np.ndarray:
    """A uint64 per row from its key values alone (never from the other rows of its table, unlike a
    dictionary code), so the rows of one key get the same number in every table; null is a value of its own."""
    mixed = np.zeros(len(columns[0]) if columns else 0, np.uint64)
    for column in columns:
        array = contiguous(column)
        valid = array.is_valid().to_numpy(zero_copy_only=False) if array.null_count else None
        for word in _value_hashes(array):
            if valid is not None:
                word = np.where(valid, word, 0)
            mixed = (mixed ^ word) * _MIX
            mixed ^= mixed >> np.uint64(29)
        marks = np.ones(len(mixed), np.uint64) if valid is None else valid.astype(np.uint64)
        mixed = (mixed ^ marks) * _MIX  # mixed in whether or not the table has nulls: a hash of the value alone
    return mixed


def _value_hashes(array: pa.Array) -> list[np.ndarray]:
    """uint64 words that are equal together when the values are (null slots: anything)."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        array, kind = array.dictionary_decode(), kind.value_type
    if pa.types.is_boolean(kind):
        return [array.to_numpy(zero_copy_only=False).astype(np.uint64)]
    if pa.types.is_fixed_size_binary(kind):
        width = kind.byte_width
        matrix = np.zeros((len(array), -(-width // 8) * 8), np.uint8)
        matrix[:, :width] = buffer_values(array, np.uint8, width).reshape(len(array), width)
        return list(matrix.view(np.uint64).T)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_temporal(kind):
        values = buffer_values(array, f"<u{kind.bit_width // 8}")
        return [values.astype(np.uint64)]
    return [_text_hash(array)]


def _text_hash(array: pa.Array) -> np.ndarray:
    """A polynomial hash of each string's or binary's bytes (and its length), vectorised over all of them."""
    offsets, data = string_parts(array)
    offsets = offsets.astype(np.int64)
    lengths = np.diff(offsets)
    hashed = lengths.astype(np.uint64) * _MIX
    total = int(offsets[-1] - offsets[0])
    if total:
        starts = offsets[:-1] - offsets[0]
        position = np.arange(total) - np.repeat(starts, lengths)
        powers = np.cumprod(np.full(int(lengths.max()), _MIX, np.uint64)) | np.uint64(1)
        terms = (data[offsets[0] : offsets[-1]].astype(np.uint64) + np.uint64(1)) * powers[position]
        filled = lengths > 0
        hashed[filled] ^= np.add.reduceat(terms, starts[filled])
    return hashed


def _joined(tables: list[pa.Table]) -> pa.Table:
    """Tables as one, their columns unified (a CSV's extra column read as integers in one batch and as floats in
    another is float; a column one lacks is null there), as the batches of one input may come."""
    return pa.concat_tables(tables, promote_options="permissive")


def split_by(rows: pa.Table, which: np.ndarray, count: int) -> Iterator[tuple[int, pa.Table]]:
    """(``index``, the rows whose ``which`` is ``index``) for each ``index`` below ``count`` (at most 256) that
    has rows, in index order, each part's rows in the order they came.

    ``which`` is uint8 so its stable ``argsort`` is a radix sort; the rows are gathered once into one contiguous
    table and the parts are slices of it (gathering part by part cost more time and memory)."""
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(count + 1)).tolist()
    ordered = rows.take(pa.array(order))
    del rows, order
    for index in range(count):
        if bounds[index + 1] > bounds[index]:
            yield index, ordered.slice(bounds[index], bounds[index + 1] - bounds[index])


class Spill:
    """Rows spread by key over ``count`` Arrow IPC files (at most ``SPILL_FILES``) in a hidden directory under
    ``directory``: every row of one key lands in the same file, in the order the rows were added."""

    def __init__(self, key: Sequence[str], directory: Path, count: int) -> None:
        self.key = tuple(key)
        self.count = max(2, min(count, SPILL_FILES))
        self.directory = owned_folder(directory, SPILL_PREFIX)
        self.writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}

    def add(self, rows: pa.Table) -> None:
        mixed = key_hash([rows.column(name) for name in self.key])
        which = ((mixed >> np.uint64(32)) % np.uint64(self.count)).astype(np.uint8)
        for index, part in split_by(rows, which, self.count):
            writer = self.writers.get(index)
            if writer is None:
                file = self.directory / f"{index}.arrows"
                writer = self.writers[index] = pa.ipc.new_stream(str(file), rows.schema)
            writer.write_table(part)

    def tables(self) -> Iterator[pa.Table]:
        """Each spill file's rows, one file at a time (deleted once read)."""
        for writer in self.writers.values():
            writer.close()
        for index in sorted(self.writers):
            file = self.directory / f"{index}.arrows"
            with pa.OSFile(str(file)) as source:
                rows = pa.ipc.open_stream(source).read_all()
            file.unlink()
            yield rows

    def close(self) -> None:
        for writer in self.writers.values():
            with contextlib.suppress(Exception):
                writer.close()
        shutil.rmtree(self.directory, ignore_errors=True)


class Fold:
    """The exact reduction of tables added one at a time (see the module's docstring); a context manager
    whose exit removes any spill files.

    ``merge`` reduces one table by ``key``; ``held_rows`` is the budget of rows held; ``directory`` is where
    the hidden spill directory goes, only made when needed; ``expected_rows`` (the input's rows, asked only
    when spilling starts) decides how many spill files (one per budget, 2 to ``SPILL_FILES``)."""

    def __init__(
        self,
        merge: Callable[[pa.Table], pa.Table],
        key: Sequence[str],
        *,
        held_rows: int,
        directory: Path,
        expected_rows: Callable[[], int],
        mergeable: bool = True,
    ) -> None:
        self.merge = merge
        self.key = key
        self.held_rows = held_rows
        self.directory = directory
        self.expected_rows = expected_rows
        self.mergeable = mergeable
        self.parts: list[pa.Table] = []
        self.held = 0
        self.spill: Spill | None = None

    def __enter__(self) -> Fold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def spilled(self) -> bool:
        return self.spill is not None

    def add(self, rows: pa.Table) -> None:
        self.parts.append(rows)
        self.held += rows.num_rows
        if self.held <= self.held_rows:
            return
        held = _joined(self.parts)
        if self.mergeable:
            held = self.merge(held)
            self.parts, self.held = [held], held.num_rows
            if self.held <= self.held_rows // 2:
                return
        # merging does not shrink them (or may not be done): spill
        if self.spill is None:
            self.spill = Spill(self.key, self.directory, -(-self.expected_rows() // self.held_rows))
        self.spill.add(held)
        self.parts, self.held, held = [], 0, None
        return_freed_memory()  # the holes batches left in the heap: 181 -> 172 MiB (roll-ups, 1 M groups)

    def results(self, split: Callable[[pa.Table], Iterator[pa.Table]] | None = None) -> Iterator[pa.Table]:
        """The reduced rows, each key in exactly one of the tables: when nothing was spilled, the held rows
        in one table (none when nothing was added) or, with ``split``, in the tables it splits them into
        (every key in one), each merged only when asked for (a consumer can use one while the next is
        merged); else one table per spill file."""
        if self.spill is None:
            if not self.parts:
                return
            rows, self.parts = _joined(self.parts), []
            parts = iter([rows]) if split is None else split(rows)
            del rows  # the held rows are freed once split
            for part in parts:
                yield self.merge(part)
            return
        if self.parts:
            self.spill.add(_joined(self.parts))
        self.parts, self.held = [], 0
        for rows in self.spill.tables():
            yield self.merge(rows)
            return_freed_memory()

    def close(self) -> None:
        self.parts = []
        if self.spill is not None:
            self.spill.close()
            self.spill = None
