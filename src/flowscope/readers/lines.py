"""Text inputs read in chunks of whole lines: files, ``.gz`` files and standard input (flow CSVs, JSON lines).

A file is read in large blocks that end at a newline (no joining copies); gzip is detected from the first
bytes, on standard input too. A live standard input is cut into chunks every ``commit_rows`` rows or
``commit_seconds`` seconds as well, so a slow feed reaches the lake while it is still running.
"""

from __future__ import annotations

import io
import queue
import select
import sys
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import pyarrow as pa

from flowscope.diagnostics import BROKEN_STREAM, Skips
from flowscope.errors import FlowscopeError
from flowscope.memory import keep_freed_memory
from flowscope.readers.text_options import STDIN, TextOptions

CHUNK_BYTES = 16 << 20
MAX_LINE_BYTES = 16 << 20
INFLATE_PIECE = 256 << 10
"""Compressed bytes inflated per call: a damaged stream loses the text of at most this much (as captures)."""
_TICK = 0.25
_T = TypeVar("_T")


class LineFlowSource:
    """Text inputs (flow CSVs, JSON lines) as one stream of flow batches, input after input; per-row problems
    counted in ``skips``. A format says how one input becomes batches (``batches``)."""

    def __init__(self, paths: Sequence[Path], options: TextOptions | None = None, *, dialect: Any = None) -> None:
        # Every chunk allocates and frees a few hundred MiB of blocks and arrays. With glibc's
        # defaults the 16 MiB blocks are mapped fresh each time, and mimalloc (pyarrow's default
        # pool) hands freed pages back inside huge-page regions, which the kernel then zeroes
        # again: a third of the CPU time of a large file was system time. The C heap keeping
        # freed memory serves both the blocks and, as Arrow's pool, the arrays.
        keep_freed_memory(arrow=True)
        self.inputs = [LineInput(p) for p in paths]
        self.options = options or TextOptions()
        self.skips = Skips(unit="rows")
        self.dialects_seen: dict[str, str] = {}
        """Input name -> the dialect (family) it was read as."""
        self.forced_dialect = dialect
        """The format's dialect named by ``--format`` (None: found from each input's first line)."""

    def progress(self) -> tuple[int, int | None]:
        sizes = [i.size for i in self.inputs]
        total = None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)
        return sum(i.consumed for i in self.inputs), total

    def __iter__(self) -> Iterator[pa.Table]:
        for raw in self.inputs:
            yield from read_ahead(self.batches(raw))
            if raw.broken:
                self.skips.add(BROKEN_STREAM, 1, f"{raw.name}: {raw.broken}")

    def batches(self, raw: LineInput) -> Iterator[pa.Table]:
        raise NotImplementedError


