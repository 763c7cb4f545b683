"""Keeping the roll-up tables equal to a GROUP BY over the raw flows (``flowscope rollup``).

Every raw hour partition of ``flows`` feeds exactly one roll-up partition (the same hour, or its day for
``flows_1h``), and buckets never cross it. A roll-up partition is one file, recomputed by DuckDB from the
raw files of its hour(s) whenever their list (names and sizes) differs from the one it was computed from:
new data, compaction, a late file. So maintenance is incremental (untouched hours are not read again),
exact (a partition is always a whole GROUP BY, never an update of one) and idempotent (a crash between
publishing a file and recording it only recomputes it). The file replaces its predecessor by one rename.

The record of what each partition was computed from, and from which definition, is
``LAKE/_rollups/state.json``. A changed definition (``rollups.toml``) or ``--rebuild`` drops the table and
recomputes it from the raw flows there are. A raw partition that retention has removed leaves its roll-up
partition alone: roll-ups keep their own retention, usually longer than the raw flows'.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from flowscope.lake.layout import Lake, publish
from flowscope.lake.maintenance import drop_before
from flowscope.query.connection import helper_database
from flowscope.schema import FLOWS, TIMESTAMP, Role, clickhouse_type, column, postgres_type
from flowscope.transforms.rollups.spec import COUNTERS, Rollup, load_rollups

STATE = Path("_rollups") / "state.json"
FILE_NAME = "rollup.parquet"
Partition = tuple[str, int]
"""(date as YYYY-MM-DD, hour) of a lake partition."""


@dataclass
class RollupResult:
    name: str
    rebuilt: bool = False
    updated: list[Partition] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    deferred: int = 0
    """Stale partitions left for a later pass because their raw data was still arriving (``settled_at``)."""


def rollup_schema(rollup: Rollup) -> pa.Schema:
    """The Arrow schema of a roll-up table's files."""
    dimensions = [pa.field(name, declared.arrow_type) for name in rollup.dimensions if (declared := column(name))]
    counters = [pa.field(name, pa.uint64()) for name in ("flows", "flows_sampling_unknown", *COUNTERS)]
    return pa.schema([pa.field("time", TIMESTAMP), *dimensions, *counters])


def store_columns(rollup: Rollup) -> list[tuple[str, str, str]]:
    """(name, ClickHouse type, PostgreSQL type) of a roll-up's columns, by the catalogue's rules, for the
    same roll-up in other stores."""
    roles = {name: declared.role for name in rollup.dimensions if (declared := column(name))}
    columns = []
    for declared in rollup_schema(rollup):
        role = Role.TIME if declared.name == "time" else roles.get(declared.name, Role.COUNTER)
        columns.append((declared.name, clickhouse_type(declared.type, role), postgres_type(declared.type, role)))
    return columns


def raw_partitions(lake: Lake) -> dict[Partition, list[Path]]:
    """The raw ``flows`` files by partition."""
    partitions: dict[Partition, list[Path]] = {}
    for path in lake.files(FLOWS):
        day, hour = path.parent.parent.name.removeprefix("date="), int(path.parent.name.removeprefix("hour="))
        partitions.setdefault((day, hour), []).append(path)
    return partitions


SETTLED_NS = 2_000_000_000
"""How old a raw hour directory's modification time must be, when read, to stand for its listing later.

A directory's time changes whenever a file is published into it or removed from it (lake files are never
rewritten in place), so an unchanged time means an unchanged listing, but file systems keep that time to a
clock tick: a change in the same tick as the reading would not show. A time this far in the past when it was
read cannot share its tick with a later change."""


def hour_dirs(lake: Lake, days: Collection[str] | None = None) -> dict[Partition, int]:
    """The raw ``flows`` hour directories (of the days ``days``; None: every day) with their modification times
    in ns: a directory listing per day and a stat per hour, where the files' listing is a stat per file."""
    found: dict[Partition, int] = {}
    try:
        day_entries = list(os.scandir(lake.table_dir(FLOWS)))
    except FileNotFoundError:
        return found
    for day_entry in day_entries:
        day = day_entry.name.removeprefix("date=")
        if not day_entry.name.startswith("date=") or (days is not None and day not in days):
            continue
        try:
            hours = list(os.scandir(day_entry.path))
        except (FileNotFoundError, NotADirectoryError):  # retention removed it meanwhile
            continue
        for entry in hours:
            if entry.name.startswith("hour="):
                try:
                    found[day, int(entry.name.removeprefix("hour="))] = entry.stat().st_mtime_ns
                except (FileNotFoundError, ValueError):
                    continue
    return found


