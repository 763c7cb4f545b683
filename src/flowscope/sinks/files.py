"""File destinations: Parquet (raw values), CSV and JSON Lines (addresses and times as text), gzip optional.

A file is all or nothing: it is written under a hidden temp name and published by one rename
when the sink closes; ``abort`` (a failed or interrupted run) deletes it, so no half-written file
ever carries the final name. An empty result is still a valid file: Parquet with the schema,
CSV with its header line. A file holds one catalogue table (flows, or packets for ``--records packets``):
rows of other tables (e.g. sFlow interface counters) are counted and reported, not written.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from flowscope.display import textual
from flowscope.errors import FlowscopeError
from flowscope.lake.layout import publish, staging_path
from flowscope.pipeline import Checkpoint, table_of
from flowscope.schema import FLOWS, table_schema
from flowscope.sinks.registry import Destination, DestinationContext, register

if TYPE_CHECKING:  # imported for a Parquet file: ``query`` to the terminal or CSV never writes one (15-20 ms)
    import pyarrow.parquet as pq

FILE_FORMATS = ("parquet", "csv", "jsonl")
STDOUT = "-"
"""The path that names standard output (``-o -``, ``--to stdout:jsonl``)."""
_ALIASES = {"parquet": "parquet", "pq": "parquet", "csv": "csv", "jsonl": "jsonl", "json": "jsonl", "ndjson": "jsonl"}


def format_from_path(path: Path) -> str | None:
    """The file format its name says (``x.csv.gz`` is CSV), or None."""
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    return _ALIASES.get(suffixes[-1].lstrip(".")) if suffixes else None


def check_output_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a file to create: its directory must exist and it must not be a directory itself.

    The directory is not created: a typo in it (``-o /dta/day.parquet``) would put the file where nobody looks,
    so it is an error, raised before any work starts (the command line checks ``-o`` as it parses it, and
    ``open_destinations`` every ``--to`` before opening any). ``-`` (standard output) always passes.
    """
    path = Path(path)
    if str(path) == STDOUT:
        return path
    if path.is_dir():
        raise FlowscopeError(f"{path} is a directory; name an output file")
    directory = path.parent
    if directory.exists() and not directory.is_dir():  # "directory flows.csv is not a directory" said it twice
        raise FlowscopeError(f"{directory} is a file, not a directory: {path} cannot be written")
    if not directory.is_dir():
        raise FlowscopeError(f"directory {directory} does not exist")
    return path


def not_written(path: str | os.PathLike[str]) -> str:
    """What an interrupted run leaves of an output file: nothing."""
    return f"{path} not written (a file is written only whole)"


def write_jsonl(table: pa.Table, stream: IO[bytes]) -> None:
    """JSON Lines (one object per row, keys in column order), built column-wise: each column's values as JSON
    text, then one element-wise join per row. Text is written as UTF-8, ``"``, ``\\`` and control characters
    escaped; non-finite floats are null. Timestamps, addresses and MACs are made text by the caller
    (``display.textual``). Measured on 300 k flows (32 columns), 2-core machine under load: 2.9 s, against
    11.8 s for ``json.dumps`` per row."""
    if not table.num_rows:
        return
    parts: list[pa.ChunkedArray | str] = []
    literal = "{"
    for index, name in enumerate(table.column_names):
        literal += ("," if index else "") + json.dumps(name) + ":"
        values, quoted = _json_values(table.column(index))
        if quoted:  # no nulls: the quotes go into the text around the values
            parts += [literal + '"', values]
            literal = '"'
        else:
            parts += [literal, values]
            literal = ""
    parts.append(literal + "}\n")
    lines = pc.binary_join_element_wise(*parts, "")
    for chunk in lines.chunks if isinstance(lines, pa.ChunkedArray) else [lines]:
        offsets = np.frombuffer(chunk.buffers()[1], np.int32, len(chunk) + 1, chunk.offset * 4)
        stream.write(memoryview(chunk.buffers()[2])[offsets[0] : offsets[-1]])


_CONTROL = [chr(code) for code in range(0x20)]


