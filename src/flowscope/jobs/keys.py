"""Flow keys as single comparable values, so flows and packet rows of different runs can be joined by key.

The meter's ``key`` column is a 64-bit hash; two keys may share it. Joins here use the exact key (the five
key words of ``FlowRows``) viewed as one 40-byte value: numpy sorts and searches those with ``memcmp``
order, which is all a join needs.
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


def find(sorted_keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Index of each ``wanted`` key in ``sorted_keys`` (distinct, sorted), -1 where it is absent."""
    if sorted_keys.size == 0:
        return np.full(wanted.size, -1, np.intp)
    at = np.minimum(np.searchsorted(sorted_keys, wanted), sorted_keys.size - 1)
    return np.where(sorted_keys[at] == wanted, at, -1)


def member(sorted_hashes: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Mask of the ``hashes`` that occur in ``sorted_hashes`` (a superset of the exact keys: hashes may collide)."""
    if sorted_hashes.size == 0:
        return np.zeros(hashes.size, bool)
    at = np.minimum(np.searchsorted(sorted_hashes, hashes), sorted_hashes.size - 1)
    return sorted_hashes[at] == hashes
