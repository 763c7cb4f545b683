"""Keeping one database table equal to one lake view, once or following the lake.

Each run compares a digest of the lake's files (names and sizes) with the digest the
target recorded in its last committed transaction: equal means nothing new landed and
the run does nothing. Otherwise the view is computed by DuckDB over the whole lake and
the target upserts it, deletes vanished keys and records the new digest in the same
transaction, so a re-run or a restart after a crash never counts anything twice.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from flowscope.errors import FlowscopeError
from flowscope.lake import Lake, open_lake
from flowscope.materialize.target import Applied, LakeState, Target
from flowscope.materialize.upsert import quote


@dataclass
class Outcome:
    view_rows: int
    applied: Applied
    state: LakeState
    empty_keys: int = 0
    view_seconds: float = 0.0
    """Computing the view (DuckDB over the lake)."""
    apply_seconds: float = 0.0
    """The target's transaction: staging, upsert, delete, bookkeeping."""


def lake_state(lake: Lake, view: str, key: Sequence[str]) -> LakeState:
    """Digest of the view definition and every published lake file's path and size."""
    entries = [f"{view}|{','.join(key)}"]
    files = 0
    for table in lake.tables():
        for path in lake.files(table):
            try:
                size = path.stat().st_size
            except FileNotFoundError:  # removed by a compaction since the listing
                continue
            entries.append(f"{path.relative_to(lake.root)}:{size}")
            files += 1
    return LakeState(hashlib.sha256("\n".join(entries).encode()).hexdigest(), files)


def _keyed_rows(table: pa.Table, key: Sequence[str], view: str) -> tuple[pa.Table, int]:
    """Rows with a complete key (a NULL key part cannot be upserted)."""
    missing = [k for k in key if k not in table.column_names]
    if missing:
        raise FlowscopeError(f"view {view} has no column(s) {missing} for the key")
    complete = None
    for name in key:
        valid = pc.is_valid(table.column(name))
        complete = valid if complete is None else pc.and_(complete, valid)
    kept = table.filter(complete) if complete is not None else table
    return kept, table.num_rows - kept.num_rows


def materialize_once(
    lake: Lake, view: str, target: Target, table: str, key: Sequence[str], *, threads: int | None = None
) -> Outcome:
    state = lake_state(lake, view, key)
    if target.applied_state(table) == state.digest:
        return Outcome(0, Applied(skipped=True), state)
    started = time.perf_counter()
    with open_lake(lake, threads=threads) as con:
        state = lake_state(lake, view, key)  # again under the lake's read lock: what the query sees
        result = con.sql(f"SELECT * FROM {quote(view)}").to_arrow_table()
    rows, empty = _keyed_rows(result, key, view)
    computed = time.perf_counter()
    applied = target.apply(table, tuple(key), rows, view, state)
    return Outcome(rows.num_rows, applied, state, empty, computed - started, time.perf_counter() - computed)


def follow(
    lake: Lake,
    view: str,
    target: Target,
    table: str,
    key: Sequence[str],
    *,
    interval: float,
    report: Callable[[Outcome], None],
    threads: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Apply new lake data every ``interval`` seconds until interrupted."""
    while not should_stop():
        outcome = materialize_once(lake, view, target, table, key, threads=threads)
        if not outcome.applied.skipped:
            report(outcome)
        time.sleep(interval)
