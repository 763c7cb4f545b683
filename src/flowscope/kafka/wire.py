"""Protocol Buffers varints (base-128, little-endian groups) read at many positions at once, and tags.

The ``goflow2`` file reader's chain walk reads the length prefixes of many candidate messages in lockstep
(the FlowMessage codec itself walks messages in ``kafka.kernels``). Every varint is read from the 8 bytes at
its position as one little-endian ``uint64`` (an overlapping, unaligned strided view of the buffer, so a
read is one numpy gather), its length found from the first byte without the continuation bit and its 7-bit
groups packed together in three shift-and-mask steps; the rare varints of 9 or 10 bytes (nanosecond times,
64-bit values) take a second word. No Python step runs per value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PADDING = 16
"""Zero bytes after the data, so the two words read at any position stay inside the buffer."""

WIRE_VARINT, WIRE_LEN = 0, 2

_U = np.uint64
_HIGH_BITS = _U(0x8080808080808080)
_ONE = _U(1)


@dataclass
class Varints:
    """Varints read at some positions: value, length in bytes, and whether each was well formed."""

    value: np.ndarray
    length: np.ndarray
    ok: np.ndarray


class WireBuffer:
    """Bytes to read varints from: the data, zero-padded, with an overlapping uint64 view on it."""

    def __init__(self, data: bytes | np.ndarray) -> None:
        raw = np.frombuffer(data, np.uint8) if isinstance(data, bytes | bytearray | memoryview) else data
        self.size = int(raw.shape[0])
        self.data = np.zeros(self.size + PADDING, np.uint8)
        self.data[: self.size] = raw
        self.words = np.ndarray(self.size + PADDING - 7, "<u8", self.data, 0, (1,))

    def varints(self, positions: np.ndarray) -> Varints:
        """The varint starting at each position."""
        positions = np.minimum(positions, self.size)  # past the end: reads zeros; callers check against ends
        word = self.words[positions]
        stops = ~word & _HIGH_BITS
        lowest = stops & (~stops + _ONE)  # 0x80 << 8*(L-1), or 0 when all eight bytes continue
        below = lowest - _ONE
        length = (np.bitwise_count(below).astype(np.int64) + 1) >> 3
        value = _pack_groups(word & below)
        long = np.flatnonzero(lowest == 0)
        ok = np.ones(positions.shape[0], bool)
        if long.size:
            second = self.words[positions[long] + 8]
            byte8, byte9 = second & _U(0xFF), (second >> _U(8)) & _U(0xFF)
            byte9 = np.where(byte8 >= 0x80, byte9, _U(0))  # a 9-byte varint: the next byte is the next field's
            value[long] = _pack_groups(word[long]) | ((byte8 & _U(0x7F)) << _U(56)) | ((byte9 & _U(1)) << _U(63))
            length[long] = np.where(byte8 < 0x80, 9, 10)
            ok[long] = (byte8 < 0x80) | (byte9 < 0x02)  # a 10th byte holds only bit 63
        return Varints(value, length, ok)


def _pack_groups(word: np.ndarray) -> np.ndarray:
    """The 7-bit groups of up to eight varint bytes (a little-endian word) packed into one 56-bit integer."""
    x = word & _U(0x7F7F7F7F7F7F7F7F)
    x = (x & _U(0x007F007F007F007F)) | ((x & _U(0x7F007F007F007F00)) >> _U(1))
    x = (x & _U(0x00003FFF00003FFF)) | ((x & _U(0x3FFF00003FFF0000)) >> _U(2))
    return (x & _U(0x000000000FFFFFFF)) | ((x & _U(0x0FFFFFFF00000000)) >> _U(4))


def tag(number: int, wire_type: int) -> bytes:
    """A field's tag as the bytes that precede its value."""
    key = number << 3 | wire_type
    out = bytearray()
    while key >= 0x80:
        out.append(key & 0x7F | 0x80)
        key >>= 7
    out.append(key)
    return bytes(out)
