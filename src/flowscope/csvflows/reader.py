"""``flowscope read`` for flow CSVs: files, ``.gz`` files and standard input, streamed in chunks.

Input is cut into chunks of whole lines and each chunk is parsed by pyarrow's CSV
reader (integer columns as their flow-schema type, addresses and timestamps as raw
bytes), then converted column-wise (``convert``). From a file, chunks
are large (speed); from standard input a chunk is also closed every
``commit_rows`` rows or ``commit_seconds`` seconds, so a slow live feed reaches the
lake (whose writer uses the same limits) while it is still running.
Lines are cut at newlines: quoted values containing newlines are not supported
(no flow CSV has them).
"""

from __future__ import annotations

import io
import re
import select
import sys
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from flowscope.csvflows import dialects
from flowscope.csvflows.convert import column_types, convert
from flowscope.csvflows.dialects import Dialect
from flowscope.csvflows.header import normalised_names, split_header
from flowscope.csvflows.options import STDIN, CsvOptions
from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError
from flowscope.memory import keep_freed_memory
from flowscope.readers.options import ReadOptions
from flowscope.readers.registry import Reader, register

CHUNK_BYTES = 16 << 20
MAX_LINE_BYTES = 16 << 20
_TICK = 0.25
_COMMENT_LINES = re.compile(rb"(?m)^#[^\n]*\n?")