class LineInput:
    """Decompressed byte blocks of one input; ``b""`` blocks are idle ticks of a live stdin."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.live = str(path) == STDIN
        self.name = "<stdin>" if self.live else str(path)
        self.consumed = 0
        self.size = None if self.live else path.stat().st_size
        self.broken: str | None = None
        """Why a compressed input ended early, if it did (its unfinished last line is dropped)."""

    def blocks(self) -> Iterator[bytes | bytearray]:
        if self.live:
            yield from self._inflated(self._stdin_blocks())
            return
        with open(self.path, "rb") as handle:
            if handle.peek(2)[:2] == b"\x1f\x8b":
                yield from self._inflated(iter(lambda: handle.read(CHUNK_BYTES), b""))
            else:
                yield from self._line_blocks(handle)

    def _line_blocks(self, handle: io.BufferedReader) -> Iterator[bytearray]:
        """A plain file in blocks of whole lines: each block is read in place after the previous block's
        unfinished last line, so chunks need no joining copy."""
        carry = b""
        while True:
            block = bytearray(len(carry) + CHUNK_BYTES)
            block[: len(carry)] = carry
            read = handle.readinto(memoryview(block)[len(carry) :])
            self.consumed += read
            del block[len(carry) + read :]
            if not read:  # end of file: a last line without its newline, if any
                if block:
                    yield block
                return
            cut = block.rfind(b"\n") + 1
            _check_line(len(block) - cut, self.name)
            carry = bytes(block[cut:])
            if cut:
                del block[cut:]
                yield block

    def _inflated(self, raw_blocks: Iterator[bytes]) -> Iterator[bytes]:
        """Blocks decompressed when the input is gzip (detected from its first bytes, also on stdin)."""
        inflater: Any = None
        first = True
        for block in raw_blocks:
            self.consumed += len(block)
            if first and block:
                first = False
                if block[:2] == b"\x1f\x8b":
                    inflater = zlib.decompressobj(wbits=47)
            if inflater is None or not block:
                yield block
                continue
            for start in range(0, len(block), INFLATE_PIECE):  # damage loses at most one piece's text
                pending = block[start : start + INFLATE_PIECE]
                while pending:  # out in pieces of at most CHUNK_BYTES: 16 MiB of gzip can hold 16 GiB of text
                    try:
                        yield inflater.decompress(pending, CHUNK_BYTES)
                    except zlib.error as exc:  # damaged: keep what came before, the reader counts the rest
                        self.broken = str(exc)
                        return
                    if inflater.eof and inflater.unused_data:  # concatenated gzip members
                        pending = inflater.unused_data
                        inflater = zlib.decompressobj(wbits=47)
                    else:
                        pending = inflater.unconsumed_tail
        if inflater is not None and not inflater.eof:
            self.broken = "the compressed stream ends before its end marker"

    def _stdin_blocks(self) -> Iterator[bytes]:
        # read1 first returns what format detection peeked into stdin's buffer, then one read per
        # call; after each call that buffer is empty, so select() tells when the next read would block.
        stdin = cast(io.BufferedReader, sys.stdin.buffer)  # typed BinaryIO, which has no read1
        block = stdin.read1(1 << 20)
        while block:
            yield block
            while not select.select([stdin], [], [], _TICK)[0]:
                yield b""
            block = stdin.read1(1 << 20)


def read_ahead(items: Iterator[_T]) -> Iterator[_T]:
    """``items``, the next one made on a second thread while the caller works on the current one.

    A text reader's batch is read, parsed (pyarrow, without the GIL) and converted while the caller reduces and
    writes the one before, so both cores work for the whole input (``read --reduce pairs -o`` of a 2 M-row CSV:
    2.79 -> 2.11 s wall at the same CPU). ``items`` runs on that thread only (it is closed there when the caller
    stops early); an error it raises reaches the caller after the items before it.
    """
    handoff: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
    stopping = threading.Event()

    def hand(more: bool, value: Any) -> bool:
        """Queue one message; False once the caller has stopped."""
        while not stopping.is_set():
            try:
                handoff.put((more, value), timeout=_TICK)
                return True
            except queue.Full:
                continue
        return False

    def make() -> None:
        try:
            for item in items:
                if not hand(True, item):
                    return
            hand(False, None)
        except BaseException as exc:  # the caller raises it
            hand(False, exc)
        finally:
            close = getattr(items, "close", None)  # a generator: closed on the thread that runs it
            if close is not None:
                close()

    threading.Thread(target=make, name="read-ahead", daemon=True).start()
    try:
        while True:
            more, value = handoff.get()
            if not more:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        stopping.set()


def line_chunks(
    raw: LineInput, *, commit_rows: int, commit_seconds: float, header: bool
) -> Iterator[bytes | bytearray]:
    """With ``header``, first the header line; then chunks of whole lines.

    A file's blocks already are whole lines (``_RawInput``): each becomes a chunk as it is. Live
    input is gathered until ``CHUNK_BYTES``, ``commit_rows`` or ``commit_seconds``.
    """
    tail: bytes | bytearray = b""
    ready: list[bytes | bytearray | memoryview] = []
    ready_rows = ready_bytes = 0
    since = 0.0
    header_done = not header
    for block in raw.blocks():
        if not header_done:
            tail = (tail + block).lstrip(b"\r\n")
            cut = tail.find(b"\n")
            if cut < 0:
                _check_line(len(tail), raw.name)
                continue
            yield tail[:cut]
            block, tail = tail[cut + 1 :], b""
            header_done = True
        cut = block.rfind(b"\n")
        if cut >= 0:
            if not ready:
                since = time.monotonic()
            piece = block if cut + 1 == len(block) else memoryview(block)[: cut + 1]
            ready += [tail, piece] if tail else [piece]
            ready_bytes += len(tail) + cut + 1
            if raw.live:
                ready_rows += tail.count(b"\n") + block.count(b"\n", 0, cut + 1)
            tail = block[cut + 1 :]
        else:
            tail += block
            _check_line(len(tail), raw.name)
        due = not raw.live or ready_bytes >= CHUNK_BYTES or ready_rows >= commit_rows
        if ready and (due or (raw.live and time.monotonic() - since >= commit_seconds)):
            yield _joined(ready)
            ready, ready_rows, ready_bytes = [], 0, 0
    if raw.broken:
        tail = b""  # a line cut by the break may end inside a value: no row is made of it
    if not header_done:
        if tail.strip():
            yield tail
        return
    if tail.strip():
        ready += [tail, b"\n"]
    if ready:
        yield _joined(ready)


def _joined(pieces: list[bytes | bytearray | memoryview]) -> bytes | bytearray:
    """One chunk from its pieces; a lone whole block is passed on as it is (no copy)."""
    return pieces[0] if len(pieces) == 1 and not isinstance(pieces[0], memoryview) else b"".join(pieces)


def _check_line(unfinished: int, name: str) -> None:
    """A line still unfinished after ``MAX_LINE_BYTES`` is no flow record (those take well under 4 kB): one
    clear error, instead of gathering a compressed stream's endless line (a gzip bomb) in memory."""
    if unfinished > MAX_LINE_BYTES:
        raise FlowscopeError(f"{name}: a line longer than {MAX_LINE_BYTES >> 20} MiB: not flow records")


