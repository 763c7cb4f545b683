"""The order of a table's rows by their key as SQLite compares it, for loading a new table in key order.

SQLite's primary-key index grows at its end when rows arrive in key order (an unsorted load into the keyed
table cost 5.8 s against 2.9 s for 1 M ``pairs`` rows). Sorting the rows with ``pyarrow.compute.sort_indices``
over the key columns (two address texts, two ports) took 0.7-0.9 CPU s for those rows, most of it comparing
strings row against row. Here each key column becomes one integer per row that sorts as the column does (a
dense rank), the ranks are packed into as few 64-bit words as fit, and one ``argsort`` of the first word orders
the rows, later words only breaking its ties. Text and binary columns are ranked through their distinct values
(a dictionary), sorted by their bytes seven at a time, the same way. Measured on the ``pairs`` rows of the
issue-17 benchmark (CPU s, loaded machine): 1.03 M rows with repeated addresses 0.23-0.44 against 0.72-0.81;
1 M rows of fresh IPv6 pairs 0.42-0.68 against 0.39-0.56 (every address distinct: nothing to share).

The order only decides how fast the load is, never what is stored: a key type without a fast rank here
(floats, times) is ranked by ``pyarrow.compute.rank``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.spilling import split_by

Words = Callable[[int, np.ndarray], np.ndarray | None]
"""Word ``r`` (uint64) of each of the given rows, or None when no row has a word ``r``: they tie from there on."""

_BYTES_PER_WORD = 7
"""Bytes of a value per word; the lowest byte holds how many of them the value has (8: more follow)."""


def key_order(rows: pa.Table, key: Sequence[str]) -> np.ndarray:
    """The row indices that sort ``rows`` by the ``key`` columns (none null), each compared as SQLite
    compares what the load stores: numbers by value, text and blobs by their bytes."""
    ranks = [_rank(rows.column(name)) for name in key]
    words: list[np.ndarray] = []
    used = 0
    for values, bits in ranks:
        if not words or used + bits > 64:
            words.append(np.zeros(rows.num_rows, np.uint64))
            used = 0
        words[-1] = (words[-1] << np.uint64(bits)) | values
        used += bits
    return lexicographic_order(rows.num_rows, lambda r, which: words[r][which] if r < len(words) else None)


def key_ranges(rows: pa.Table, key: Sequence[str], count: int) -> Iterator[pa.Table]:
    """``rows`` split into at most ``count`` (below 256) tables of about as many rows by ranges of their first
    key column (as ``key_order`` compares it): every key in one table, the rows of a key in the order they came,
    and the tables in key order one after the other, so sorting each orders them all.

    The cuts are the first column's values at each count-th of the rows (``np.partition``, no sort): on the
    ``pairs`` rows of the issue-17 benchmark (1.65 M held rows) 0.2 CPU s less than sorting them by it."""
    first = rows.column(key[0])
    if first.null_count:  # NULL keys (a target leaves them out) go with the lowest values
        ranks = np.zeros(len(first), np.uint64)
        ranks[first.is_valid().to_numpy(zero_copy_only=False)] = _rank(first.drop_null())[0] + np.uint64(1)
    else:
        ranks = _rank(first)[0]
    positions = np.arange(1, count) * len(ranks) // count
    cuts = np.partition(ranks, positions)[positions] if len(ranks) else ranks
    which = np.searchsorted(cuts, ranks, side="right").astype(np.uint8)  # a value's rows all in one table
    parts = split_by(rows, which, count)
    del rows
    for _, part in parts:
        yield part


def lexicographic_order(n: int, words: Words) -> np.ndarray:
    """The indices sorting rows ``0..n-1`` by their sequences of words: one ``argsort`` by the first word,
    then each round sorts only the rows still tied, within their ties, by their next word."""
    first = words(0, np.arange(n))
    if first is None:  # no rows, or only empty strings
        return np.arange(n)
    order = np.argsort(first, kind="stable")
    current = first[order]
    starts = np.ones(n, bool)  # where a run of rows tied so far begins
    starts[1:] = current[1:] != current[:-1]
    for r in itertools.count(1):
        tied = ~starts
        tied[:-1] |= ~starts[1:]
        positions = np.flatnonzero(tied)
        if not len(positions):
            break
        following = words(r, order[positions])
        if following is None:
            break
        runs = np.cumsum(starts)[positions]
        resorted = np.lexsort((following, runs))
        order[positions] = order[positions][resorted]
        following = following[resorted]
        starts[positions[1:]] |= following[1:] != following[:-1]
    return order


def _rank(column: pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """An integer per value sorting as the values do (uint64), and how many bits it takes."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    kind = array.type
    if pa.types.is_dictionary(kind):
        distinct, indices = array.dictionary, array.indices.to_numpy(zero_copy_only=False)
        ranks = _value_ranks(distinct)
        return ranks[indices], max(len(distinct) - 1, 0).bit_length()
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        values = array.cast(pa.int64()) if kind != pa.uint64() else array
        numbers = values.to_numpy(zero_copy_only=False)
        low = numbers.min() if len(numbers) else 0
        offset = (numbers - low).astype(np.uint64)  # wraps to the right distance for int64 too
        return offset, int(offset.max() if len(offset) else 0).bit_length()
    if _is_bytes(kind):
        encoded = pc.dictionary_encode(array)
        return _rank(pa.chunked_array([encoded]))
    ranks = pc.rank(array, sort_keys="ascending", tiebreaker="dense").to_numpy().astype(np.uint64) - np.uint64(1)
    return ranks, int(ranks.max() if len(ranks) else 0).bit_length()


def _is_bytes(kind: pa.DataType) -> bool:
    return (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
    )


def _value_ranks(values: pa.Array) -> np.ndarray:
    """The rank of each value of ``values`` (distinct) in the order of their bytes, as uint64."""
    if not _is_bytes(values.type):
        ranks = pc.rank(values, sort_keys="ascending", tiebreaker="dense").to_numpy()
        return ranks.astype(np.uint64) - np.uint64(1)
    binary = values.cast(pa.large_binary())
    buffers = binary.buffers()
    offsets = np.frombuffer(buffers[1], np.int64, len(binary) + 1, binary.offset * 8)
    data = np.frombuffer(buffers[2], np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    order = lexicographic_order(len(binary), _byte_words(offsets, data))
    ranks = np.empty(len(binary), np.uint64)
    ranks[order] = np.arange(len(binary), dtype=np.uint64)
    return ranks


def _byte_words(offsets: np.ndarray, data: np.ndarray) -> Words:
    """Words of byte strings that compare as the strings do: seven bytes big-endian (zeros past the end),
    then how many of them are the string's (8 when more follow), so a string sorts before its extensions."""
    lengths = np.diff(offsets)
    padded = np.concatenate([data, np.zeros(8, np.uint8)])  # a word read at any start stays inside
    windows = np.lib.stride_tricks.sliding_window_view(padded, 8)

    def words(r: int, rows: np.ndarray) -> np.ndarray | None:
        first = r * _BYTES_PER_WORD
        left = lengths[rows] - first
        if not len(rows) or int(left.max()) <= 0:
            return None
        starts = np.minimum(offsets[rows] + first, len(data))
        word = windows[starts].view(">u8").reshape(-1).astype(np.uint64)
        kept = np.clip(left, 0, _BYTES_PER_WORD).astype(np.uint64)  # bytes of the string among the seven
        mask = np.where(kept > 0, ~np.uint64(0) << (np.uint64(64) - np.uint64(8) * kept), np.uint64(0))
        return (word & mask) | np.clip(left, 0, _BYTES_PER_WORD + 1).astype(np.uint64)

    return words
