"""``flowscope read`` for Parquet files of flows: flowscope's own ``-o flows.parquet``, lake files, and tables
other tools wrote with the catalogue's column names (Spark or DuckDB exports), so a Parquet export can go to
any destination (``read flows.parquet --to clickhouse://...``) or through the reductions.

Columns are matched by name (``docs/SCHEMA.md``); only those are read (Parquet's projection). A column of
another type is cast to the catalogue's type: other integer widths, other timestamp units (a naive timestamp
is UTC), and addresses as text (``"192.0.2.1"``, parsed without a Python object per value) as well as the
catalogue's 16 bytes. A value that fits no such cast is one clear error naming the file and the column;
columns outside the catalogue are left out (a note after the read names them). The file is read one row group at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flowscope import addresses
from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError
from flowscope.readers.options import ReadOptions
from flowscope.readers.registry import Reader, register
from flowscope.schema import ADDRESS, FLOW_COLUMNS, FLOW_SCHEMA, conform

MAGIC = b"PAR1"


class ParquetFlowSource:
    """The files' rows as flow batches, file after file, row group after row group."""

    def __init__(self, paths: Sequence[Path], columns: tuple[str, ...] | None = None) -> None:
        self.paths = list(paths)
        self.wanted = FLOW_COLUMNS if columns is None else FLOW_COLUMNS & set(columns)
        self.skips = Skips(unit="rows")
        self.sizes = [path.stat().st_size for path in self.paths]
        self.consumed = 0
        self.notes: list[str] = []
        """Shown after the read: the columns each file had outside the flow schema."""

    def progress(self) -> tuple[int, int | None]:
        return self.consumed, sum(self.sizes)

    def __iter__(self) -> Iterator[pa.Table]:
        for path, size in zip(self.paths, self.sizes, strict=True):
            yield from self._file(path, size)

    def _file(self, path: Path, size: int) -> Iterator[pa.Table]:
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError, ValueError) as exc:  # a corrupt footer can hold names that are no UTF-8
            raise FlowscopeError(f"{path}: not a readable Parquet file ({exc})") from exc
        names = parquet.schema_arrow.names
        known = [name for name in names if name in FLOW_COLUMNS]
        if not known:
            raise FlowscopeError(
                f"{path}: no flow columns (it has {', '.join(names[:6]) or 'none'}; a flows file has e.g. src_addr, "
                "dst_addr, bytes, packets: see docs/SCHEMA.md)"
            )
        others = [name for name in names if name not in FLOW_COLUMNS]
        if others:
            self.notes.append(f"{path}: columns outside the flow schema left out: {', '.join(others)}")
        read = [name for name in known if name in self.wanted]
        groups, start = parquet.metadata.num_row_groups, self.consumed
        for group in range(groups):
            try:
                table = parquet.read_row_group(group, columns=read)
            except (pa.ArrowException, OSError, ValueError) as exc:
                raise FlowscopeError(f"{path}: row group {group} cannot be read ({exc})") from exc
            yield _flows(table, path)
            self.consumed = start + size * (group + 1) // groups  # the file's share read so far
        self.consumed = start + size  # whole, also for a file without row groups


def _flows(table: pa.Table, path: Path) -> pa.Table:
    """The row group in the flow schema, each column cast to its catalogue type (addresses parsed from text)."""
    for index, name in enumerate(table.column_names):
        column, wanted = table.column(index), FLOW_SCHEMA.field(name).type
        if column.type == wanted:
            continue
        try:
            if wanted == ADDRESS and (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
                converted = addresses.parse_text(column)
            else:
                converted = pc.cast(column, wanted)
        except (FlowscopeError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise FlowscopeError(
                f"{path}: column {name} ({column.type}) does not fit the flow schema's {wanted}: {exc}"
            ) from exc
        table = table.set_column(index, name, converted)
    return conform(table, keep_extra=False)


def sniff(path: Path, head: bytes) -> bool:
    return head[:4] == MAGIC


def open_source(paths: Sequence[Path], options: ReadOptions) -> ParquetFlowSource:
    return ParquetFlowSource(paths, options.columns)


def _no_shaping(options: ReadOptions) -> dict[str, object]:
    """The file's values are the flows: no option changes them."""
    return {}


register(
    Reader(
        name="parquet",
        description="Parquet files of flows (flowscope's -o x.parquet, lake files, exports with the catalogue's names)",
        sniff=sniff,
        open=open_source,
        shaping=_no_shaping,
    )
)
