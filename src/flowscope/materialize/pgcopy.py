"""PostgreSQL's binary COPY format, built for a whole Arrow table at once with numpy.

Format (PostgreSQL docs, "COPY ... Binary Format"): an 11-byte signature, 32-bit flags
and header-extension length, then per row a 16-bit field count and, per field, a
32-bit byte length (-1 for NULL) followed by the value in the type's binary send
format (big-endian integers and floats, dates as days and timestamps as microseconds
since 2000-01-01, text as UTF-8 bytes); a 16-bit -1 ends the data. Every row's layout
is computed with array arithmetic and all values are scattered into one buffer, so no
Python object is made per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope import addresses
from flowscope.arrays import contiguous, string_parts
from flowscope.errors import FlowscopeError
from flowscope.schema import ADDRESS, postgres_type, role_of

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = (-1).to_bytes(2, "big", signed=True)

_POSTGRES_EPOCH_DAYS = 10_957  # 2000-01-01 in days since 1970-01-01
_POSTGRES_EPOCH_US = _POSTGRES_EPOCH_DAYS * 86_400_000_000


@dataclass(frozen=True)
class PgColumn:
    sql_type: str
    width: int | None
    """Bytes per value, or None for variable length (text, bytea)."""


_WIDTHS = {
    "boolean": 1,
    "smallint": 2,
    "integer": 4,
    "bigint": 8,
    "double precision": 8,
    "date": 4,
    "timestamp with time zone": 8,
    "macaddr": 6,
}
"""Bytes per value of the fixed-width types; the others (text, bytea, inet) are variable."""


def pg_column(field: pa.Field) -> PgColumn:
    """The PostgreSQL column for an Arrow field: the catalogue's type for its role (addresses ``inet``, MACs
    ``macaddr``), otherwise by its Arrow type (view columns the catalogue does not know, such as aggregates)."""
    sql_type = postgres_type(field.type, role_of(field))
    return PgColumn(sql_type, _WIDTHS.get(sql_type))


_BIG_ENDIAN = {1: ">u1", 2: ">i2", 4: ">i4", 8: ">i8"}


def _fixed_values(column: pa.Array, spec: PgColumn) -> np.ndarray:
    """Values as an (n, width) big-endian byte matrix (null slots hold zeros)."""
    kind = column.type
    if spec.sql_type == "macaddr":  # the low 48 bits, most significant byte first
        numbers = pc.fill_null(column.cast(pa.uint64()), 0).to_numpy()
        return np.ascontiguousarray(numbers.astype(">u8")).view(np.uint8).reshape(len(column), 8)[:, 2:]
    if pa.types.is_timestamp(kind):
        # PostgreSQL keeps microseconds: nanosecond times (the flow schema's) are truncated to them.
        micros = pc.cast(column, pa.timestamp("us", tz=kind.tz), safe=False).cast(pa.int64())
        numbers = pc.fill_null(micros, 0).to_numpy() - _POSTGRES_EPOCH_US
        dtype = ">i8"
    elif pa.types.is_date(kind):
        numbers = pc.fill_null(column.cast(pa.date32()).cast(pa.int32()), 0).to_numpy() - _POSTGRES_EPOCH_DAYS
        dtype = ">i4"
    elif pa.types.is_floating(kind):
        numbers = pc.fill_null(column.cast(pa.float64()), 0).to_numpy()
        dtype = ">f8"
    elif pa.types.is_boolean(kind):
        numbers = pc.fill_null(column, False).to_numpy(zero_copy_only=False).astype(np.uint8)
        dtype = ">u1"
    else:
        if kind == pa.uint64() and column.null_count < len(column):
            top = pc.max(column).as_py()
            if top is not None and top > np.iinfo(np.int64).max:
                raise FlowscopeError(f"value {top} does not fit PostgreSQL bigint")
        numbers = pc.fill_null(column, 0).to_numpy().astype(np.int64)
        dtype = _BIG_ENDIAN[spec.width or 8]
    width = np.dtype(dtype).itemsize
    return np.ascontiguousarray(numbers.astype(dtype)).view(np.uint8).reshape(len(column), width)


def _variable_values(column: pa.Array, spec: PgColumn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start offsets, lengths, data bytes) of a text, binary or inet column."""
    if spec.sql_type == "inet":
        return _inet_values(column)
    if pa.types.is_fixed_size_binary(column.type):
        column = column.cast(pa.binary())
    if pa.types.is_large_string(column.type):
        column = column.cast(pa.string())
    offsets, data = string_parts(column)
    return offsets[:-1], np.diff(offsets), data


_INET_HEADER = {4: np.array([2, 32, 0, 4], np.uint8), 16: np.array([3, 128, 0, 16], np.uint8)}
"""inet's send format: family (PGSQL_AF_INET 2, PGSQL_AF_INET6 3), prefix bits, is_cidr, address length."""