def _json_values(column: pa.ChunkedArray) -> tuple[pa.ChunkedArray, bool]:
    """Each value's JSON text (``null`` for nulls), and whether it still needs its quotes (text without nulls:
    the caller puts them into the text around it, one pass fewer)."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.cast(kind.value_type), kind.value_type
    if pa.types.is_boolean(kind):
        return pc.fill_null(pc.if_else(column, "true", "false"), "null"), False
    if pa.types.is_integer(kind):
        return pc.fill_null(column.cast(pa.string()), "null"), False
    if pa.types.is_floating(kind):
        finite = pc.if_else(pc.is_finite(column), column.cast(pa.string()), pa.scalar(None, pa.string()))
        return pc.fill_null(finite, "null"), False
    text = column.cast(pa.string())
    if pc.any(pc.match_substring_regex(text, '["\\\\\\x00-\\x1f]')).as_py():  # rare: escape
        text = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
        for char in _CONTROL:
            text = pc.replace_substring(text, char, f"\\u{ord(char):04x}")
    if not text.null_count:
        return text, True
    return pc.fill_null(pc.binary_join_element_wise('"', text, '"', ""), "null"), False


class FileSink:
    """Writes all batches to one file, published atomically when closed (a crash leaves no partial file); a
    device or named pipe is written as the batches come."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        file_format: str | None = None,
        *,
        schema: pa.Schema | None = None,
        table: str = FLOWS,
    ) -> None:
        """``table``: the catalogue table the file holds (its schema unless ``schema``, a query result's, is given)."""
        self.path = Path(path)
        self.name = str(self.path)
        found = file_format or format_from_path(self.path)
        if found is None:
            raise FlowscopeError(f"{path}: cannot tell the output format from the extension (.parquet, .csv, .jsonl)")
        if found not in FILE_FORMATS:
            raise FlowscopeError(f"unknown output format {found!r} (use {', '.join(FILE_FORMATS)})")
        self.format = found
        self.table = table
        self.schema = schema or table_schema(table)
        self.compressed = self.path.suffix.lower() == ".gz"
        if self.compressed and self.format == "parquet":
            raise FlowscopeError(f"{path}: Parquet compresses itself; name the file .parquet")
        check_output_file(self.path)
        self.on_stdout = str(path) == STDOUT
        if self.on_stdout:  # written as the batches come, like a pipe; the shell opened it
            self.name, self._tmp = "standard output", self.path
            self._raw: IO[bytes] = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
        else:
            self._tmp = staging_path(self.path)
            try:
                self._raw = open(self._tmp, "wb")  # noqa: SIM115 (closed in close/abort)
            except OSError as exc:
                raise FlowscopeError(f"cannot write {path}: {exc.strerror or exc}") from exc
        self._stream: IO[bytes] = (
            cast(IO[bytes], gzip.GzipFile(fileobj=self._raw, mode="wb", mtime=0)) if self.compressed else self._raw
        )
        self._writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
        self._csv_schema: pa.Schema | None = None
        self.rows_written = 0
        self.not_written: dict[str, int] = {}

    def write(self, batch: pa.Table) -> None:
        table = table_of(batch)
        if table != self.table:
            self.not_written[table] = self.not_written.get(table, 0) + batch.num_rows
            return
        if self.format == "parquet":
            if self._writer is None:
                import pyarrow.parquet as pq

                # Snappy, no dictionary pages: the fastest to write, as the lake's fresh files (``lake compact``
                # rewrites those with zstd) and the default of DuckDB, Spark and pyarrow. Writing the 2.58 M rows
                # of the issue-17 ``read --reduce pairs`` took 0.69 s against zstd's 0.92 s (the main thread's
                # largest step; best of 3, in process) for files 44 % larger (114 against 79 MiB); dictionary
                # pages made either 0.2-0.4 s slower.
                self._writer = pq.ParquetWriter(self._stream, batch.schema, compression="snappy", use_dictionary=False)
            self._writer.write_table(batch.cast(self._writer.schema))
        else:
            batch = textual(batch)
            if self.format == "csv":
                if self._writer is None:
                    self._writer = pacsv.CSVWriter(self._stream, batch.schema)
                    self._csv_schema = batch.schema  # pyarrow's CSVWriter does not expose its schema
                self._writer.write_table(batch.cast(self._csv_schema))
            else:
                write_jsonl(batch, self._stream)
        self.rows_written += batch.num_rows

    def flush(self, checkpoint: Checkpoint | None = None) -> None:
        """Nothing to do before close: a file is published whole or not at all."""

    def close(self) -> None:
        if self._raw.closed:
            return
        if self._writer is None and self.format != "jsonl":
            self.write(self.schema.empty_table())  # a valid empty file: Parquet schema, CSV header
        if self._writer is not None:
            self._writer.close()
        if self._stream is not self._raw:
            self._stream.close()
        self._raw.close()
        publish(self._tmp, self.path)

    def abort(self) -> None:
        if not self._raw.closed:
            writer, self._writer = self._writer, None
            if writer is not None:
                with contextlib.suppress(Exception):  # its footer goes into the file being deleted anyway
                    writer.close()
            with contextlib.suppress(OSError):  # a pipe whose reader left (| head), a full disk: nothing to keep
                self._raw.close()
        if self._tmp != self.path:
            self._tmp.unlink(missing_ok=True)

    def kept(self) -> list[str]:
        """After an abort: a file, nothing (it is written whole or not at all); standard output has what it got."""
        return [] if self.on_stdout else [not_written(self.path)]

    def notes(self) -> list[str]:
        return [
            f"{rows:,} {table} rows not written: {self.path} holds {self.table} only "
            "(send them to the lake with --to lake)"
            for table, rows in self.not_written.items()
        ]


def file_path(url: str) -> Path:
    """The file a ``file://PATH``, ``file:PATH`` or plain path destination names."""
    return Path(url.removeprefix("file://").removeprefix("file:"))


def _stdout(url: str, context: DestinationContext) -> FileSink:
    """``-`` (CSV) or ``stdout[:FORMAT]`` (csv, jsonl, parquet): the rows on standard output, for a pipe."""
    named = url.partition(":")[2] if url.startswith("stdout") else ""
    found = _ALIASES.get(named or "csv")
    if found is None:
        raise FlowscopeError(
            f"unknown output format {named!r} for {url} (use stdout:csv, stdout:jsonl or stdout:parquet)"
        )
    return FileSink(STDOUT, found, schema=context.schema, table=context.table)


register(
    Destination(
        "file",
        "a file path ending .parquet, .csv, .csv.gz, .jsonl or .jsonl.gz",
        lambda url: "://" not in url.removeprefix("file://") and format_from_path(file_path(url)) is not None,
        lambda url, context: FileSink(file_path(url), schema=context.schema, table=context.table),
        check=lambda url: check_output_file(file_path(url)).resolve(),
    )
)
register(
    Destination(
        "stdout",
        "- or stdout: CSV on standard output (stdout:jsonl, stdout:parquet for the others)",
        lambda url: url == STDOUT or url == "stdout" or url.startswith("stdout:"),
        _stdout,
    )
)
