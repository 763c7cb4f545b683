"""A steady stream of realistic synthetic flows, as flow-pipeline's mocker feeds its demo pipeline.

Each tick generates the flows due by then (``rate`` per second since the start, so a slow tick is
caught up, not lost) with the demo's traffic model (``flowscope.demo.traffic``), timed in the tick
that just passed and spread over a few mock exporters, so Kafka keys and per-exporter reports have
something to group by.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from flowscope import addresses
from flowscope.demo.traffic import synthetic_flows

TICK_SECONDS = 0.2
EXPORTER_BASE = 0xC0000201
"""Mock exporters are 192.0.2.1, 192.0.2.2, ... (TEST-NET-1)."""


def mock_flows(
    rate: float,
    *,
    count: int | None = None,
    duration: float | None = None,
    exporters: int = 4,
    seed: int = 1,
) -> Iterator[pa.Table]:
    """Yield batches at ``rate`` flows per second until ``count`` flows or ``duration`` seconds (or forever)."""
    started = time.monotonic()
    produced = 0
    tick = 0
    while True:
        elapsed = time.monotonic() - started
        if duration is not None:
            elapsed = min(elapsed, duration)
        due = int(rate * elapsed)
        if count is not None:
            due = min(due, count)
        if due > produced:
            n = due - produced
            span = max(elapsed - (produced / rate if rate else 0.0), TICK_SECONDS)
            batch = next(synthetic_flows(n, end=datetime.now(UTC), days=span / 86_400, seed=seed + tick, batch_rows=n))
            yield _with_exporters(batch, exporters, seed + tick)
            produced = due
        tick += 1
        if (count is not None and produced >= count) or (duration is not None and elapsed >= duration):
            return
        time.sleep(max(0.0, started + tick * TICK_SECONDS - time.monotonic()))


def _with_exporters(table: pa.Table, exporters: int, seed: int) -> pa.Table:
    picks = np.random.default_rng(seed).integers(0, exporters, table.num_rows)
    sampler = addresses.from_ipv4((EXPORTER_BASE + picks).astype(np.uint32))
    return table.set_column(table.schema.get_field_index("sampler_address"), "sampler_address", sampler)