def fingerprints(rollup: Rollup, dirs: dict[Partition, int], read_ns: int | None = None) -> dict[Partition, str]:
    """Per roll-up partition, its raw hour directories with their times (``hour_dirs``): while they are equal,
    so are its files. With ``read_ns`` (when ``dirs`` were read), only partitions whose times were already
    ``SETTLED_NS`` old then, the ones a later look may trust."""
    grouped: dict[Partition, list[tuple[int, int]]] = {}
    for (day, hour), mtime in sorted(dirs.items()):
        grouped.setdefault(target_of(rollup, (day, hour)), []).append((hour, mtime))
    return {
        target: ",".join(f"{hour:02d}:{mtime}" for hour, mtime in hours)
        for target, hours in grouped.items()
        if read_ns is None or all(mtime <= read_ns - SETTLED_NS for _, mtime in hours)
    }


def partition_files(lake: Lake, partitions: Collection[Partition]) -> list[Path]:
    """The raw ``flows`` files of ``partitions``."""
    return [path for p in partitions for path in sorted(lake.partition_dir(FLOWS, *p).glob("*.parquet"))]


def target_of(rollup: Rollup, partition: Partition) -> Partition:
    """The roll-up partition a raw partition feeds."""
    return (partition[0], 0) if rollup.day_files else partition


def targets(rollup: Rollup, raw: dict[Partition, list[Path]]) -> dict[Partition, list[Path]]:
    """Roll-up partition -> the raw files it is computed from."""
    grouped: dict[Partition, list[Path]] = {}
    for partition, files in raw.items():
        grouped.setdefault(target_of(rollup, partition), []).extend(files)
    return grouped


def partition_end(rollup: Rollup, partition: Partition) -> datetime:
    """When the raw data a roll-up partition is computed from ends (its hour, or its day for day files)."""
    start = datetime.fromisoformat(f"{partition[0]}T{partition[1]:02d}:00:00+00:00")
    return start + (timedelta(days=1) if rollup.day_files else timedelta(hours=1))


def settled(rollup: Rollup, partition: Partition, files: list[Path], settled_at: datetime) -> bool:
    """Whether a partition's time is over and none of its raw files changed after ``settled_at``."""
    if partition_end(rollup, partition) > settled_at:
        return False
    newest = max((path.stat().st_mtime for path in files), default=0.0)
    return newest <= settled_at.timestamp()


def source_digest(files: list[Path]) -> str:
    """What a roll-up partition was computed from: the raw files' names and sizes."""
    listing = "".join(f"{path.parent.name}/{path.name}:{path.stat().st_size}\n" for path in sorted(files))
    return hashlib.sha256(listing.encode()).hexdigest()[:24]


def key_text(partition: Partition) -> str:
    return f"{partition[0]}/{partition[1]:02d}"


def load_state(lake: Lake) -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads((lake.root / STATE).read_text())
    except (OSError, ValueError):
        return {}
    return state


def _save_state(lake: Lake, state: dict[str, Any]) -> None:
    path = lake.root / STATE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    publish(tmp, path)


