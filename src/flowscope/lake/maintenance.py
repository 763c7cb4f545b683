"""Keeping a lake healthy: compacting small files and dropping partitions past retention.

Compaction rewrites a partition's small files into one file, publishes it, then
removes the originals while holding the lake's exclusive lock, so a flowscope query
(which holds the shared lock) sees either the old files or the new one, never both.
Only one compaction runs per lake at a time (``.compact.lock``).
"""

from __future__ import annotations

import fcntl
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from flowscope.errors import FlowscopeError
from flowscope.lake.layout import Lake, fsync_dir, publish
from flowscope.lake.writer import COMPACT, write_parquet

SMALL_FILE_BYTES = 64 << 20

Reduction = Callable[[pa.Table], pa.Table]


@dataclass
class CompactionResult:
    partitions: int = 0
    files_before: int = 0
    files_after: int = 0
    rows: int = 0
    merged: list[Path] = field(default_factory=list)


@contextmanager
def _only_compactor(lake: Lake) -> Iterator[None]:
    lake.root.mkdir(parents=True, exist_ok=True)
    with open(lake.root / ".compact.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise FlowscopeError(f"another compaction is running on {lake.root}") from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_files(files: list[Path]) -> pa.Table:
    tables = [pq.read_table(path) for path in files]
    return pa.concat_tables(tables, promote_options="permissive")


def compact_partition(
    lake: Lake, partition: Path, *, small_file_bytes: int = SMALL_FILE_BYTES, reduce: Reduction | None = None
) -> tuple[int, int]:
    """Merge the partition's small files (all files when ``reduce`` is given) into one; returns (rows, files merged)."""
    files = sorted(partition.glob("*.parquet"))
    if reduce is None:
        # The run of files from the first small one to the last (large ones in between included): the merged file
        # takes one place in name order, which is the order records were written.
        small = [i for i, f in enumerate(files) if f.stat().st_size < small_file_bytes]
        files = files[small[0] : small[-1] + 1] if small else []
        if len(files) < 2:
            return 0, 0
    elif not files:
        return 0, 0
    table = _read_files(files)
    if reduce is not None:
        table = reduce(table)
    name = f"{_write_order_stem(files[-1])}-compacted-{uuid.uuid4().hex[:12]}"
    final = partition / f"{name}.parquet"
    tmp = partition / f".{name}.parquet.tmp"
    write_parquet(table, tmp, COMPACT)
    with lake.swapping():
        publish(tmp, final)
        for path in files:
            if path != final:
                path.unlink()
        fsync_dir(partition)
    return table.num_rows, len(files)


def _write_order_stem(newest: Path) -> str:
    """The name a merged file starts with: its newest input's, so by name (the lake's write order, which record
    order follows on equal start times) it sorts after what it merged and before every file written later."""
    stem = newest.stem
    if stem.startswith("part-compacted-"):  # earlier versions named merged files after the compaction time
        return "part-" + stem.removeprefix("part-compacted-").split("-")[0]
    return stem.split("-compacted-")[0]


def compact(
    lake: Lake,
    table: str = "flows",
    *,
    small_file_bytes: int = SMALL_FILE_BYTES,
    reduce: Reduction | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CompactionResult:
    """Compact every partition of ``table``; ``reduce`` (e.g. a keyed reduction) is applied to merged rows."""
    result = CompactionResult()
    with _only_compactor(lake):
        partitions = lake.partitions(table)
        for index, partition in enumerate(partitions, 1):
            before = len(list(partition.glob("*.parquet")))
            rows, merged = compact_partition(lake, partition, small_file_bytes=small_file_bytes, reduce=reduce)
            after = len(list(partition.glob("*.parquet")))
            result.files_before += before
            result.files_after += after
            if merged:
                result.partitions += 1
                result.rows += rows
                result.merged.append(partition)
            if progress is not None:
                progress(index, len(partitions))
    return result


def drop_before(lake: Lake, cutoff: date, tables: list[str] | None = None) -> list[Path]:
    """Remove whole day partitions older than ``cutoff`` (retention); returns what was removed."""
    removed = []
    with lake.swapping():
        for table in tables or lake.tables():
            for day in sorted(lake.table_dir(table).glob("date=*")):
                try:
                    day_date = date.fromisoformat(day.name.removeprefix("date="))
                except ValueError:
                    continue
                if day_date < cutoff:
                    shutil.rmtree(day)
                    removed.append(day)
    return removed