class _RawInput:
    """Decompressed byte blocks of one input; ``b""`` blocks are idle ticks of a live stdin."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.live = str(path) == STDIN
        self.name = "<stdin>" if self.live else str(path)
        self.consumed = 0
        self.size = None if self.live else path.stat().st_size

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
            pending = block
            while pending:  # in pieces of at most CHUNK_BYTES: 16 MiB of gzip can hold 16 GiB of text
                yield inflater.decompress(pending, CHUNK_BYTES)
                if inflater.eof and inflater.unused_data:  # concatenated gzip members
                    pending = inflater.unused_data
                    inflater = zlib.decompressobj(wbits=47)
                else:
                    pending = inflater.unconsumed_tail

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


class CsvFlowSource:
    """All inputs as one stream of flow batches; per-row problems counted in ``skips``."""

    def __init__(
        self, paths: Sequence[Path], options: CsvOptions | None = None, *, dialect: Dialect | None = None
    ) -> None:
        # Every chunk allocates and frees a few hundred MiB of blocks and arrays. With glibc's
        # defaults the 16 MiB blocks are mapped fresh each time, and mimalloc (pyarrow's default
        # pool) hands freed pages back inside huge-page regions, which the kernel then zeroes
        # again: a third of the CPU time of a large file was system time. The C heap keeping
        # freed memory serves both the blocks and, as Arrow's pool, the arrays.
        keep_freed_memory(arrow=True)
        self.inputs = [_RawInput(p) for p in paths]
        self.forced_dialect = dialect
        self.options = options or CsvOptions()
        self.skips = Skips(unit="rows")
        self.dialects_seen: dict[str, str] = {}

    def progress(self) -> tuple[int, int | None]:
        sizes = [i.size for i in self.inputs]
        total = None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)
        return sum(i.consumed for i in self.inputs), total

    def __iter__(self) -> Iterator[pa.Table]:
        for raw in self.inputs:
            yield from _InputReader(self, raw).batches()


class _InputReader:
    """Reads one input: header, dialect, then chunk after chunk."""

    def __init__(self, source: CsvFlowSource, raw: _RawInput) -> None:
        self.source = source
        self.raw = raw
        self.rows_seen = 0
        self.in_summary = False

    def batches(self) -> Iterator[pa.Table]:
        chunks = self._chunks()
        header = next(chunks, None)
        if header is None:
            return
        names = normalised_names(split_header(header))
        dialect = self.source.forced_dialect or dialects.find(names)
        if dialect is None:
            shown = ", ".join(split_header(header)[:6])
            raise FlowscopeError(
                f"{self.raw.name}: not a flow CSV: its header ({shown}, ...) has none of the column sets of "
                f"{', '.join(d.name for d in dialects.DIALECTS)} (see docs/CSV.md)"
            )
        mapping = dialect.mapping(names)
        if not dialect.matches(set(names)):
            raise FlowscopeError(f"{self.raw.name}: header lacks the columns a {dialect.name} CSV must have")
        self.source.dialects_seen[self.raw.name] = dialect.name
        for chunk in chunks:
            table = self._parse(chunk, names, dialect, mapping)
            if table is not None and table.num_rows:
                yield table

    def _chunks(self) -> Iterator[bytes | bytearray]:
        """First the header line, then chunks of whole lines.

        A file's blocks already are whole lines (``_RawInput``): each becomes a chunk as it is. Live
        input is gathered until ``CHUNK_BYTES``, ``commit_rows`` or ``commit_seconds``.
        """
        tail: bytes | bytearray = b""
        ready: list[bytes | bytearray | memoryview] = []
        ready_rows = ready_bytes = 0
        since = 0.0
        header_done = False
        for block in self.raw.blocks():
            if not header_done:
                tail = (tail + block).lstrip(b"\r\n")
                cut = tail.find(b"\n")
                if cut < 0:
                    _check_line(len(tail), self.raw.name)
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
                if self.raw.live:
                    ready_rows += tail.count(b"\n") + block.count(b"\n", 0, cut + 1)
                tail = block[cut + 1 :]
            else:
                tail += block
                _check_line(len(tail), self.raw.name)
            due = not self.raw.live or ready_bytes >= CHUNK_BYTES or ready_rows >= self.source.options.commit_rows
            if ready and (due or (self.raw.live and time.monotonic() - since >= self.source.options.commit_seconds)):
                yield _joined(ready)
                ready, ready_rows, ready_bytes = [], 0, 0
        if not header_done:
            if tail.strip():
                yield tail
            return
        if tail.strip():
            ready += [tail, b"\n"]
        if ready:
            yield _joined(ready)

    def _parse(
        self, chunk: bytes | bytearray, names: list[str], dialect: Dialect, mapping: dict[str, str]
    ) -> pa.Table | None:
        if self.in_summary:
            return None
        if dialect is dialects.NFDUMP:
            # nfdump appends a "Summary" block (other columns) unless run with -q: data ends there.
            summary = 0 if chunk.startswith(b"Summary") else chunk.find(b"\nSummary") + 1
            if summary > 0 or chunk.startswith(b"Summary"):
                chunk = chunk[:summary]
                self.in_summary = True
        if dialect is dialects.FTPROFILER and b"#" in chunk:
            chunk = _COMMENT_LINES.sub(b"", chunk)
        if len(chunk) < 2:
            return None
        ragged: list[str] = []
        ragged_lines: list[int | None] = []

        def on_ragged(row: pacsv.InvalidRow) -> str:
            ragged.append(f"{row.actual_columns} fields, expected {row.expected_columns}: {row.text[:80]}")
            ragged_lines.append(row.number)
            return "skip"

        def parse(numbers: bool) -> pa.Table:
            ragged.clear()
            ragged_lines.clear()
            types = column_types(dialect, mapping, names, numbers=numbers)
            return pacsv.read_csv(
                pa.BufferReader(chunk),
                # one block per chunk: one contiguous array per column, nothing to combine later
                read_options=pacsv.ReadOptions(column_names=names, block_size=len(chunk) + 1),
                parse_options=pacsv.ParseOptions(invalid_row_handler=on_ragged),
                convert_options=pacsv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True),
            )

        if not _is_utf8(chunk):  # before pyarrow: it cannot even show us a ragged row that is not UTF-8
            chunk, bad_lines, example = _without_lines_not_utf8(chunk)
            for line in bad_lines:
                self._problem("row is not UTF-8 text", 1, example, self.rows_seen + line)
        try:
            try:
                # Fast path: numeric columns parsed as numbers of their type; any unreadable value fails the
                # whole chunk, which is then parsed as text and converted row-tolerantly.
                raw = parse(numbers=True)
            except pa.ArrowInvalid:
                raw = parse(numbers=False)
        except pa.ArrowInvalid as exc:
            raise FlowscopeError(f"{self.raw.name}: unreadable CSV near data row {self.rows_seen + 1}: {exc}") from exc
        if ragged:
            line = ragged_lines[0] or 1
            self._problem("row with the wrong number of fields", len(ragged), ragged[0], self.rows_seen + line)
        result = convert(raw, dialect, mapping, self.source.options.tz)
        keep = None
        for problem in result.problems:
            self._problem(problem.reason, len(problem.rows), problem.example, self.rows_seen + int(problem.rows[0]) + 1)
            if keep is None:
                keep = np.ones(raw.num_rows, dtype=bool)
            keep[problem.rows] = False
        self.rows_seen += raw.num_rows
        table = result.table
        return table if keep is None else table.filter(pa.array(keep))

    def _problem(self, reason: str, count: int, example: str, row: int) -> None:
        if self.source.options.strict:
            raise FlowscopeError(f"{self.raw.name}: near data row {row}: {reason}: {example!r} (--strict)")
        self.source.skips.add(reason, count, example)


def _check_line(unfinished: int, name: str) -> None:
    """A line still unfinished after ``MAX_LINE_BYTES`` is no flow record (those take well under 4 kB): one
    clear error, instead of gathering a compressed stream's endless line (a gzip bomb) in memory."""
    if unfinished > MAX_LINE_BYTES:
        raise FlowscopeError(f"{name}: a line longer than {MAX_LINE_BYTES >> 20} MiB: not a flow CSV")


