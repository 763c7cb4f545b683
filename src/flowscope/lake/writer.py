"""Writing flow batches into the lake.

Rows are buffered per (date, hour) partition of their start time. When the buffer holds
``max_rows`` rows or ``max_bytes`` bytes of Arrow data it is *spilled*: one Parquet file per
partition, written under a hidden temp name and fsynced (``staged``). Staged files become
visible by one rename each (``publish``). A streaming writer (``autopublish``, the default)
publishes at every spill, when its oldest row has waited ``max_age`` seconds (checked on every
``write`` and by ``flush_if_due``) and on ``close``: a crash loses at most the unflushed buffer.
A transactional writer (``autopublish=False``, used for inputs the ingest ledger records) only
spills on its own and publishes when told, after the ledger has recorded the commit
(``flowscope.sinks.lake``), so an interrupted read leaves nothing half-published. File names are
unique to this writer, so several processes can write one lake at once.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.lake.layout import STAGED_PREFIX, STAGED_SUFFIX, Lake, fsync_dir
from flowscope.schema import conform

NS_PER_HOUR = 3_600_000_000_000
DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_MAX_BYTES = 512 << 20
DEFAULT_MAX_AGE = 5.0

# Fresh files favour write speed (Snappy); compaction rewrites them smaller (zstd). Both
# dictionary-encode the low-cardinality columns and delta-encode the time columns.
_DICTIONARY_COLUMNS = (
    "type",
    "sampler_address",
    "src_addr",
    "dst_addr",
    "next_hop",
    "proto",
    "etype",
    "dst_port",
    "in_if",
    "out_if",
    "src_as",
    "dst_as",
    "sampling_rate",
    "ip_tos",
    "tcp_flags",
    "icmp_type",
    "vlan_id",
)
_DELTA_COLUMNS = ("time_received", "time_flow_start", "time_flow_end", "time")
FAST = {"compression": "snappy"}
COMPACT = {"compression": "zstd", "compression_level": 3}


@dataclass(frozen=True)
class LakeLimits:
    """How much a writer buffers before writing a file: for streams, the bound on what a crash can lose."""

    max_rows: int = DEFAULT_MAX_ROWS
    max_age: float = DEFAULT_MAX_AGE
    max_bytes: int = DEFAULT_MAX_BYTES
    """Arrow bytes buffered per table: the memory bound of a long-running writer."""


def partition_hours(table: pa.Table, time_column: str) -> np.ndarray:
    """Hours since the epoch of each row's partition time (start time, else time received, else now)."""
    times = table.column(time_column)
    if times.null_count and "time_received" in table.column_names:
        times = pc.coalesce(times, table.column("time_received"))
    if times.null_count:
        times = pc.fill_null(times, pa.scalar(time.time_ns(), times.type))
    nanos = pc.cast(times, pa.int64()).to_numpy()
    return nanos // NS_PER_HOUR