def is_utf8(chunk: bytes | bytearray) -> bool:
    """One decode of the whole chunk (about 3 ms per 16 MiB of ASCII)."""
    try:
        str(chunk, "utf-8")
    except UnicodeDecodeError:
        return False
    return True


class Lines:
    """Where the lines of a chunk start and end (byte offsets; ``ends`` at the newline or the chunk's end)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.array = np.frombuffer(data, np.uint8)
        self.newlines = np.flatnonzero(self.array == 0x0A)
        self.starts = np.r_[0, self.newlines + 1]
        self.ends = np.r_[self.newlines, len(data)]

    def without(self, lines: list[int]) -> tuple[bytes, list[int], str]:
        """The chunk without ``lines`` (0-based, ascending; few: the runs of good lines between them are sliced
        whole), their 1-based numbers, and the first one shown escaped."""
        pieces, after = [], 0
        for line in lines:
            pieces.append(self.data[after : self.starts[line]])
            after = self.ends[line] + 1
        kept = b"".join([*pieces, self.data[after:]])
        first = self.data[self.starts[lines[0]] : self.ends[lines[0]]] if lines else b""
        return kept, [line + 1 for line in lines], first[:80].decode("utf-8", errors="backslashreplace")


def without_lines_not_utf8(chunk: bytes | bytearray) -> tuple[bytes, list[int], str]:
    """The chunk without its lines that are not valid UTF-8; their 1-based line numbers; one shown escaped.

    Only for a chunk that is not UTF-8 as a whole: the lines holding a byte above 0x7F are found with numpy
    and only those are decoded one by one (decoding the rest of the chunk after each bad byte was quadratic:
    a chunk of many bad bytes never ended).
    """
    found = Lines(bytes(chunk))
    suspects = np.unique(np.searchsorted(found.newlines, np.flatnonzero(found.array >= 0x80)))
    bad = [line for line in suspects.tolist() if not is_utf8(found.data[found.starts[line] : found.ends[line]])]
    return found.without(bad)
