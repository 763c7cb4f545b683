"""What the lake holds, per table: partitions, files, rows, bytes, first and last day (from file metadata only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from flowscope.lake.layout import Lake


@dataclass(frozen=True)
class TableSummary:
    table: str
    partitions: int
    files: int
    rows: int
    bytes: int
    first_day: str
    last_day: str
    damaged: tuple[str, ...] = ()
    """Files whose Parquet footer cannot be read ("PATH: reason"): counted here, not an ``ArrowInvalid`` that
    hid the whole summary exactly when one wants to see the lake."""


def table_summaries(lake: Lake) -> list[TableSummary]:
    """One summary per table that has files; rows come from Parquet footers, so no data is read. Taken under
    the lake's read lock, so a compaction cannot remove a file between listing and reading its footer."""
    with lake.reading():
        return [_summary(table, lake.files(table)) for table in lake.tables()]


def _summary(table: str, files: list[Path]) -> TableSummary:
    days = sorted({f.parent.parent.name.removeprefix("date=") for f in files})
    rows = 0
    damaged = []
    for f in files:
        try:
            rows += pq.ParquetFile(f).metadata.num_rows
        except (pa.ArrowInvalid, OSError) as exc:
            damaged.append(f"{f}: {exc}")
    return TableSummary(
        table=table,
        partitions=len({f.parent for f in files}),
        files=len(files),
        rows=rows,
        bytes=sum(f.stat().st_size for f in files),
        first_day=days[0] if days else "",
        last_day=days[-1] if days else "",
        damaged=tuple(damaged),
    )
