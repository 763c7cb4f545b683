"""A capture file as successive numpy buffers, each starting with what the previous one left unconsumed.

Every chunk is read into a fresh array: batches handed downstream keep pointing into their own chunk, so
a buffer is never reused while a consumer may still hold it. Files are read, not memory-mapped, because a
file that shrinks while mapped (tcpdump reusing a ring-buffer file, ``-C``/``-W``) would kill the process
with SIGBUS; a read just comes back short and the cut is counted.
"""

from __future__ import annotations

import zlib
from typing import BinaryIO

import numpy as np

CHUNK_BYTES = 32 << 20  # the largest chunk; readers ask for about one output batch's worth
MIN_CHUNK_BYTES = 4 << 20
READ_PIECE = 256 << 10
BROKEN_STREAM = "compressed stream broken or cut short: rest of file unreadable"


class Chunks:
    def __init__(self, stream: BinaryIO, *, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.stream = stream
        self.chunk_bytes = chunk_bytes
        self.start = 0  # stream offset of the current buffer
        self.buffer = np.zeros(0, np.uint8)
        self.at_eof = False
        self.broken: str | None = None  # why a compressed stream ended early, if it did

    def next(self, consumed: int, wanted: int | None = None) -> np.ndarray:
        """The next buffer, beginning at ``consumed`` bytes into the current one, with about ``wanted`` new
        bytes (bounded by MIN_CHUNK_BYTES and the chunk size); sets ``at_eof``."""
        self.start += consumed
        tail = self.buffer[consumed:]
        size = self.chunk_bytes if wanted is None else min(max(wanted, MIN_CHUNK_BYTES), self.chunk_bytes)
        fresh = np.empty(tail.shape[0] + size, np.uint8)
        fresh[: tail.shape[0]] = tail
        filled = tail.shape[0]
        view = memoryview(fresh)
        while filled < fresh.shape[0]:
            try:
                # Modest pieces: a compressed stream that breaks loses at most the piece being read.
                got = self.stream.readinto(view[filled : filled + READ_PIECE])
            except (EOFError, OSError, zlib.error) as exc:
                if self.start == 0 and filled == 0:
                    raise  # nothing readable at all: the caller reports the file as unreadable
                self.broken = str(exc) or type(exc).__name__  # keep what was read; the reader counts the rest
                break
            if not got:
                break
            filled += got
        self.at_eof = filled < fresh.shape[0]
        self.buffer = fresh[:filled]
        return self.buffer
