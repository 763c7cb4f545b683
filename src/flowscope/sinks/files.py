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
from pathlib import Path
from typing import IO, cast

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from flowscope.display import textual
from flowscope.errors import FlowscopeError
from flowscope.lake.layout import publish
from flowscope.pipeline import Checkpoint, table_of
from flowscope.schema import FLOWS, table_schema
from flowscope.sinks.registry import Destination, register

FILE_FORMATS = ("parquet", "csv", "jsonl")
_ALIASES = {"parquet": "parquet", "pq": "parquet", "csv": "csv", "jsonl": "jsonl", "json": "jsonl", "ndjson": "jsonl"}


def format_from_path(path: Path) -> str | None:
    """The file format its name says (``x.csv.gz`` is CSV), or None."""
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    return _ALIASES.get(suffixes[-1].lstrip(".")) if suffixes else None


def write_jsonl(table: pa.Table, stream: IO[bytes]) -> None:
    """JSON Lines with ISO timestamps; textual conversion is the caller's."""
    for row in table.to_pylist():
        stream.write(json.dumps(row, default=str, separators=(",", ":")).encode() + b"\n")


class FileSink:
    """Writes all batches to one file, published atomically when closed (a crash leaves no partial file)."""

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
        if self.path.is_dir():
            raise FlowscopeError(f"{path} is a directory; name an output file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = self.path.with_name(f".{self.path.name}.tmp")
            self._raw: IO[bytes] = open(self._tmp, "wb")  # noqa: SIM115 (closed in close/abort)
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
                # No dictionary pages: with zstd over them, flow batches come out as small and write ~40 % faster.
                self._writer = pq.ParquetWriter(self._stream, batch.schema, compression="zstd", use_dictionary=False)
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
            self._raw.close()
        self._tmp.unlink(missing_ok=True)

    def notes(self) -> list[str]:
        return [
            f"{rows:,} {table} rows not written: {self.path} holds {self.table} only "
            "(send them to the lake with --to lake)"
            for table, rows in self.not_written.items()
        ]


def _path(url: str) -> Path:
    return Path(url.removeprefix("file://").removeprefix("file:"))


register(
    Destination(
        "file",
        "a file path ending .parquet, .csv, .csv.gz, .jsonl or .jsonl.gz",
        lambda url: "://" not in url.removeprefix("file://") and format_from_path(_path(url)) is not None,
        lambda url, context: FileSink(_path(url), schema=context.schema, table=context.table),
    )
)
