"""Arrow helpers shared by the data path."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa


def contiguous(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One array (a chunked column's only chunk is used as it is): Arrow kernels and numpy views want one.

    Fixed-width chunks without nulls are joined by numpy: its large arrays are backed by huge pages, while
    Arrow maps a fresh block of 4 KiB pages for each join of more than 32 MiB (the C heap's mmap threshold),
    and faulting those pages in costs twice the copy.
    """
    if isinstance(column, pa.Array):
        return column
    if column.num_chunks == 1:
        return column.chunk(0)
    width = _byte_width(column.type)
    if width is None or column.null_count or not column.num_chunks:
        return column.combine_chunks()
    joined = np.concatenate([buffer_values(chunk, np.uint8, width) for chunk in column.chunks])
    return pa.Array.from_buffers(column.type, len(column), [None, pa.py_buffer(joined)])


def _byte_width(kind: pa.DataType) -> int | None:
    """Bytes per value of a flat fixed-width type; None for the others (variable width, bits, nested)."""
    flat = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_temporal(kind)
    return kind.bit_width // 8 if flat or pa.types.is_fixed_size_binary(kind) else None


def buffer_values(array: pa.Array, dtype: npt.DTypeLike, per_value: int = 1) -> np.ndarray:
    """A fixed-width array's data buffer as numpy ``dtype``, ``per_value`` items per value, from the array's
    offset on (no copy; null slots hold whatever the buffer does)."""
    data = np.frombuffer(array.buffers()[1], dtype, count=(array.offset + len(array)) * per_value)
    return data[array.offset * per_value :]


def string_parts(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A string or binary array's offsets (one per value and one past the last, from the array's offset on) and
    its data bytes, without copying. Offsets are int32, or int64 for the large types."""
    large = pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type)
    offsets_buffer, data_buffer = array.buffers()[1:3]
    if offsets_buffer is None:  # an empty array may have no buffers
        return np.zeros(1, np.int64 if large else np.int32), np.zeros(0, np.uint8)
    count = array.offset + len(array) + 1
    offsets = np.frombuffer(offsets_buffer, np.int64 if large else np.int32, count=count)[array.offset :]
    data = np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    return offsets, data
