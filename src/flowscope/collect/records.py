"""Column access to the data records of one template across a whole batch of datagrams.

All data sets that use a template are concatenated into one byte buffer; a field is then
read for every record at once. Fixed-length templates are a (records, record_length)
matrix sliced by column; templates with variable-length elements get per-record field
offsets from one pass over each set (RFC 7011 section 7), then the same column reads.
"""

from __future__ import annotations

import numpy as np

from flowscope.collect.fields import VARIABLE_LENGTH, FieldKey
from flowscope.collect.templates import Template


class Records:
    """The records of one template: ``len`` rows; ``bytes_of(key)`` gives an element's (n, length) byte matrix.

    A template that describes several headers of a tunnelled packet is read through one of them:
    ``tunnels`` "outer" (the default) or "inner" (``Template.offsets``).
    """

    def __init__(self, template: Template, bodies: list[bytes | memoryview], tunnels: str = "outer") -> None:
        self.template = template
        self.offsets = template.offsets(tunnels)
        length = template.record_length
        self.per_set: list[int] = []
        self.overruns = 0
        """Sets whose last variable-length record ran past the set's end (the rest of that set is dropped)."""
        if length is not None:
            parts = []
            for body in bodies:
                count = len(body) // length
                self.per_set.append(count)
                parts.append(body[: count * length])
            buffer = np.frombuffer(b"".join(parts), np.uint8)
            self.matrix: np.ndarray | None = buffer.reshape(-1, length)
            self.starts: np.ndarray | None = None
            self.lengths: np.ndarray | None = None
            self.count = self.matrix.shape[0]
        else:
            self.matrix = None
            self.buffer = np.frombuffer(b"".join(bodies), np.uint8)
            self.starts, self.lengths = self._layout(bodies)
            self.count = self.starts.shape[0]

    def __len__(self) -> int:
        return self.count

    def _layout(self, bodies: list[bytes | memoryview]) -> tuple[np.ndarray, np.ndarray]:
        """Per-record, per-field start offsets and lengths for a template with variable-length elements.

        One Python step per record and field: only such templates (rare: strings, lists) pay for it.
        """
        fields = self.template.fields
        minimum = self.template.min_record_length
        starts: list[list[int]] = []
        lengths: list[list[int]] = []
        base = 0
        for body in bodies:
            data = bytes(body)
            offset, end, count = 0, len(data), 0
            while end - offset >= minimum:
                row = _record_layout(fields, data, offset, end)
                if row is None:
                    self.overruns += 1
                    break
                row_starts, row_lengths, offset = row
                starts.append([base + s for s in row_starts])
                lengths.append(row_lengths)
                count += 1
            self.per_set.append(count)
            base += end
        width = len(fields)
        return (
            np.asarray(starts, np.int64).reshape(-1, width),
            np.asarray(lengths, np.int64).reshape(-1, width),
        )

    def _variable_layout(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-record field starts and lengths; only for a template without a fixed record length."""
        assert self.starts is not None and self.lengths is not None, "set whenever there is no matrix"
        return self.starts, self.lengths

    def index_of(self, key: FieldKey) -> int | None:
        found = self.offsets.get(key)
        return None if found is None else found[0]

    def field_length(self, key: FieldKey) -> int | None:
        """Declared length of an element in this template (None if absent or variable-length)."""
        index = self.index_of(key)
        if index is None:
            return None
        length = self.template.fields[index].length
        return None if length == VARIABLE_LENGTH else length

    def bytes_of(self, key: FieldKey) -> np.ndarray:
        """(n, length) bytes of a fixed-length element present in the template."""
        index, offset = self.offsets[key]
        width = self.template.fields[index].length
        if self.matrix is not None:
            return self.matrix[:, offset : offset + width]
        starts, _ = self._variable_layout()
        return self.buffer[starts[:, index, None] + np.arange(width)]

    def section(self, key: FieldKey) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(buffer, per-record starts, per-record lengths) of an element of any length, e.g. a packet section."""
        index, offset = self.offsets[key]
        if self.matrix is not None:
            width = self.template.fields[index].length
            starts = np.arange(self.count, dtype=np.int64) * self.matrix.shape[1] + offset
            return self.matrix.reshape(-1), starts, np.full(self.count, width, np.int64)
        starts, lengths = self._variable_layout()
        return self.buffer, starts[:, index], lengths[:, index]

    def unsigned(self, key: FieldKey) -> np.ndarray | None:
        """A big-endian unsigned element as uint64 (any length 1-8: reduced-size encoding), None if unusable."""
        width = self.field_length(key)
        if width is None or not 1 <= width <= 8:
            return None
        return be_unsigned(self.bytes_of(key))

    def has(self, key: FieldKey) -> bool:
        return self.field_length(key) is not None


def _record_layout(fields: tuple, data: bytes, offset: int, end: int) -> tuple[list[int], list[int], int] | None:
    """Field starts and lengths of the record at ``offset`` and where the next one begins; None on overrun."""
    starts, lengths = [], []
    position = offset
    for field in fields:
        size = field.length
        if size == VARIABLE_LENGTH:
            if position >= end:
                return None
            size = data[position]
            position += 1
            if size == 255:  # long form: the length is in the next two bytes
                if position + 2 > end:
                    return None
                size = int.from_bytes(data[position : position + 2], "big")
                position += 2
        starts.append(position)
        lengths.append(size)
        position += size
    return (starts, lengths, position) if position <= end else None


def be_unsigned(columns: np.ndarray) -> np.ndarray:
    """(n, w) big-endian bytes, 1 <= w <= 8 -> uint64 values."""
    n, width = columns.shape
    if width in (1, 2, 4, 8):
        return np.ascontiguousarray(columns).view(f">u{width}").reshape(n).astype(np.uint64)
    padded = np.zeros((n, 8), np.uint8)
    padded[:, 8 - width :] = columns
    return padded.view(">u8").reshape(n).astype(np.uint64)