def _is_utf8(chunk: bytes | bytearray) -> bool:
    """One decode of the whole chunk (about 3 ms per 16 MiB of ASCII)."""
    try:
        str(chunk, "utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _without_lines_not_utf8(chunk: bytes | bytearray) -> tuple[bytes, list[int], str]:
    """The chunk without its lines that are not valid UTF-8; their 1-based line numbers; one shown escaped.

    Only for a chunk that is not UTF-8 as a whole: the lines holding a byte above 0x7F are found with numpy
    and only those are decoded one by one (decoding the rest of the chunk after each bad byte was quadratic:
    a chunk of many bad bytes never ended).
    """
    data = bytes(chunk)
    array = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(array == 0x0A)
    starts = np.r_[0, newlines + 1]
    ends = np.r_[newlines, len(data)]
    suspects = np.unique(np.searchsorted(newlines, np.flatnonzero(array >= 0x80)))
    lines = [line for line in suspects.tolist() if not _is_utf8(data[starts[line] : ends[line]])]
    pieces, after = [], 0
    for line in lines:  # few: the runs of good lines between them are sliced whole
        pieces.append(data[after : starts[line]])
        after = ends[line] + 1
    kept = b"".join([*pieces, data[after:]])
    first = data[starts[lines[0]] : ends[lines[0]]] if lines else b""
    return kept, [line + 1 for line in lines], first[:80].decode("utf-8", errors="backslashreplace")


def _joined(pieces: list[bytes | bytearray | memoryview]) -> bytes | bytearray:
    """One chunk from its pieces; a lone whole block is passed on as it is (no copy)."""
    return pieces[0] if len(pieces) == 1 and not isinstance(pieces[0], memoryview) else b"".join(pieces)


def sniff(path: Path, head: bytes) -> bool:
    """A text first line with commas whose column names fit one of the dialects.

    ``head`` may still be gzip-compressed when it comes from standard input.
    """
    if head[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(wbits=47).decompress(head)
        except zlib.error:
            return False
    line = head.split(b"\n", 1)[0]
    if line.count(b",") < 2 or b"\x00" in line:
        return False
    return dialects.find(normalised_names(split_header(line))) is not None


def open_source(paths: Sequence[Path], options: ReadOptions, dialect: Dialect | None = None) -> CsvFlowSource:
    return CsvFlowSource(paths, options.csv, dialect=dialect)


def _shaping(options: ReadOptions) -> dict[str, object]:
    return options.csv.shaping()


def _forced(dialect: Dialect) -> Reader:
    return Reader(
        name=f"{dialect.name}-csv",
        description=dialect.description,
        sniff=lambda path, head: False,
        open=lambda paths, options: open_source(paths, options, dialect),
        shaping=_shaping,
    )


register(
    Reader(
        name="csv",
        description="flow CSV, dialect detected from the header",
        sniff=sniff,
        open=open_source,
        shaping=_shaping,
    )
)
for _dialect in dialects.DIALECTS:
    register(_forced(_dialect))
