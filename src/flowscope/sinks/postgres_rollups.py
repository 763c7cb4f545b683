"""The PostgreSQL sink's roll-ups (``flows_5m``, ``rollup_1m``/``5m``/``1h``): summed on the client while the
flows are being copied, added to their tables once per transaction.

Measured on 1 M synthetic flows (``benchmarks/bench_stores.py``'s input, copies of 100 000 flows): the sink used
to run three DuckDB GROUP BYs over each copy's raw rows and then, per roll-up, a CREATE TEMP TABLE, a binary COPY
of the rows, the upsert and a DELETE, each step waiting for the other side: 0.7 s of the client's 2.5 CPU
seconds and 0.8 s of the server's 2.2 went to roll-ups, none of it overlapping the COPY of the flows. So here
(with the faster ``pgcopy`` encoding: client 2.7-3.1 -> 1.5-1.6 CPU s, server 2.3 -> 2.1, loaded machine):

- a batch is grouped once from its raw rows into the finest roll-up (and into ``flows_5m``, whose grain is
  another) by the lake's own GROUP BY (``build.group_flows``), in a worker thread while the main thread
  encodes the batch's flows for COPY (Arrow's kernels and numpy's sorts release the GIL);
- those rows stay on the client until the transaction is about to commit (or until ``HOLD_ROWS`` are held);
  then each table's rows are summed once more, the coarser roll-ups with the same dimensions summed from the
  finer one's (``stores.summable_from``: the counters are integers, so sums of sums are exact; once per
  transaction instead of once per batch: a DuckDB statement cost about 9 ms), each table's rows copied into a
  temporary table made once per connection and added with one ``INSERT ... ON CONFLICT DO UPDATE``, the
  worker summing the next table while the server adds this one's. The transaction stays the unit: flows, roll-ups and
  positions commit together or not at all, and a replay after a lost connection sums everything again.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.db import postgres as pg
from flowscope.schema import TIMESTAMP
from flowscope.transforms.rollups import stores
from flowscope.transforms.rollups.build import group_flows, sum_rows
from flowscope.transforms.rollups.spec import Rollup

HOLD_ROWS = 250_000
"""Roll-up rows held for the open transaction before they are sent in it (about 100 bytes each): a long
transaction of flows that hardly aggregate (every flow its own group) holds this much, not all of them."""
_SLOT_NS = pg.ROLLUP_SECONDS * 1_000_000_000

CopyRows = Callable[[Any, str, list[str], pa.Table], None]
"""The sink's binary COPY: (cursor, target table, columns, rows)."""


@dataclass(frozen=True)
class _Target:
    table: str
    rollup: Rollup | None
    """None: flow-pipeline's ``flows_5m``."""
    source: str | None
    """The finer roll-up table whose rows this one sums; None: the flows."""

    @property
    def stage(self) -> str:
        return f"flowscope_stage_{self.table}"

    def upsert(self) -> str:
        return pg.rollup_upsert(self.stage) if self.rollup is None else stores.postgres_upsert(self.rollup, self.stage)


def _targets() -> list[_Target]:
    """``flows_5m``, then the store's roll-ups finest first, each summed from the coarsest finer one it can be."""
    targets = [_Target(pg.ROLLUP_TABLE, None, None)]
    finer: list[Rollup] = []
    for rollup in sorted(stores.store_rollups(), key=lambda r: r.seconds):
        source = next((f for f in reversed(finer) if stores.summable_from(rollup, f)), None)
        source_table = None if source is None else stores.store_table(source.name)
        targets.append(_Target(stores.store_table(rollup.name), rollup, source_table))
        finer.append(rollup)
    return targets


def flows_5m(table: pa.Table) -> pa.Table:
    """``table``'s flows summed per (5-minute slot of ``time_received``, src_as, dst_as, etype), unknown keys as 0,
    in ``db.postgres.rollup_columns`` order."""
    received = table.column("time_received").cast(pa.int64()).to_numpy()
    keys = pa.table(
        {
            "slot": pa.array(received - received % _SLOT_NS, TIMESTAMP),
            **{name: pc.fill_null(table.column(name), 0) for name in ("src_as", "dst_as", "etype")},
            "bytes": pc.fill_null(table.column("bytes"), 0),
            "packets": pc.fill_null(table.column("packets"), 0),
            "flows": pa.array(np.ones(table.num_rows, np.int64)),
        }
    )
    return _summed_flows_5m(keys)


