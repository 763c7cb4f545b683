"""Joining flows and packet rows of different runs by flow key, exactly and fast.

The meter's ``key`` column is a 64-bit hash of the five key words (``_EXACT_KEY``); two keys may share
it. Orders and lookups here go by the hash (one ``uint64`` sort or binary search) and then compare
the five words, so a collision is never taken for a match: where one occurs, the key is compared
as one 40-byte value (``memcmp`` order) instead. On a million packet rows the hash path takes about
a tenth of the 40-byte path (5.5 s of 9 s of a worker's time before, issue 15).
"""

from __future__ import annotations

import numpy as np

from flowscope.capture.meter import _EXACT_KEY, FlowRows

KEY_BYTES = 8 * len(_EXACT_KEY)


def exact_keys(rows: FlowRows) -> np.ndarray:
    """One ``V40`` value per row: its full flow key."""
    words = np.empty((len(rows), len(_EXACT_KEY)), np.uint64)
    for column, name in enumerate(_EXACT_KEY):
        words[:, column] = rows[name]
    return words.view(f"V{KEY_BYTES}").ravel()


def same_keys(a: FlowRows, a_rows: np.ndarray, b: FlowRows, b_rows: np.ndarray) -> np.ndarray:
    """Whether row ``a_rows[i]`` of ``a`` and row ``b_rows[i]`` of ``b`` have the same full key."""
    same = np.ones(a_rows.size, bool)
    for name in _EXACT_KEY:
        same &= a[name][a_rows] == b[name][b_rows]
    return same


def key_order(rows: FlowRows, then: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row order by (flow key, ``then``) and where each key's run of rows begins."""
    order = np.lexsort((then, rows["key"]))
    hashes = rows["key"][order]
    starts = np.ones(order.size, bool)
    starts[1:] = hashes[1:] != hashes[:-1]
    tied = np.flatnonzero(~starts[1:]) + 1  # rows whose hash equals the previous row's
    if tied.size and not same_keys(rows, order[tied], rows, order[tied - 1]).all():
        exact = exact_keys(rows)
        order = np.argsort(then, kind="stable")
        order = order[np.argsort(exact[order], kind="stable")]
        starts[1:] = exact[order][1:] != exact[order][:-1]
    return order, starts


class KeyIndex:
    """The distinct keys of some rows, each with its first row by ``then`` (``first``), for exact lookups."""

    def __init__(self, rows: FlowRows, then: np.ndarray | None = None) -> None:
        order, starts = key_order(rows, np.zeros(len(rows), np.int64) if then is None else then)
        self.rows = rows
        self.first = order[starts]
        hashes = rows["key"][self.first]
        self._hashes = hashes if (hashes[1:] > hashes[:-1]).all() else None  # None: a collision, use 40 bytes
        self._exact = None if self._hashes is not None else np.sort(exact_keys(rows.take(self.first)))
        if self._exact is not None:  # keep ``first`` aligned with the sorted 40-byte keys
            self.first = self.first[np.argsort(exact_keys(rows.take(self.first)), kind="stable")]

    def __len__(self) -> int:
        return int(self.first.size)

    def find(self, other: FlowRows) -> np.ndarray:
        """For each row of ``other``, the index of its key here (into ``first``), -1 where absent."""
        if not len(self) or not len(other):
            return np.full(len(other), -1, np.intp)
        if self._hashes is None:
            assert self._exact is not None
            wanted = exact_keys(other)
            at = np.minimum(np.searchsorted(self._exact, wanted), len(self) - 1)
            return np.where(self._exact[at] == wanted, at, -1)
        at = np.minimum(np.searchsorted(self._hashes, other["key"]), len(self) - 1)
        hit = self._hashes[at] == other["key"]
        rows = np.flatnonzero(hit)
        hit[rows] = same_keys(self.rows, self.first[at[rows]], other, rows)
        return np.where(hit, at, -1)


class HashSet:
    """A growing set of key hashes, for "is this row's key one of them" on every row of every batch.

    A bitmap of the hashes' top ``FILTER_BITS`` bits answers most rows with one gather; only rows
    it passes are looked up in the sorted hashes. (A binary search per row into a few hundred
    thousand hashes cost a worker 4.6 s of its 6.6 s extra on high-churn traffic, issue 15.)
    Membership is by hash: a superset of the exact keys, which callers narrow with ``KeyIndex``.
    """

    FILTER_BITS = 24

    def __init__(self) -> None:
        self.hashes = np.zeros(0, np.uint64)
        self._filter = np.zeros(1 << self.FILTER_BITS, bool)
        self._shift = np.uint64(64 - self.FILTER_BITS)

    def add(self, hashes: np.ndarray) -> None:
        self.hashes = merged_distinct(self.hashes, hashes)
        self._filter[hashes >> self._shift] = True

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        found = self._filter[hashes >> self._shift]
        rows = np.flatnonzero(found)
        if rows.size:
            wanted = hashes[rows]
            at = np.minimum(np.searchsorted(self.hashes, wanted), self.hashes.size - 1)
            found[rows] = self.hashes[at] == wanted
        return found


def merged_distinct(sorted_distinct: np.ndarray, more: np.ndarray) -> np.ndarray:
    """``sorted_distinct`` with the values of ``more`` added, still sorted and distinct (a merge, no hashing:
    ``np.union1d`` took 2.5 s of a worker's 9 s on high-churn traffic)."""
    values = np.concatenate([sorted_distinct, np.sort(more)])
    values.sort(kind="stable")  # two sorted runs: a merge
    keep = np.ones(values.size, bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep]
