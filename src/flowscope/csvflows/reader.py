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

import re
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from flowscope.csvflows import dialects
from flowscope.csvflows.convert import column_types, convert
from flowscope.csvflows.dialects import Dialect
from flowscope.csvflows.header import normalised_names, split_header
from flowscope.errors import FlowscopeError
from flowscope.readers.lines import LineFlowSource, LineInput, is_utf8, line_chunks, without_lines_not_utf8
from flowscope.readers.options import ReadOptions
from flowscope.readers.registry import Reader, register

_COMMENT_LINES = re.compile(rb"(?m)^#[^\n]*\n?")
PARSE_BLOCKS = 4
"""Blocks per chunk: pyarrow parses the blocks of one chunk on its threads, so a chunk is not parsed on one
core (one block per chunk was). Joining the blocks' arrays for conversion costs less than 1 % of the parse;
4 blocks also peaked lower than 1 (1 M ft-profiler records: 364 vs 387 MiB, CPU 1.50 vs 1.62 s, load 3.6-3.8)."""
MIN_BLOCK_BYTES = 1 << 20
"""Smaller chunks (a live input's) are parsed as one block: a block must hold whole lines."""


class CsvFlowSource(LineFlowSource):
    """All inputs as one stream of flow batches; per-row problems counted in ``skips``."""

    forced_dialect: Dialect | None

    def batches(self, raw: LineInput) -> Iterator[pa.Table]:
        return _InputReader(self, raw).batches()


class _InputReader:
    """Reads one input: header, dialect, then chunk after chunk."""

    def __init__(self, source: CsvFlowSource, raw: LineInput) -> None:
        self.source = source
        self.raw = raw
        self.rows_seen = 0
        self.in_summary = False

    def batches(self) -> Iterator[pa.Table]:
        options = self.source.options
        chunks = line_chunks(
            self.raw, commit_rows=options.commit_rows, commit_seconds=options.commit_seconds, header=True
        )
        header = next(chunks, None)
        if header is None:
            return
        names = normalised_names(split_header(header))
        dialect = self.source.forced_dialect or dialects.find(names)
        if dialect is None:
            shown = ", ".join(split_header(header)[:6])
            if "\x00" in shown or "\ufffd" in shown:  # binary (a capture as --format csv): no bytes to the terminal
                raise FlowscopeError(f"{self.raw.name}: not a flow CSV: its first line is binary data, not a header")
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

        def parse(numbers: bool, blocks: int) -> pa.Table:
            """``blocks`` 0: one block on this thread, the only way pyarrow numbers the rows it skips."""
            ragged.clear()
            ragged_lines.clear()
            types = column_types(dialect, mapping, names, numbers=numbers)
            return pacsv.read_csv(
                pa.BufferReader(chunk),
                read_options=pacsv.ReadOptions(
                    column_names=names, block_size=len(chunk) // max(blocks, 1) + 1, use_threads=blocks > 0
                ),
                parse_options=pacsv.ParseOptions(invalid_row_handler=on_ragged),
                convert_options=pacsv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True),
            )

        def parsed(blocks: int) -> pa.Table:
            try:
                # Fast path: numeric columns parsed as numbers of their type; any unreadable value fails the
                # whole chunk, which is then parsed as text and converted row-tolerantly.
                return parse(numbers=True, blocks=blocks)
            except pa.ArrowInvalid:
                return parse(numbers=False, blocks=blocks)

        if not is_utf8(chunk):  # before pyarrow: it cannot even show us a ragged row that is not UTF-8
            chunk, bad_lines, example = without_lines_not_utf8(chunk)
            for line in bad_lines:
                self._problem("row is not UTF-8 text", 1, example, self.rows_seen + line)
        blocks = PARSE_BLOCKS if len(chunk) >= PARSE_BLOCKS * MIN_BLOCK_BYTES else 1
        try:
            try:
                raw = parsed(blocks)
            except pa.ArrowInvalid:
                if blocks == 1:
                    raise
                raw = parsed(1)  # e.g. a line longer than a block ("straddles two block boundaries")
            if ragged and self.source.options.strict:
                raw = parsed(0)  # again, to learn which row --strict stops at
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
    return CsvFlowSource(paths, options.text, dialect=dialect)


def _shaping(options: ReadOptions) -> dict[str, object]:
    return options.text.shaping()


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
