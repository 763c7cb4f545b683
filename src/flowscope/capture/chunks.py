"""A capture file as successive numpy buffers, each starting with what the previous one left unconsumed.

Two ways to get them, behind one interface (``Chunks``):

- ``ReadChunks`` reads a stream (plain or decompressed) into fresh arrays: batches handed downstream keep
  pointing into their own chunk, so a buffer is never reused while a consumer may still hold it. A file that
  shrinks while it is read (tcpdump reusing a ring-buffer file, ``-C``/``-W``) just comes back short and the
  cut is counted.
- ``MappedChunks`` maps windows of a plain file read-only instead: no copy out of the page cache (a sixth of
  metering's time), and the kernel maps cached file data in large pages. A window stays mapped while any
  array still points into it. The price: a file truncated under a mapped window kills the process (SIGBUS),
  so only callers reading files nobody rewrites (captures named to ``flowscope read``) ask for it; folders
  that tcpdump may still recycle (``read DIR``, ``watch``, ``capture``) are read.
"""

from __future__ import annotations

import io
import mmap
import os
import zlib
from abc import ABC, abstractmethod
from typing import BinaryIO

import numpy as np

CHUNK_BYTES = 32 << 20  # the largest chunk; readers ask for about one output batch's worth
MIN_CHUNK_BYTES = 4 << 20
READ_PIECE = 256 << 10


class Chunks(ABC):
    """Successive buffers of one file; ``next`` moves on, ``at_eof`` tells when the file is exhausted."""

    chunk_bytes = CHUNK_BYTES

    def __init__(self) -> None:
        self.start = 0  # file offset of the current buffer
        self.buffer = np.zeros(0, np.uint8)
        self.at_eof = False
        self.broken: str | None = None  # why a compressed stream ended early, if it did

    def next(self, consumed: int, wanted: int | None = None) -> np.ndarray:
        """The next buffer, beginning at ``consumed`` bytes into the current one, with about ``wanted`` new
        bytes (bounded by MIN_CHUNK_BYTES and the chunk size); sets ``at_eof``."""
        if consumed > self.buffer.shape[0]:  # skip bytes never buffered (a span of a file starting further on)
            self._skip(consumed - self.buffer.shape[0])
        self.start += consumed
        tail = self.buffer[consumed:]
        size = self.chunk_bytes if wanted is None else min(max(wanted, MIN_CHUNK_BYTES), self.chunk_bytes)
        self.buffer = self._fill(tail, size)
        return self.buffer

    @abstractmethod
    def _skip(self, size: int) -> None:
        """Move past ``size`` bytes after the current buffer."""

    @abstractmethod
    def _fill(self, tail: np.ndarray, size: int) -> np.ndarray:
        """``tail`` followed by up to ``size`` further bytes of the file."""


class ReadChunks(Chunks):
    def __init__(self, stream: io.BufferedIOBase) -> None:
        super().__init__()
        self.stream = stream

    def _skip(self, size: int) -> None:
        self.stream.seek(size, io.SEEK_CUR)

    def _fill(self, tail: np.ndarray, size: int) -> np.ndarray:
        fresh = np.empty(tail.shape[0] + size, np.uint8)
        fresh[: tail.shape[0]] = tail
        filled = tail.shape[0]
        view = fresh.data
        while filled < fresh.shape[0]:
            try:
                # Modest pieces, each from one read of the stream underneath (readinto1): a compressed stream
                # that breaks loses at most the piece being read (readinto's loop dropped what it had, so a
                # gzip file cut inside its first piece lost everything).
                got = self.stream.readinto1(view[filled : filled + READ_PIECE])
            except (EOFError, OSError, zlib.error) as exc:
                if self.start == 0 and filled == 0:
                    raise  # nothing readable at all: the caller reports the file as unreadable
                self.broken = str(exc) or type(exc).__name__  # keep what was read; the reader counts the rest
                break
            if not got:
                break
            filled += got
        self.at_eof = filled < fresh.shape[0]
        return fresh[:filled]


class MappedChunks(Chunks):
    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self.fileno = stream.fileno()

    def _skip(self, size: int) -> None:
        """Nothing to do: windows are mapped by file offset."""

    def _fill(self, tail: np.ndarray, size: int) -> np.ndarray:
        file_size = os.fstat(self.fileno).st_size  # a file still being written has grown since the last window
        end = min(file_size, self.start + tail.shape[0] + size)
        self.at_eof = end == file_size
        mapped_from = self.start - self.start % mmap.ALLOCATIONGRANULARITY
        if end <= self.start:
            return np.zeros(0, np.uint8)
        window = mmap.mmap(self.fileno, end - mapped_from, access=mmap.ACCESS_READ, offset=mapped_from)
        return np.frombuffer(window, np.uint8)[self.start - mapped_from :]
