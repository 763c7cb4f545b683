"""Arrow columns -> ClickHouse Native-format blocks with numpy, sent over clickhouse-driver's connection.

clickhouse-driver (0.2.x) builds every insert from Python values: its plain columnar path turns each
value into a Python object and ``struct.pack``s them (0.25 s per column of 1 M values here, so about
125 k flow rows/s for the 33 columns of ``flows_raw``), and its numpy path still makes one object per
value for ``Nullable`` null maps and ``FixedString`` columns (and needs pandas). A Native block is
simple: per column its name, its type and its values as fixed-width little-endian arrays, preceded by a
null map for ``Nullable`` types; strings are a varint length and the bytes. This module lays those out
with numpy from Arrow buffers (no Python object per row) and hands the bytes to the driver's connection,
which still does the protocol: the query, compression, server exceptions and the end of the insert.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_driver import Client
from clickhouse_driver.block import BlockInfo, RowOrientedBlock
from clickhouse_driver.protocol import ClientPacketTypes
from clickhouse_driver.varint import write_varint
from clickhouse_driver.writer import write_binary_str

_INTEGERS = {
    "UInt8": "<u1", "UInt16": "<u2", "UInt32": "<u4", "UInt64": "<u8",
    "Int8": "<i1", "Int16": "<i2", "Int32": "<i4", "Int64": "<i8",
    "Date": "<u2", "DateTime": "<u4",
}  # fmt: skip

# clickhouse_driver.defines.DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION: newer servers expect one byte per
# column saying the values are not sparse.
_REVISION_WITH_CUSTOM_SERIALIZATION = 54454


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _name(text: str) -> bytes:
    raw = text.encode()
    return _varint(len(raw)) + raw


def _integers(array: pa.Array, dtype: str) -> np.ndarray:
    """The values of an integer-like Arrow array (timestamps as their integer count), nulls as 0."""
    if pa.types.is_timestamp(array.type) or pa.types.is_date(array.type):
        array = array.cast(pa.int64() if pa.types.is_timestamp(array.type) else pa.int32())
    if array.null_count:
        array = pc.fill_null(array, 0)
    values = array.to_numpy(zero_copy_only=False)
    return values.astype(dtype, copy=False)


def _fixed_strings(array: pa.Array, width: int) -> np.ndarray:
    """The bytes of a fixed-size binary array of ``width`` (nulls as zeros) as one (n * width) uint8 array."""
    if not pa.types.is_fixed_size_binary(array.type):
        array = array.cast(pa.binary(width))
    n = len(array)
    if array.null_count == n:
        return np.zeros(n * width, dtype=np.uint8)
    data = np.frombuffer(array.buffers()[1], dtype=np.uint8)[array.offset * width : (array.offset + n) * width]
    if array.null_count:
        data = data.reshape(n, width).copy()
        data[~np.asarray(array.is_valid())] = 0
        data = data.reshape(-1)
    return data


def _strings(array: pa.Array) -> np.ndarray:
    """A String column: each value as a LEB128 varint length followed by its bytes (nulls as "").

    Values shorter than 128 bytes (all of flowscope's: labels, Community IDs) have a one-byte length,
    which ``np.insert`` puts in front of each value in one pass; longer ones take the general layout.
    """
    if array.null_count:
        array = pc.fill_null(array, "")
    if not pa.types.is_large_string(array.type):
        array = array.cast(pa.large_string())
    n = len(array)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset : array.offset + n + 1]
    data_buffer = array.buffers()[2]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.empty(0, np.uint8)
    data = data[offsets[0] : offsets[-1]]
    starts = offsets[:-1] - offsets[0]
    lengths = np.diff(offsets)
    if not n or lengths.max() < 0x80:
        return np.insert(data, starts, lengths.astype(np.uint8))
    prefix = np.ones(n, dtype=np.int64)
    for shift in (7, 14, 21, 28):
        prefix += lengths >= (1 << shift)
    sizes = prefix + lengths
    out_starts = np.zeros(n, dtype=np.int64)
    np.cumsum(sizes[:-1], out=out_starts[1:])
    out = np.empty(int(sizes.sum()), dtype=np.uint8)
    for byte in range(5):
        rows = np.flatnonzero(prefix > byte)
        if not len(rows):
            break
        more = np.where(prefix[rows] > byte + 1, 0x80, 0)
        out[out_starts[rows] + byte] = ((lengths[rows] >> (7 * byte)) & 0x7F) | more
    out[np.arange(len(data), dtype=np.int64) + np.repeat(out_starts + prefix - starts, lengths)] = data
    return out


def _chunks(values: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return list(values.chunks) if isinstance(values, pa.ChunkedArray) else [values]


def encode_values(ch_type: str, values: pa.Array | pa.ChunkedArray) -> list[bytes | np.ndarray]:
    """The Native encoding of ``values`` as a column of ``ch_type`` (the types flowscope's tables use).

    A chunked array is encoded chunk by chunk (no copy into one array first): a column's bytes are
    its chunks' bytes in order, except that a ``Nullable`` column puts all null flags before all values.
    """
    chunks = _chunks(values)
    if ch_type.startswith("Nullable("):
        nulls = [np.asarray(c.is_null(), dtype=np.uint8) if c.null_count else np.zeros(len(c), np.uint8)
                 for c in chunks]  # fmt: skip
        return [*nulls, *encode_values(ch_type[len("Nullable(") : -1], values)]
    if ch_type in _INTEGERS:
        return [_integers(c, _INTEGERS[ch_type]) for c in chunks]
    if ch_type.startswith("FixedString("):
        return [_fixed_strings(c, int(ch_type[len("FixedString(") : -1])) for c in chunks]
    if ch_type == "String":
        return [_strings(c) for c in chunks]
    raise ValueError(f"no Native encoding for ClickHouse type {ch_type}")


def encode_block(
    columns: Sequence[tuple[str, str]], arrays: Sequence[pa.Array | pa.ChunkedArray], revision: int
) -> list[bytes | np.ndarray]:
    """One Native block (as the server's protocol ``revision`` expects it) of equally long ``arrays``."""
    rows = len(arrays[0]) if arrays else 0
    info = _BlockInfoBytes()
    BlockInfo().write(info)
    parts: list[bytes | np.ndarray] = [bytes(info), _varint(len(columns)), _varint(rows)]
    for (name, ch_type), array in zip(columns, arrays, strict=True):
        parts += [_name(name), _name(ch_type)]
        if revision >= _REVISION_WITH_CUSTOM_SERIALIZATION:
            parts.append(b"\0")
        parts += encode_values(ch_type, array)
    return parts


class _BlockInfoBytes(bytearray):
    """A buffer the driver's ``BlockInfo.write`` can write to."""

    def write(self, data: bytes) -> None:
        self.extend(data)


def insert(
    client: Client, table: str, columns: Sequence[tuple[str, str]], arrays: Sequence[pa.Array | pa.ChunkedArray]
) -> None:
    """``INSERT INTO table`` the rows of ``arrays`` as one Native block (one part, inserted whole or not at all)."""
    names = ", ".join(f"`{name}`" for name, _ in columns)
    connection = client.connection
    connection.force_connect()
    try:
        connection.send_query(f"INSERT INTO {table} ({names}) VALUES")
        connection.send_external_tables(None)
        client.receive_sample_block()
        revision = connection.server_info.used_revision
        write_varint(ClientPacketTypes.DATA, connection.fout)
        write_binary_str("", connection.fout)  # the (temporary) table name: none
        out = connection.block_out.fout
        for part in encode_block(columns, arrays, revision):
            out.write(part if isinstance(part, bytes) else part.tobytes())
        connection.block_out.finalize()
        connection.send_data(RowOrientedBlock())  # an empty block ends the data
        client.receive_end_of_insert_query()
    except BaseException:
        connection.disconnect()  # the connection is mid-packet: only a new one is usable
        raise
