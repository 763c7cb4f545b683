"""How many bytes an Arrow IPC stream's buffers take once decompressed, read from its message headers before
pyarrow allocates them.

A ``zstd``-compressed stream states each buffer's decompressed length in the buffer's first 8 bytes, and
pyarrow allocates that much on reading: a Kafka message of 124 kB (20 M rows of one zero column) made 4.2 GB
(measured). ``expanded_size`` adds those lengths up from the record-batch headers (the Arrow IPC flatbuffers:
``Message`` -> ``RecordBatch`` or ``DictionaryBatch`` -> ``buffers``), so a message expanding past a bound is
a counted skip instead.
"""

from __future__ import annotations

import struct

import pyarrow as pa

_RECORD_BATCH, _DICTIONARY_BATCH = 3, 2  # MessageHeader union types (Message.fbs)
_UNCOMPRESSED = -1  # a compressed stream's buffer that is stored as is


class _Table:
    """A flatbuffer table: its fields found through its vtable."""

    def __init__(self, data: bytes, position: int) -> None:
        self.data = data
        self.position = position
        self.vtable = position - struct.unpack_from("<i", data, position)[0]
        self.vtable_size = struct.unpack_from("<H", data, self.vtable)[0]

    def field(self, index: int) -> int | None:
        """The absolute position of field ``index``, None when absent."""
        entry = 4 + 2 * index
        if entry + 2 > self.vtable_size:
            return None
        offset = struct.unpack_from("<H", self.data, self.vtable + entry)[0]
        return self.position + offset if offset else None

    def scalar(self, index: int, fmt: str, default: int = 0) -> int:
        at = self.field(index)
        return default if at is None else struct.unpack_from(fmt, self.data, at)[0]

    def table(self, index: int) -> _Table | None:
        at = self.field(index)
        return None if at is None else _Table(self.data, at + struct.unpack_from("<I", self.data, at)[0])

    def structs(self, index: int, size: int) -> list[int]:
        """Positions of the elements of a vector of structs of ``size`` bytes."""
        at = self.field(index)
        if at is None:
            return []
        vector = at + struct.unpack_from("<I", self.data, at)[0]
        count = struct.unpack_from("<I", self.data, vector)[0]
        if vector + 4 + count * size > len(self.data):
            raise ValueError("vector beyond the message header")
        return [vector + 4 + i * size for i in range(count)]


def expanded_size(stream: bytes) -> int:
    """The bytes all record and dictionary batches of ``stream`` take decompressed; raises ValueError (or
    ``pa.ArrowInvalid``) when the stream is no readable Arrow IPC stream."""
    total = 0
    try:
        for message in pa.ipc.MessageReader.open_stream(pa.BufferReader(stream)):
            metadata = message.metadata.to_pybytes()
            root = _Table(metadata, struct.unpack_from("<I", metadata, 0)[0])
            kind = root.scalar(1, "<B")
            batch = root.table(2)
            if batch is not None and kind == _DICTIONARY_BATCH:
                batch = batch.table(1)
            if batch is None or kind not in (_RECORD_BATCH, _DICTIONARY_BATCH):
                continue
            compressed = batch.field(3) is not None
            body = message.body.to_pybytes() if compressed and message.body is not None else b""
            for at in batch.structs(2, 16):
                offset, length = struct.unpack_from("<qq", metadata, at)
                if not compressed or length == 0:
                    total += max(length, 0)
                    continue
                stated = struct.unpack_from("<q", body, offset)[0]
                total += length - 8 if stated == _UNCOMPRESSED else stated
    except struct.error as exc:
        raise ValueError(f"broken Arrow IPC message header: {exc}") from None
    return total
