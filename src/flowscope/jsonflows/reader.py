"""``flowscope read`` for JSON lines of flows: files, ``.gz`` files and standard input, streamed in chunks.

Each chunk of whole lines (``readers.lines``, shared with the CSV reader, so a live feed is committed every
``--commit-rows``/``--commit-seconds`` the same way) is parsed by pyarrow's JSON reader into one column per
key the family knows, typed as the family writes them; other keys (GoFlow2's BGP, MPLS and layer arrays)
are never built. A chunk whose values have other types (GoFlow2 with its renderers switched off writes
``"proto":6``) is parsed again with inferred types, which the converters take as well. A chunk holding
lines that are not JSON objects is split in halves until each bad line stands alone: it is counted and
skipped (``--strict``: one error), and the good lines around it are kept; a clean chunk is parsed once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from flowscope.errors import FlowscopeError
from flowscope.jsonflows import dialects
from flowscope.jsonflows.convert import convert, parse_schema
from flowscope.jsonflows.dialects import JsonDialect, line_keys
from flowscope.readers.lines import LineFlowSource, LineInput, Lines, is_utf8, line_chunks, without_lines_not_utf8
from flowscope.readers.options import ReadOptions
from flowscope.readers.registry import Reader, register

NOT_JSON = "line is not a JSON object"


class JsonFlowSource(LineFlowSource):
    """All inputs as one stream of flow batches; unreadable lines and values counted in ``skips``."""

    forced_dialect: JsonDialect | None

    def batches(self, raw: LineInput) -> Iterator[pa.Table]:
        return _InputReader(self, raw).batches()


class _InputReader:
    """Reads one input: the family from its first line, then chunk after chunk."""

    def __init__(self, source: JsonFlowSource, raw: LineInput) -> None:
        self.source = source
        self.raw = raw
        self.lines_seen = 0
        self.dialect: JsonDialect | None = source.forced_dialect
        self.schema: pa.Schema | None = None

    def batches(self) -> Iterator[pa.Table]:
        options = self.source.options
        chunks = line_chunks(
            self.raw, commit_rows=options.commit_rows, commit_seconds=options.commit_seconds, header=False
        )
        for chunk in chunks:
            if self.schema is None and not self._recognise(chunk):
                continue
            tables = [table for table in self._convert_pieces(chunk) if table.num_rows]
            if tables:
                yield tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")

    def _recognise(self, chunk: bytes | bytearray) -> bool:
        """The family and parse types from the first non-blank line; False while there is none."""
        stripped = bytes(chunk).lstrip()
        if not stripped:
            return False
        first = stripped.split(b"\n", 1)[0]
        dialect = self.dialect or dialects.find(line_keys(first))
        if dialect is None or not first.startswith(b"{"):
            raise FlowscopeError(
                f"{self.raw.name}: not JSON lines of flows: its first line ({first[:60].decode(errors='replace')}"
                f"...) has the keys of none of {', '.join(d.name for d in dialects.DIALECTS)} (see docs/CSV.md)"
            )
        self.dialect = dialect
        self.source.dialects_seen[self.raw.name] = dialect.name
        self.schema = parse_schema(dialect, flowscope_numbers=dialect is dialects.FLOWSCOPE)
        return True

    def _convert_pieces(self, chunk: bytes | bytearray) -> Iterator[pa.Table]:
        assert self.dialect is not None
        lines = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
        if not is_utf8(chunk):  # pyarrow's JSON parser does not check: such text would fail far later
            chunk, bad_lines, example = without_lines_not_utf8(chunk)
            for line in bad_lines:
                self._problem("line is not UTF-8 text", 1, example, self.lines_seen + line)
        chunk, bad_lines, example = _objects_only(bytes(chunk))
        for line in bad_lines:
            self._problem(NOT_JSON, 1, example, self.lines_seen + line)
        for first_line, raw in self._parsed(bytes(chunk), self.lines_seen):
            result = convert(raw, self.dialect)
            table = result.table
            if result.problems:
                keep = np.ones(raw.num_rows, dtype=bool)
                for problem in result.problems:
                    self._problem(problem.reason, len(problem.rows), problem.example, first_line + int(problem.rows[0]))
                    keep[problem.rows] = False
                table = table.filter(pa.array(keep))
            yield table
        self.lines_seen += lines

    def _parsed(self, piece: bytes, first_line: int) -> Iterator[tuple[int, pa.Table]]:
        """(1-based number of the piece's first line, its parsed table) for the readable parts of ``piece``."""
        table = self._read(piece)
        if table is not None:
            yield first_line + 1, table
            return
        lines = piece.count(b"\n", 0, len(piece) - 1) + 1
        if lines == 1:
            if piece.strip():
                self._problem(NOT_JSON, 1, piece[:80].decode(errors="backslashreplace"), first_line + 1)
            return
        middle = piece.find(b"\n", len(piece) // 2)
        if middle < 0 or middle == len(piece) - 1:
            middle = piece.rfind(b"\n", 0, len(piece) - 1)
        yield from self._parsed(piece[: middle + 1], first_line)
        yield from self._parsed(piece[middle + 1 :], first_line + piece.count(b"\n", 0, middle + 1))

    def _read(self, piece: bytes) -> pa.Table | None:
        """The piece with the family's types, else with inferred ones; None when it holds a bad line."""
        block = pajson.ReadOptions(block_size=len(piece) + 1)
        for parse in (
            pajson.ParseOptions(explicit_schema=self.schema, unexpected_field_behavior="ignore"),
            pajson.ParseOptions(),
        ):
            try:
                return pajson.read_json(pa.BufferReader(piece), read_options=block, parse_options=parse)
            except pa.ArrowInvalid:
                continue
        return None

    def _problem(self, reason: str, count: int, example: str, line: int) -> None:
        if self.source.options.strict:
            raise FlowscopeError(f"{self.raw.name}: line {line}: {reason}: {example!r} (--strict)")
        self.source.skips.add(reason, count, example)


_BLANK = np.zeros(256, bool)
_BLANK[[0x20, 0x09, 0x0D, 0x0A]] = True
"""What may stand before a line's ``{``."""


def _objects_only(chunk: bytes) -> tuple[bytes, list[int], str]:
    """The chunk without its lines whose first character is not ``{``, their numbers and one shown.

    pyarrow 26's JSON reader dies with SIGSEGV on a line holding a bare ``null`` (found by
    fuzz/targets/jsonl.py), so such lines never reach it. Each line's first byte decides (a 16 MiB chunk in
    0.02 s); only lines that start with a blank are searched further (finding the first non-blank byte of
    every line took 0.27 s per 16 MiB chunk)."""
    found = Lines(chunk)
    if not len(chunk):
        return chunk, [], ""
    heads = found.array[np.minimum(found.starts, len(chunk) - 1)]
    filled = found.starts < found.ends
    bad = filled & (heads != ord("{"))
    padded = np.flatnonzero(bad & _BLANK[heads])
    if padded.size:
        bad[padded] = _start_badly(found, padded)
    bad_lines = np.flatnonzero(bad)
    return found.without(bad_lines.tolist()) if bad_lines.size else (chunk, [], "")


def _start_badly(found: Lines, lines: np.ndarray) -> np.ndarray:
    """Whether each of ``lines`` (which start with a blank) has something other than ``{`` after its blanks.

    Steps over the blanks of all of them at once; the few lines indented deeper than ``_INDENT_STEPS`` are
    looked at one by one."""
    at, ends = found.starts[lines], found.ends[lines]
    moving = np.arange(len(lines))
    for _ in range(_INDENT_STEPS):
        inside = at[moving] < ends[moving]
        moving = moving[inside]
        moving = moving[_BLANK[found.array[at[moving]]]]
        if not moving.size:
            break
        at[moving] += 1
    for line in moving.tolist():
        rest = found.data[at[line] : ends[line]].lstrip(b" \t\r\n")
        at[line] = ends[line] - len(rest)
    filled = at < ends
    return filled & (found.array[np.minimum(at, len(found.array) - 1)] != ord("{"))


_INDENT_STEPS = 64


def sniff(path: Path, head: bytes) -> bool:
    """A first line that is a JSON object with the keys of one of the families (``head`` is decompressed)."""
    first = head.lstrip().split(b"\n", 1)[0]
    return first.startswith(b"{") and dialects.find(line_keys(first)) is not None


def open_source(paths: Sequence[Path], options: ReadOptions, dialect: JsonDialect | None = None) -> JsonFlowSource:
    return JsonFlowSource(paths, options.text, dialect=dialect)


def _no_shaping(options: ReadOptions) -> dict[str, object]:
    """Nothing in the options changes the flows read from JSON lines (times carry their zone)."""
    return {}


register(
    Reader(
        name="jsonl",
        description="JSON lines of flows (flowscope's -o x.jsonl, GoFlow2 -format=json), family from the keys",
        sniff=sniff,
        open=open_source,
        shaping=_no_shaping,
    )
)


def _forced(dialect: JsonDialect) -> Reader:
    return Reader(
        name=f"{dialect.name}-json",
        description=dialect.description,
        sniff=lambda path, head: False,
        open=lambda paths, options: open_source(paths, options, dialect),
        shaping=_no_shaping,
    )


for _dialect in dialects.DIALECTS:
    register(_forced(_dialect))