def _summed_flows_5m(rows: pa.Table) -> pa.Table:
    names = [name for name, _ in pg.rollup_columns()]
    summed = rows.group_by(names[:4], use_threads=False).aggregate([(name, "sum") for name in names[4:]])
    return summed.select([*names[:4], *(f"{name}_sum" for name in names[4:])]).rename_columns(names)


class TransactionRollups:
    """The roll-up rows of the open transaction's flows (see the module docstring)."""

    def __init__(self) -> None:
        self._targets = _targets()
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="flowscope-pg-rollups")
        self._running: Future[dict[str, pa.Table]] | None = None
        self._done: list[dict[str, pa.Table]] = []
        self._staged_on: Any = None
        """The connection whose temporary stage tables exist."""

    def add(self, flows: pa.Table) -> None:
        """Start summing a batch of flows (the previous batch's sums are taken first: one batch in flight)."""
        self._collect()
        self._running = self._worker.submit(self._sum, flows)

    def due(self) -> bool:
        """Whether the rows held (of batches already summed) reached ``HOLD_ROWS``."""
        return sum(rows.num_rows for batch in self._done for rows in batch.values()) >= HOLD_ROWS

    def send(self, cursor: Any, copy_rows: CopyRows, *, committing: bool) -> None:
        """Add the rows held to their tables in the open transaction (``committing``: the stage tables empty
        themselves at its commit; otherwise they are emptied here)."""
        self._collect()
        batches, self._done = self._done, []
        made: dict[str, Future[pa.Table | None]] = {}
        for target in self._targets:  # sources first: the one worker thread sums them before what sums them
            made[target.table] = self._worker.submit(self._rows, target, batches, made)
        if cursor.connection is not self._staged_on:
            for target in self._targets:
                cursor.execute(
                    f'CREATE TEMP TABLE IF NOT EXISTS {target.stage} (LIKE "{target.table}") ON COMMIT DELETE ROWS'
                )
            self._staged_on = cursor.connection
        for target in self._targets:  # the worker sums the next table while the server adds this one's rows
            rows = made[target.table].result()
            if rows is None:
                continue
            copy_rows(cursor, target.stage, rows.column_names, rows)
            cursor.execute(target.upsert())
            if not committing:
                cursor.execute(f"TRUNCATE {target.stage}")  # DELETE would leave dead rows for later scans

    def clear(self) -> None:
        """Forget the open transaction's rows (rolled back, or about to be summed again by a replay)."""
        if self._running is not None:
            self._running.cancel()
            self._running = None
        self._done = []

    def close(self) -> None:
        self.clear()
        self._worker.shutdown(wait=True, cancel_futures=True)

    def _collect(self) -> None:
        if self._running is not None:
            running, self._running = self._running, None
            self._done.append(running.result())

    def _sum(self, flows: pa.Table) -> dict[str, pa.Table]:
        """A batch's rows of the tables summed from the flows (the others are summed from these at ``send``)."""
        rows: dict[str, pa.Table] = {}
        for target in self._targets:
            if target.rollup is None:
                rows[target.table] = flows_5m(flows)
            elif target.source is None:
                rows[target.table] = group_flows(target.rollup, flows)
        return rows

    def _rows(
        self, target: _Target, batches: list[dict[str, pa.Table]], made: dict[str, Future[pa.Table | None]]
    ) -> pa.Table | None:
        """``target``'s rows for the transaction's ``batches`` (None: none), in the worker thread."""
        if target.source is not None:
            assert target.rollup is not None
            source = made[target.source].result()  # already done: submitted to this thread before
            return None if source is None else sum_rows(target.rollup, source)
        parts = [batch[target.table] for batch in batches if batch[target.table].num_rows]
        if len(parts) < 2:
            return parts[0] if parts else None
        if target.rollup is None:
            return _summed_flows_5m(pa.concat_tables(parts))
        return sum_rows(target.rollup, pa.concat_tables(parts))
