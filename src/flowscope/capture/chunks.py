"""A capture file as successive numpy buffers, each starting with what the previous one left unconsumed.

Plain files are memory-mapped, so a chunk is a zero-copy window (pages already read are given back to
the kernel, so resident memory stays about one chunk); compressed streams are read into a
fresh array per chunk (batches handed downstream keep pointing into their own chunk, so a buffer is
never reused while a consumer may still hold it).
"""

from __future__ import annotations

import mmap
import zlib
from typing import BinaryIO

import numpy as np

CHUNK_BYTES = 32 << 20
READ_PIECE = 256 << 10
BROKEN_STREAM = "compressed stream broken or cut short: rest of file unreadable"


class Chunks:
    def __init__(self, stream: BinaryIO, *, mappable: bool, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.stream = stream
        self.chunk_bytes = chunk_bytes
        self.mapped: np.ndarray | None = None
        self.mapping: mmap.mmap | None = None
        self.released = 0  # mapped bytes already handed back to the kernel
        if mappable:
            try:
                self.mapping = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
                self.mapped = np.frombuffer(self.mapping, np.uint8)
            except (ValueError, OSError):  # empty files and special files cannot be mapped
                self.mapping = None
        self.start = 0  # stream offset of the current buffer
        self.buffer = np.zeros(0, np.uint8)
        self.at_eof = False
        self.broken: str | None = None  # why a compressed stream ended early, if it did

    def next(self, consumed: int) -> np.ndarray:
        """The next buffer, beginning at ``consumed`` bytes into the current one; sets ``at_eof``."""
        self.start += consumed
        if self.mapped is not None:
            self._release_before(self.start)
            self.buffer = self.mapped[self.start : self.start + self.chunk_bytes]
            self.at_eof = self.start + self.chunk_bytes >= self.mapped.shape[0]
            return self.buffer
        tail = self.buffer[consumed:]
        fresh = np.empty(tail.shape[0] + self.chunk_bytes, np.uint8)
        fresh[: tail.shape[0]] = tail
        filled = tail.shape[0]
        view = memoryview(fresh)
        while filled < fresh.shape[0]:
            try:
                # Modest pieces: a stream that breaks loses at most the piece being read.
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

    def _release_before(self, offset: int) -> None:
        """Let the kernel drop mapped pages already read, so resident memory stays about one chunk.

        Safe even if a consumer still holds a batch there: file-backed pages are read in again on access.
        """
        end = offset - offset % mmap.PAGESIZE
        if self.mapping is not None and end > self.released:
            self.mapping.madvise(mmap.MADV_DONTNEED, self.released, end - self.released)
            self.released = end
