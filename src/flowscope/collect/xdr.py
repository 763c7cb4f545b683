"""Reading XDR (RFC 4506) structures of many datagrams at once.

sFlow nests (format, length, body) structures three levels deep. All datagrams of a
batch are laid end to end in one byte buffer; ``walk`` then reads the k-th child of
every parent in one numpy step, so the Python loop runs once per nesting position
(a handful of times), never once per sample or record.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Reads past a datagram's end land in this zero padding instead of out of bounds.
PADDING = 64


@dataclass
class Buffer:
    """The datagrams of a batch in one zero-padded uint8 array, with each one's start and end."""

    data: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    @classmethod
    def join(cls, payloads: list[bytes]) -> Buffer:
        lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=len(payloads))
        ends = np.cumsum(lengths)
        data = np.frombuffer(b"".join([*payloads, bytes(PADDING)]), dtype=np.uint8)
        return cls(data, ends - lengths, ends)

    def _clip(self, positions: np.ndarray) -> np.ndarray:
        """Positions past the data read the zero padding instead (positions are never negative)."""
        return np.minimum(positions, self.data.shape[0] - PADDING)

    def u32(self, positions: np.ndarray) -> np.ndarray:
        """Big-endian unsigned 32-bit integers at byte positions (0 where a position is out of range)."""
        return self.rows(positions, 4).view(">u4").reshape(-1).astype(np.uint32)

    def u64(self, positions: np.ndarray) -> np.ndarray:
        return (self.u32(positions).astype(np.uint64) << np.uint64(32)) | self.u32(positions + 4).astype(np.uint64)

    def rows(self, positions: np.ndarray, width: int) -> np.ndarray:
        """An (n, width) matrix of the bytes starting at each position."""
        p = self._clip(np.asarray(positions, np.int64))
        return self.data[p[:, None] + np.arange(width)]

    def mac(self, positions: np.ndarray) -> np.ndarray:
        """A 6-byte MAC address at each position as a 48-bit uint64."""
        matrix = self.rows(positions, 6).astype(np.uint64)
        shifts = np.array([40, 32, 24, 16, 8, 0], dtype=np.uint64)
        return (matrix << shifts).sum(axis=1, dtype=np.uint64)


@dataclass
class Children:
    """Structures found inside parents: parent index, body offset, format and body length of each."""

    parent: np.ndarray
    body: np.ndarray
    format: np.ndarray
    length: np.ndarray
    truncated: np.ndarray
    """Per parent: True when its declared count of children ran past its end."""

    def select(self, mask: np.ndarray) -> Children:
        return Children(self.parent[mask], self.body[mask], self.format[mask], self.length[mask], self.truncated)


def walk(buf: Buffer, starts: np.ndarray, counts: np.ndarray, ends: np.ndarray) -> Children:
    """Find ``counts[i]`` consecutive (format u32, length u32, body) structures from ``starts[i]`` up to ``ends[i]``.

    A child whose header or body would cross its parent's end stops that parent's walk
    and flags it truncated. Each step advances at least 8 bytes, so a lying count
    cannot make the loop run longer than the longest datagram allows.
    """
    cursor = starts.astype(np.int64)
    left = counts.astype(np.int64)
    ends = ends.astype(np.int64)
    truncated = np.zeros(starts.shape[0], dtype=bool)
    found: list[tuple[np.ndarray, ...]] = []
    active = np.flatnonzero(left > 0)
    while active.size:
        position = cursor[active]
        fmt = buf.u32(position)
        length = buf.u32(position + 4).astype(np.int64)
        body_end = position + 8 + length
        fits = (position + 8 <= ends[active]) & (body_end <= ends[active])
        truncated[active[~fits]] = True
        active, position, fmt, length, body_end = (a[fits] for a in (active, position, fmt, length, body_end))
        found.append((active, position + 8, fmt, length))
        cursor[active] = body_end
        left[active] -= 1
        active = active[left[active] > 0]
    if not found:
        empty = np.zeros(0, np.int64)
        return Children(empty, empty, np.zeros(0, np.uint32), empty, truncated)
    parent, body, fmt, length = (np.concatenate(column) for column in zip(*found, strict=True))
    order = np.argsort(parent, kind="stable")
    return Children(parent[order], body[order], fmt[order], length[order], truncated)