class LakeWriter:
    """Appends flow batches to one lake table; use as a context manager or call ``close``."""

    def __init__(
        self,
        lake: Lake | str | os.PathLike[str],
        table: str = "flows",
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age: float = DEFAULT_MAX_AGE,
        time_column: str = "time_flow_start",
        conform_rows: bool = True,
        autopublish: bool = True,
    ) -> None:
        self.lake = lake if isinstance(lake, Lake) else Lake.at(lake)
        self.table = table
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.time_column = time_column
        self.conform_rows = conform_rows
        self.autopublish = autopublish
        self._buffers: dict[int, list[pa.Table]] = {}
        self._buffered_rows = 0
        self._buffered_bytes = 0
        self._oldest: float | None = None
        self._name_prefix = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._sequence = itertools.count()
        self.rows_written = 0
        self.files_written: list[Path] = []
        self.staged: list[tuple[Path, Path]] = []
        """(temp file, final name) pairs written and fsynced but not yet published."""
        self._staged_rows = 0

    def write(self, batch: pa.Table | pa.RecordBatch) -> None:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if self.conform_rows:
            table = conform(table)
        if table.num_rows == 0:
            return
        hours = partition_hours(table, self.time_column)
        first, last = int(hours.min()), int(hours.max())
        if first == last:
            self._buffers.setdefault(first, []).append(table)
        elif (np.diff(hours) >= 0).all():  # time-ordered input (the usual case): zero-copy slices
            bounds = np.flatnonzero(np.diff(hours)) + 1
            for begin, end in zip(np.r_[0, bounds], np.r_[bounds, len(hours)], strict=True):
                self._buffers.setdefault(int(hours[begin]), []).append(table.slice(begin, end - begin))
        else:
            order = np.argsort(hours, kind="stable")
            sorted_hours = hours[order]
            bounds = np.flatnonzero(np.diff(sorted_hours)) + 1
            for rows in np.split(order, bounds):
                self._buffers.setdefault(int(hours[rows[0]]), []).append(table.take(pa.array(rows)))
        self._buffered_rows += table.num_rows
        self._buffered_bytes += table.nbytes
        if self._oldest is None:
            self._oldest = time.monotonic()
        if self._buffered_rows >= self.max_rows or self._buffered_bytes >= self.max_bytes:
            self.spill()
            if self.autopublish:
                self.publish()
        else:
            self.flush_if_due()

    def flush_if_due(self) -> list[Path]:
        """Flush if the oldest buffered row has waited ``max_age`` seconds; for idle collectors' timers."""
        if self.autopublish and self._oldest is not None and time.monotonic() - self._oldest >= self.max_age:
            return self.flush()
        return []

    def spill(self) -> None:
        """Write every buffered partition to its own staged (complete, fsynced, invisible) file."""
        for hour, tables in sorted(self._buffers.items()):
            self.staged.append(self._write_partition(hour, tables))
        self._staged_rows += self._buffered_rows
        self._buffers.clear()
        self._buffered_rows = 0
        self._buffered_bytes = 0
        self._oldest = None

    def publish(self) -> list[Path]:
        """Make every staged file visible (one rename each, then the directories are fsynced)."""
        published = []
        for tmp, final in self.staged:
            os.rename(tmp, final)
            published.append(final)
        for directory in {final.parent for final in published}:
            fsync_dir(directory)
        self.staged.clear()
        self.rows_written += self._staged_rows
        self._staged_rows = 0
        self.files_written.extend(published)
        return published

    def flush(self) -> list[Path]:
        """Spill and publish everything written so far."""
        self.spill()
        return self.publish()

    def close(self) -> None:
        self.flush()

    def abort(self) -> None:
        """Drop what is buffered and delete what is staged: nothing unpublished survives."""
        self._buffers.clear()
        self._buffered_rows = 0
        self._buffered_bytes = 0
        self._oldest = None
        for tmp, _ in self.staged:
            tmp.unlink(missing_ok=True)
        self.staged.clear()
        self._staged_rows = 0

    def __enter__(self) -> LakeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write_partition(self, hour: int, tables: list[pa.Table]) -> tuple[Path, Path]:
        table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
        stamp = np.datetime64(hour * NS_PER_HOUR, "ns").astype("datetime64[h]").item()
        directory = self.lake.partition_dir(self.table, stamp.strftime("%Y-%m-%d"), stamp.hour)
        directory.mkdir(parents=True, exist_ok=True)
        name = f"part-{utc_stamp()}-{self._name_prefix}-{next(self._sequence):06d}"
        final = directory / f"{name}.parquet"
        tmp = directory / f"{STAGED_PREFIX}{name}.parquet{STAGED_SUFFIX}"
        try:
            write_parquet(table, tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, final


def write_parquet(table: pa.Table, path: Path, codec: Mapping[str, object] = FAST) -> None:
    """Write one lake file: ``FAST`` for fresh data, ``COMPACT`` when compaction rewrites it."""
    import pyarrow.parquet as pq  # here: commands that only query import this module (15-20 ms, pyarrow.fs, ssl)

    names = set(table.column_names)
    pq.write_table(
        table,
        path,
        use_dictionary=[c for c in _DICTIONARY_COLUMNS if c in names],
        column_encoding={c: "DELTA_BINARY_PACKED" for c in _DELTA_COLUMNS if c in names},
        row_group_size=1 << 20,
        **codec,
    )


def utc_stamp() -> str:
    """The current UTC time to the microsecond: names sort in the order files were written (record order
    follows it on equal start times), also across writers that run one after another."""
    now = time.time_ns()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 1_000_000_000)) + f".{now // 1000 % 1_000_000:06d}"