def _inet_values(column: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """16-byte addresses as inet values, one 20-byte slot per row: IPv4-mapped ones as IPv4 (the slot's first
    8 bytes), the rest as IPv6 (all 20)."""
    matrix = addresses.to_matrix(column.cast(ADDRESS))
    ipv4 = addresses.is_ipv4_matrix(matrix)[:, None]
    values = np.empty((len(matrix), 20), np.uint8)
    values[:, :4] = np.where(ipv4, _INET_HEADER[4], _INET_HEADER[16])
    values[:, 4:8] = np.where(ipv4, matrix[:, 12:], matrix[:, :4])
    values[:, 8:] = matrix[:, 4:]
    return np.arange(0, values.size, 20), np.where(ipv4[:, 0], 8, 20), values.reshape(-1)


def _shape_groups(lengths: np.ndarray) -> list[np.ndarray]:
    """Row indices grouped by their tuple of per-column value lengths (-1 for NULL; ``lengths`` is one row
    per column)."""
    varying = np.flatnonzero(lengths.min(axis=1) != lengths.max(axis=1))
    if not varying.size:
        return [np.arange(lengths.shape[1])]
    lengths = lengths[varying].T.astype(np.int64)  # only columns whose lengths differ tell shapes apart (few)
    low = lengths.min(axis=0)
    spans = lengths.max(axis=0) - low + 1
    if float(np.prod(spans.astype(float))) < 2.0**62:
        weights = np.concatenate([[1], np.cumprod(spans[:-1])]).astype(np.int64)
        keys = (lengths - low) @ weights
    else:
        keys = np.unique(lengths, axis=0, return_inverse=True)[1].reshape(-1)
    order = np.argsort(keys, kind="stable")
    bounds = np.flatnonzero(np.diff(keys[order])) + 1
    return np.split(order, bounds)


MAX_RUNS = 64
"""Runs of one row shape encoded one after the other at most (each costs a pass over every column)."""


def _shape_runs(lengths: np.ndarray) -> list[np.ndarray] | None:
    """Row indices in runs of consecutive rows of one shape (as ``_shape_groups``, row order kept), or None
    when there are more than ``MAX_RUNS`` of them (shapes alternating row by row: grouping is cheaper)."""
    n = lengths.shape[1]
    changed = np.flatnonzero((lengths[:, 1:] != lengths[:, :-1]).any(axis=0)) + 1
    if len(changed) >= MAX_RUNS:
        return None
    return [np.arange(start, end) for start, end in zip([0, *changed.tolist()], [*changed.tolist(), n], strict=True)]


def _row_layout(shape: list[int]) -> np.ndarray:
    """One row's bytes with the field count and every field's length (-1 for NULL) filled in."""
    layout = bytearray(len(shape).to_bytes(2, "big"))
    for length in shape:
        layout += length.to_bytes(4, "big", signed=True) + bytes(max(length, 0))
    return np.frombuffer(bytes(layout), np.uint8)


def encode(table: pa.Table) -> bytes:
    """A complete binary COPY stream (header, rows, trailer) for ``table``."""
    return b"".join([HEADER, *encode_rows(table), TRAILER])


def encode_rows(table: pa.Table, *, keep_order: bool = False) -> list[memoryview]:
    """The rows of ``table`` in binary COPY format, without header and trailer (for streaming chunks), as
    buffers to write one after the other (one per row shape; no copy into a single ``bytes``).

    Rows are grouped by the lengths of their values (few distinct shapes: text columns
    are short, NULLs are rare); within a group every row has the same layout, so the
    group is one (rows x bytes) matrix filled column slice by column slice. Row order
    is not kept (it does not matter to COPY into a staging table), unless ``keep_order``
    and the rows come in few runs of one shape (``_shape_runs``): then each run is a group.
    """
    n = table.num_rows
    columns = [contiguous(c) for c in table.columns]
    specs = [pg_column(f) for f in table.schema]
    # per column, each row's value length (-1: NULL); one contiguous row per column, written whole (as the
    # rows x columns matrix it was, its strided column writes took 40% of the encoding)
    lengths = np.empty((len(columns), n), np.int32)
    fixed: dict[int, np.ndarray] = {}
    variable: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # column -> (start offsets, data)
    for index, (column, spec) in enumerate(zip(columns, specs, strict=True)):
        if column.null_count == n:  # every value NULL: nothing to encode but the -1 lengths
            lengths[index] = -1
            continue
        if spec.width is None:
            starts, sizes, data = _variable_values(column, spec)
            variable[index] = (starts, data)
            lengths[index] = sizes
        else:
            fixed[index] = _fixed_values(column, spec)
            lengths[index] = spec.width
        if column.null_count:
            lengths[index][column.is_null().to_numpy(zero_copy_only=False)] = -1
    parts = []
    runs = _shape_runs(lengths) if keep_order and n else None
    for rows in runs or (_shape_groups(lengths) if n else []):
        shape = lengths[:, rows[0]].tolist()
        everyone = rows.size == n  # one shape for all rows (the usual case): no row gathers needed
        layout = _row_layout(shape)
        matrix = np.empty(rows.size, f"V{layout.size}")
        matrix[:] = layout.view(matrix.dtype)[0]  # field count and every field's length; values go over it
        at = 2
        for index, length in enumerate(shape):
            at += 4
            if length <= 0:
                continue
            if index in fixed:
                values = fixed[index].view(f"V{length}")[:, 0]
                _field(matrix, at, length)[:] = values if everyone else values[rows]
            else:
                starts, data = variable[index]
                _field(matrix, at, length)[:] = _windows(data, length)[starts if everyone else starts[rows]]
            at += length
        parts.append(matrix.view(np.uint8).data)
    return parts


def _field(matrix: np.ndarray, offset: int, length: int) -> np.ndarray:
    """The ``length`` bytes at ``offset`` of every row of ``matrix`` (rows as void items), as one void item
    each: numpy then copies a value per item instead of a byte per item (a 100 000-row chunk of flows: 0.12 s
    of byte-column copies became 0.04 s)."""
    layout = np.dtype({"names": ["value"], "formats": [f"V{length}"], "offsets": [offset], "itemsize": matrix.itemsize})
    return matrix.view(layout)["value"]


def _windows(data: np.ndarray, length: int) -> np.ndarray:
    """Item i = ``data[i : i + length]`` as one void item (a view, no copy)."""
    if data.size < length:
        return np.empty(0, f"V{length}")
    return np.ndarray((data.size - length + 1,), f"V{length}", data, strides=(1,))