@contextmanager
def _only_one(lake: Lake) -> Iterator[None]:
    """One roll-up maintenance per lake at a time (``LAKE/.rollup.lock``)."""
    lake.root.mkdir(parents=True, exist_ok=True)
    with open(lake.root / ".rollup.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def bucket_sql(time_column: str, seconds: int) -> str:
    """SQL for the start of the ``seconds``-wide bucket (aligned to the epoch, UTC) holding a time."""
    return f"to_timestamp(epoch_us({time_column}::TIMESTAMPTZ) // {seconds * 1_000_000} * {seconds})"


def rollup_sql(rollup: Rollup, files: list[Path], present: set[str]) -> str:
    """The GROUP BY of one roll-up partition over its raw files (a dimension no file has is null)."""
    listed = ", ".join("'" + str(path).replace("'", "''") + "'" for path in files)
    return rollup_select(rollup, f"read_parquet([{listed}], union_by_name = true)", present)


def rollup_select(rollup: Rollup, relation: str, present: set[str]) -> str:
    """The GROUP BY of the flows in ``relation`` (DuckDB) into ``rollup``'s rows; ``present``: the columns
    the relation has (a dimension it lacks is null)."""
    dimensions = [f'"{name}"' if name in present else f'NULL AS "{name}"' for name in rollup.dimensions]
    counters = [f'sum(scaled("{name}", sampling_rate))::UBIGINT AS "{name}"' for name in COUNTERS]
    return (
        f"SELECT {bucket_sql('time_flow_start', rollup.seconds)} AS time, "
        + "".join(f"{d}, " for d in dimensions)
        + "count(*) AS flows, count(*) FILTER (WHERE NOT sampling_known(sampling_rate)) AS flows_sampling_unknown, "
        + ", ".join(counters)
        + f" FROM {relation} GROUP BY ALL ORDER BY ALL"
    )


def compute(con: duckdb.DuckDBPyConnection, rollup: Rollup, files: list[Path]) -> pa.Table:
    """One roll-up partition's rows."""
    present = {name for path in files for name in pq.read_schema(path).names}
    table = con.sql(rollup_sql(rollup, files, present)).to_arrow_table()
    return table.cast(rollup_schema(rollup))


def connection(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for roll-up GROUP BYs (UTC, the SQL helpers; at most ``threads`` threads)."""
    con = helper_database(threads)
    con.execute("SET TimeZone = 'UTC'")
    return con


def maintain(
    lake: Lake,
    *,
    rebuild: bool = False,
    today: date | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    settled_at: datetime | None = None,
    threads: int | None = None,
) -> list[RollupResult]:
    """Bring every roll-up of ``lake`` up to date with its raw flows and apply each one's retention.

    With ``settled_at``, only partitions whose time is over and whose raw files are all older than it are
    computed (the rest count as ``deferred``): a writer that keeps the roll-ups current computes each
    partition about once, after its data stopped arriving, instead of once per flush. ``threads`` bounds
    DuckDB's threads (a writer's background maintenance leaves the other cores to decoding).
    """
    today = today or datetime.now(UTC).date()
    results = []
    with _only_one(lake):
        state = load_state(lake)
        read_ns = time.time_ns()
        dirs = hour_dirs(lake)  # before the files are listed: a change after this shows in a later look
        raw = raw_partitions(lake)
        con = connection(threads)
        try:
            for rollup in load_rollups(lake):
                seen = fingerprints(rollup, dirs, read_ns)
                result = _maintain_one(lake, con, rollup, state, raw, rebuild, today, progress, settled_at, seen)
                results.append(result)
                _save_state(lake, state)
        finally:
            con.close()
    return results


def _maintain_one(
    lake: Lake,
    con: duckdb.DuckDBPyConnection,
    rollup: Rollup,
    state: dict[str, Any],
    raw: dict[Partition, list[Path]],
    rebuild: bool,
    today: date,
    progress: Callable[[str, int, int], None] | None,
    settled_at: datetime | None,
    seen: dict[Partition, str],
) -> RollupResult:
    result = RollupResult(rollup.name)
    entry = state.get(rollup.name)
    if rebuild or entry is None or entry.get("definition") != rollup.digest():
        with lake.swapping():
            shutil.rmtree(lake.table_dir(rollup.name), ignore_errors=True)
        entry = state[rollup.name] = {"definition": rollup.digest(), "partitions": {}}
        result.rebuilt = True
    done: dict[str, str] = entry["partitions"]
    recorded: dict[str, str] = entry.setdefault("dirs", {})
    cutoff = today - timedelta(days=rollup.retention_days - 1)
    pending = []
    for partition, files in sorted(targets(rollup, raw).items()):
        if date.fromisoformat(partition[0]) >= cutoff:
            digest = source_digest(files)
            if done.get(key_text(partition)) == digest:
                _remember(recorded, key_text(partition), seen.get(partition))
                continue
            if settled_at is None or settled(rollup, partition, files, settled_at):
                pending.append((partition, files, digest))
            else:
                result.deferred += 1
    for index, (partition, files, digest) in enumerate(pending, 1):
        directory = lake.partition_dir(rollup.name, *partition)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{FILE_NAME}.tmp"
        pq.write_table(compute(con, rollup, files), tmp, compression="zstd")
        with lake.swapping():
            publish(tmp, directory / FILE_NAME)
        done[key_text(partition)] = digest
        _remember(recorded, key_text(partition), seen.get(partition))
        result.updated.append(partition)
        if progress is not None:
            progress(rollup.name, index, len(pending))
    result.expired = _expire(lake, rollup, (done, recorded), cutoff)
    return result


def _remember(recorded: dict[str, str], key: str, fingerprint: str | None) -> None:
    """Record what a partition's rows were computed from as directory times (``fingerprints``), for
    ``choose``'s look without listing files; forget it when they were too recent to tell."""
    if fingerprint is None:
        recorded.pop(key, None)
    else:
        recorded[key] = fingerprint


def _expire(lake: Lake, rollup: Rollup, records: tuple[dict[str, str], ...], cutoff: date) -> list[str]:
    """Remove the roll-up's day partitions older than its retention, and what ``records`` say of them."""
    expired = [day.name.removeprefix("date=") for day in drop_before(lake, cutoff, [rollup.name])]
    for record in records:
        for key in [key for key in record if date.fromisoformat(key.split("/")[0]) < cutoff]:
            del record[key]
    return expired
