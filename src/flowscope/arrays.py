"""Arrow helpers shared by the data path."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def contiguous(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One array (a chunked column's only chunk is used as it is): Arrow kernels and numpy views want one."""
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


def buffer_values(array: pa.Array, dtype: np.dtype | str, per_value: int = 1) -> np.ndarray:
    """A fixed-width array's data buffer as numpy ``dtype``, ``per_value`` items per value, from the array's
    offset on (no copy; null slots hold whatever the buffer does)."""
    data = np.frombuffer(array.buffers()[1], dtype, count=(array.offset + len(array)) * per_value)
    return data[array.offset * per_value :]
