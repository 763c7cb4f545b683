"""GoFlow2 v2 ``flowpb.FlowMessage`` (goflow2's ``pb/flow.proto``), length-delimited, for whole batches at once.

Each flow is one FlowMessage preceded by its length as a varint, as GoFlow2's ``bin`` format writes it
and ClickHouse's ``Protobuf`` format reads it; several may follow each other in one Kafka message.
The field numbers and proto types come from the column catalogue (``Column.goflow2``).

Both directions are record walks, compiled with numba (``kafka/kernels.py``; numba is imported on the first
call, so a process that never calls them does not load it). **Encoding** gathers the columns into one
matrix per integer width (numpy) and writes each row's fields (tag, then the value's varint, or length and
address bytes; nothing for a proto3 default: 0, null) back to back in a single buffer. **Decoding** finds
the messages in the payloads, then walks each one's fields into the columns' own arrays (the last
occurrence wins, as in protobuf); unknown fields (GoFlow2's MPLS, BGP and layer fields) are skipped by wire
type. They replaced numpy codecs that laid out a byte matrix with a fixed-width region per field (encode)
and walked the k-th field of every message in one numpy step (decode): 0.82-0.91 and 0.68-0.76 M flows/s.

``GOFLOW_V1`` is the older GoFlow v1 / flow-pipeline layout of the same message (times in seconds in
fields 2, 38 and 5, no observation domain), which flow-pipeline's ClickHouse table still reads.

What does not map: proto3 cannot tell 0 from absent. Decoded times and sampling rates of 0 and empty
addresses become null (unknown), like the sources that know no value; other absent numbers are 0.
Encoded nulls are absent fields. ``type`` is GoFlow2's FlowType enum (``sflow_v5``, ``netflow_v5``,
``netflow_v9``, ``ipfix``); other source kinds are FLOWUNKNOWN, which decodes as null.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope import addresses
from flowscope.arrays import buffer_values, contiguous
from flowscope.diagnostics import Skips
from flowscope.kafka.wire import WIRE_LEN, WIRE_VARINT, tag
from flowscope.schema import ADDRESS, FLOWS, Role, conform, table_columns

FLOW_TYPES = ("", "sflow_v5", "netflow_v5", "netflow_v9", "ipfix")
"""FlowType enum values by number (0, FLOWUNKNOWN, has no flowscope name)."""

ENCODE_ROWS = 65_536
"""Rows encoded per kernel call: their value matrices (~170 bytes a row) stay in the L2/L3 caches."""

_NULL_WHEN_ZERO = frozenset({"sampling_rate"})


@dataclass(frozen=True)
class _Field:
    column: str
    number: int
    kind: str
    """``varint``, ``time`` (varint of UTC time in ``time_unit`` ns), ``address`` (bytes, 4 or 16) or ``enum``."""
    arrow_type: pa.DataType
    time_unit: int = 1

    @property
    def wire_type(self) -> int:
        return WIRE_LEN if self.kind == "address" else WIRE_VARINT


_LOOKUP_SIZE = 128
_GROUPS = tuple(np.dtype(t) for t in (np.uint64, np.uint32, np.uint16, np.uint8))


class Layout:
    """The FlowMessage fields of one schema, with the tables the kernels walk with."""

    def __init__(self, name: str, fields: tuple[_Field, ...]) -> None:
        self.name = name
        self.fields = tuple(sorted(fields, key=lambda f: f.number))  # field-number order, as serialisers write
        self.varint_fields = tuple(f for f in self.fields if f.kind != "address")
        self.address_fields = tuple(f for f in self.fields if f.kind == "address")
        assert max(f.number for f in self.fields) < _LOOKUP_SIZE - 1
        # field number (clipped to 127, which no layout uses) -> slot: varint fields first, then address fields;
        # -1 for fields flowscope does not keep
        kept = self.varint_fields + self.address_fields
        self.slot = np.full(_LOOKUP_SIZE, -1, np.int64)
        self.slot[[f.number for f in kept]] = np.arange(len(kept))
        self.expected_wire = np.full(_LOOKUP_SIZE, -1, np.int64)
        self.expected_wire[[f.number for f in self.fields]] = [f.wire_type for f in self.fields]
        # each varint field's output: group (index in _GROUPS: its column's type), row in that group's matrix,
        # and the largest value the column holds (times and the enum, whose codes are checked later, take any)
        dtypes = [np.dtype(f.arrow_type.to_pandas_dtype() if f.kind == "varint" else np.uint64)
                  for f in self.varint_fields]  # fmt: skip
        self.group = np.array([_GROUPS.index(d) for d in dtypes], np.int64)
        self.row = np.array([dtypes[:i].count(d) for i, d in enumerate(dtypes)], np.int64)
        self.rows = [dtypes.count(d) for d in _GROUPS]
        self.limit = np.array([np.iinfo(d).max for d in dtypes], np.uint64)
        # the encoder's plan, in field-number order: each field's slot (varint) or -1 - index (address), its tag
        self.order = np.array([self.varint_fields.index(f) if f.kind != "address" else -1 - self.address_fields.index(f)
                               for f in self.fields], np.int64)  # fmt: skip
        tags = [tag(f.number, f.wire_type) for f in self.fields]
        self.tags = np.array([int.from_bytes(t, "little") for t in tags], np.int64)
        self.tag_sizes = np.array([len(t) for t in tags], np.int64)
        # the longest message: a 3-byte length prefix (bodies under 2 MiB), 10-byte varints, 16-byte addresses
        self.widest = 3 + int(self.tag_sizes.sum()) + sum(17 if f.kind == "address" else 10 for f in self.fields)


def _catalogue_fields() -> tuple[_Field, ...]:
    fields = []
    for c in table_columns(FLOWS):
        if c.goflow2 is None:
            continue
        if c.role is Role.ADDRESS:
            kind = "address"
        elif c.role is Role.TIME:
            kind = "time"
        elif c.goflow2.proto_type == "FlowType":
            kind = "enum"
        else:
            kind = "varint"
        fields.append(_Field(c.name, c.goflow2.number, kind, c.arrow_type))
    return tuple(fields)


GOFLOW2 = Layout("goflow2", _catalogue_fields())
FIELDS = GOFLOW2.fields

# GoFlow v1 / flow-pipeline's ``flowprotob.FlowMessage`` (flow-pipeline ``pb-ext/flow.proto``): the same
# numbers as GoFlow2 except the times, which are seconds in fields 2 (TimeReceived), 38 (TimeFlowStart)
# and 5 (TimeFlowEnd); it has no observation domain.
_V1_TIMES = {"time_received": 2, "time_flow_start": 38, "time_flow_end": 5}
GOFLOW_V1 = Layout(
    "goflow",
    tuple(
        _Field(f.column, _V1_TIMES[f.column], f.kind, f.arrow_type, 1_000_000_000) if f.column in _V1_TIMES else f
        for f in GOFLOW2.fields
        if f.column != "observation_domain_id"
    ),
)


# ---------------------------------------------------------------------------------------------- encoding


def encode(table: pa.Table, layout: Layout = GOFLOW2) -> tuple[np.ndarray, np.ndarray]:
    """Flow-schema rows -> (one uint8 buffer of length-delimited FlowMessages, each message's end offset).

    The kernel reads the columns ``ENCODE_ROWS`` rows at a time from matrices (one per integer width) that
    stay in the caches; the output buffer has room for the longest messages, and only what is written of it
    is ever touched.
    """
    table = conform(table, keep_extra=False)
    n = table.num_rows
    rows = min(n, ENCODE_ROWS)
    matrices = [np.empty((count, rows), dtype) for count, dtype in zip(layout.rows, _GROUPS, strict=True)]
    address_bytes = np.empty((len(layout.address_fields), rows, 16), np.uint8)
    address_size = np.empty((len(layout.address_fields), rows), np.int8)
    out = np.empty(n * layout.widest, np.uint8)
    ends = np.empty(n, np.int64)
    pos = 0
    for first in range(0, n, ENCODE_ROWS):
        part = table.slice(first, ENCODE_ROWS)  # no copy, unless it spans two chunks of a column
        for f, g, r in zip(layout.varint_fields, layout.group.tolist(), layout.row.tolist(), strict=True):
            matrices[g][r, : part.num_rows] = _varint_values(f, contiguous(part.column(f.column)))
        for i, f in enumerate(layout.address_fields):
            _address_rows(contiguous(part.column(f.column)), address_bytes[i], address_size[i])
        pos = _kernels().encode(layout.order, layout.group, layout.row, layout.tags, layout.tag_sizes, *matrices,
                                address_bytes, address_size, out, ends[first : first + part.num_rows], pos)  # fmt: skip
    return out[:pos], ends


def _address_rows(column: pa.Array, matrix: np.ndarray, size: np.ndarray) -> None:
    """Addresses into the first rows of ``matrix``, with the bytes GoFlow2 sends for each into ``size``: 4 for
    IPv4 (IPv4-mapped here), 16 for IPv6, 0 for null (absent)."""
    n = len(column)
    matrix[:n] = addresses.to_matrix(column)
    size[:n] = np.where(addresses.is_ipv4_matrix(matrix[:n]), 4, 16)
    if column.null_count:
        size[:n][~np.asarray(column.is_valid())] = 0


def _varint_values(f: _Field, array: pa.Array) -> np.ndarray:
    """A column's values as its group's type (times and the enum: uint64), nulls as 0 (proto3's absent)."""
    if f.kind == "enum":
        codes = pc.index_in(array, value_set=pa.array(FLOW_TYPES))
        return np.asarray(pc.fill_null(codes, 0).to_numpy(zero_copy_only=False), np.uint64)
    if array.null_count:
        array = pc.fill_null(array, 0 if f.kind != "time" else pa.scalar(0, array.type))
    if f.kind == "time":
        nanoseconds = buffer_values(array, np.dtype(np.int64)).view(np.uint64)
        return nanoseconds // np.uint64(f.time_unit) if f.time_unit != 1 else nanoseconds
    return buffer_values(array, array.type.to_pandas_dtype())


# ---------------------------------------------------------------------------------------------- decoding


@dataclass
class Frames:
    """Length-delimited messages found in a buffer: each body's start and end."""

    data: np.ndarray
    """The bytes (writable ``uint8``: the kernels are compiled and cached for that one array type)."""
    starts: np.ndarray
    ends: np.ndarray


REASONS = (
    "",
    "truncated varint",
    "malformed varint (more than 10 bytes)",
    "wrong wire type",
    "invalid tag (garbage)",
    "length past the end of the message",
    "address neither 4 nor 16 bytes",
    "value out of range",
)
"""Skip reasons by the kernels' fault codes (``kernels.TRUNCATED`` ...)."""


def _kernels() -> ModuleType:
    """The numba kernels, imported on first use: a process that never encodes or decodes FlowMessages never
    pays numba's import (0.18-0.24 CPU s, ~80 MiB)."""
    from flowscope.kafka import kernels

    return kernels


def prepare() -> None:
    """Run every kernel once on a one-flow table: loads numba and the cached kernels (0.35-0.45 CPU s) now,
    at a stream's start, rather than in its first flush while datagrams or messages queue; at install
    (``python -m flowscope.kernels``) it compiles them into the cache."""
    data, _ = encode(conform(pa.table({"bytes": pa.array([1], pa.uint64())})))
    decode_payloads([data.tobytes()], Skips())


def _count(skips: Skips, faults: np.ndarray) -> None:
    for code in np.flatnonzero(faults).tolist():
        skips.add(REASONS[code], int(faults[code]))


def split(payloads: list[bytes], skips: Skips) -> Frames:
    """Find the varint-prefixed messages in each payload (Kafka message value).

    A prefix that is not a varint, or a length that runs past its payload, ends that payload's walk: its
    remaining bytes cannot be framed, and are counted as one skipped message.
    """
    data = np.frombuffer(bytearray().join(payloads), np.uint8)  # one copy, writable
    payload_ends = np.cumsum(np.fromiter(map(len, payloads), np.int64, len(payloads)))
    starts, ends, faults = _kernels().split(data, payload_ends)
    _count(skips, faults)
    return Frames(data, starts, ends)


def decode(frames: Frames, skips: Skips, layout: Layout = GOFLOW2) -> pa.Table:
    """The FlowMessages of ``frames`` as flow-schema rows; bad messages are counted in ``skips`` and left out."""
    n = frames.starts.shape[0]
    matrices = [np.zeros((rows, n), dtype) for rows, dtype in zip(layout.rows, _GROUPS, strict=True)]
    address_bytes = np.zeros((len(layout.address_fields), n, 16), np.uint8)
    present = np.zeros((len(layout.address_fields), n), np.bool_)
    starts, ends = (np.ascontiguousarray(a, np.int64) for a in (frames.starts, frames.ends))
    kept, faults = _kernels().decode(frames.data, starts, ends, layout.slot, layout.expected_wire, layout.group,
                                     layout.row, layout.limit, *matrices, address_bytes, present)  # fmt: skip
    _count(skips, faults)
    columns: dict[str, pa.Array] = {}
    for f, g, r in zip(layout.varint_fields, layout.group.tolist(), layout.row.tolist(), strict=True):
        columns[f.column] = _column(f, matrices[g][r, :kept])
    for i, f in enumerate(layout.address_fields):
        columns[f.column] = _address_column(address_bytes[i, :kept], present[i, :kept])
    return conform(pa.table(columns))


def _column(f: _Field, values: np.ndarray) -> pa.Array:
    """A decoded varint field (in its column's type; times and the enum as uint64) as its catalogue column."""
    if f.kind == "time":
        nanoseconds = values * np.uint64(f.time_unit) if f.time_unit != 1 else values
        return pa.array(nanoseconds.view(np.int64), f.arrow_type, mask=values == 0)
    if f.kind == "enum":
        codes = np.where(values < len(FLOW_TYPES), values, 0).astype(np.int8)
        names = pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes == 0), pa.array(FLOW_TYPES))
        return names.cast(pa.string())
    mask = values == 0 if f.column in _NULL_WHEN_ZERO else None
    return pa.array(values, f.arrow_type, mask=mask)


def _address_column(address_bytes: np.ndarray, present: np.ndarray) -> pa.Array:
    """The kernel's 16-byte rows as the address type; absent fields (and empty ones) are null."""
    n = present.shape[0]
    missing = n - int(np.count_nonzero(present))
    validity = pa.py_buffer(np.packbits(present, bitorder="little")) if missing else None
    return pa.Array.from_buffers(ADDRESS, n, [validity, pa.py_buffer(address_bytes)], null_count=missing)


def decode_payloads(payloads: list[bytes], skips: Skips, layout: Layout = GOFLOW2) -> pa.Table:
    """Kafka message values (each any number of length-delimited FlowMessages) -> flow-schema rows.

    All messages in one kernel call: its outputs are the table's own columns, so steps of 32 k or 256 k
    messages bought nothing (1 M flows: 0.32-0.35 and 0.26 s against 0.26 s in one).
    """
    return decode(split(payloads, skips), skips, layout)
