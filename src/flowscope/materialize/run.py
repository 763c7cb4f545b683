"""Keeping one database table equal to one lake view, once or following the lake.

Each run compares a digest of the lake's files (names and sizes) with the digest the
target recorded in its last committed transaction: equal means nothing new landed and
the run does nothing. When files were only added since (lake files never change once
published) and the view can be computed per key (the reduction views), only the keys
those files hold are recomputed and upserted. Otherwise (the first run, a compaction or
retention removed files, other views) the whole view is computed, the reduction views in
this process (``whole``: numpy over the flow files, handed over in parts as they are merged, so a
new PostgreSQL table loads one part while the next is merged), the others by DuckDB, and the target
upserts it and deletes vanished keys. Either way the target records the
new digest and file list in the same transaction, so a re-run or a restart after a
crash never counts anything twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from flowscope.lake import Lake
from flowscope.materialize import whole
from flowscope.materialize.target import Applied, Change, LakeState, Rows, Target
from flowscope.materialize.upsert import quote
from flowscope.query.views import DERIVED_VIEWS, create_views, views_named
from flowscope.reduce.spec import BUILTIN

if TYPE_CHECKING:
    import duckdb


@dataclass
class Outcome:
    view_rows: int
    applied: Applied
    state: LakeState
    empty_keys: int = 0
    view_seconds: float = 0.0
    """Computing the view (DuckDB over the lake, or ``whole`` for a whole reduction view; its parts computed
    while the target loads the ones before included)."""
    apply_seconds: float = 0.0
    """The target's transaction (staging, upsert, delete, bookkeeping), less the time spent computing parts."""
    added_files: int | None = None
    """How many files were new when only their keys were recomputed; None for a run over the whole view."""


def lake_state(lake: Lake, view: str, key: Sequence[str]) -> LakeState:
    """Every published lake file's path and size, and a digest of them with the view definition."""
    sizes: dict[str, int] = {}
    for table in lake.tables():
        for path in lake.files(table):
            try:
                sizes[str(path.relative_to(lake.root))] = path.stat().st_size
            except FileNotFoundError:  # removed by a compaction since the listing
                continue
    entries = [f"{view}|{','.join(key)}", *(f"{path}:{size}" for path, size in sizes.items())]
    return LakeState(hashlib.sha256("\n".join(entries).encode()).hexdigest(), sizes)


def added_files(previous: Mapping[str, int] | None, state: LakeState) -> dict[str, int] | None:
    """The files new since the run that recorded ``previous``, or None when anything else changed (a file
    vanished or changed size: compaction, retention; no file was added, yet the digest differs: another view
    or key) or nothing was recorded."""
    if previous is None or any(state.sizes.get(path) != size for path, size in previous.items()):
        return None
    added = {path: size for path, size in state.sizes.items() if path not in previous}
    return added or None


def _query(
    con: duckdb.DuckDBPyConnection, lake: Lake, view: str, key: Sequence[str], added: dict[str, int] | None
) -> tuple[str, dict[str, int] | None]:
    """The SQL computing what to apply, and the added files when it covers only the keys they hold.

    The derived view itself is created only when the whole view is read: a per-key run builds its own
    SQL, and creating the view would bind every lake file's footer once more (see ``query.views``)."""
    derived = DERIVED_VIEWS.get(view)
    for_keys = derived.for_keys if derived is not None and tuple(key) == derived.key else None
    if added is not None and for_keys is not None:
        flows = [lake.root / path for path in added if Path(path).parts[0] == "flows"]
        if flows:
            listed = ", ".join("'" + str(path).replace("'", "''") + "'" for path in flows)
            keys = f"SELECT DISTINCT {', '.join(map(quote, key))} FROM read_parquet([{listed}], union_by_name = true)"
            return for_keys(con, lake, keys), added
        create_views(con, lake, [view])  # e.g. only interface counters landed
        return f"SELECT * FROM {quote(view)} LIMIT 0", added
    create_views(con, lake, views_named(view))
    return f"SELECT * FROM {quote(view)}", None


def _whole_reduction(
    stack: contextlib.ExitStack, lake: Lake, view: str, key: Sequence[str], parts: int
) -> tuple[Iterator[pa.Table], bool] | None:
    """A whole reduction view computed in this process (``whole.reduction_parts``: its records read now, its
    parts merged as they are asked for, until ``stack`` closes; and whether they are ranges of the key), or None
    where DuckDB computes it (another view or key, a lake without flow files, columns only DuckDB reconciles).
    Spill files, if any, go under the lake (the same disk as the data), or the temporary directory when the
    lake is read-only to this user."""
    reduction = BUILTIN.get(view)
    if reduction is None or tuple(key) != reduction.key:
        return None
    spill_dir = lake.root if os.access(lake.root, os.W_OK) else Path(tempfile.gettempdir())
    try:
        return stack.enter_context(whole.reduction_parts(lake, reduction, spill_dir, parts))
    except whole.Unsupported:
        return None


def materialize_once(
    lake: Lake, view: str, target: Target, table: str, key: Sequence[str], *, threads: int | None = None
) -> Outcome:
    lake = lake.existing()  # before the digest: a missing lake would match one recorded for an empty lake
    state, seen = lake_state(lake, view, key), target.applied_state(table)
    if seen == state.digest:
        return Outcome(0, Applied(skipped=True), state)
    previous = target.applied_files(table, view)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        with lake.reading():
            state = lake_state(lake, view, key)  # again under the lake's read lock: what the rows are computed from
            added = added_files(previous, state)
            parts = whole.PARTS if target.loads_in_parts(table) else 1
            computed = _whole_reduction(stack, lake, view, key, parts) if added is None else None
        if computed is None:
            from flowscope.query.connection import open_lake  # DuckDB: only where it computes the view

            with open_lake(lake, threads=threads) as con:
                state = lake_state(lake, view, key)  # again under the lake's read lock: what the query sees
                sql, added = _query(con, lake, view, key, added_files(previous, state))
                computed = iter([con.sql(sql).to_arrow_table()]), True
        rows = Rows(*computed, key, view)
        read = time.perf_counter()
        applied = target.apply(Change(table, tuple(key), rows, view, state, seen, added))
    seconds = read - started + rows.seconds, time.perf_counter() - read - rows.seconds
    return Outcome(
        rows.num_rows, applied, state, rows.empty_keys, *seconds, added_files=None if added is None else len(added)
    )


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
