"""Small builders shared by foundation tests."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from flowscope import addresses
from flowscope.schema import conform

HOUR_NS = 3_600_000_000_000
BASE_NS = 1_714_521_600 * 1_000_000_000  # 2024-05-01T00:00:00Z


def flows(n: int, *, start_ns: int = BASE_NS, spacing_ns: int = 1_000_000, first_id: int = 0) -> pa.Table:
    """``n`` flows one ``spacing_ns`` apart; ``bytes`` holds a unique id so losses and duplicates show."""
    ids = np.arange(first_id, first_id + n, dtype=np.uint64)
    starts = start_ns + np.arange(n, dtype=np.int64) * spacing_ns
    return conform(
        pa.table(
            {
                "type": pa.array(["test"] * n),
                "time_flow_start": pa.array(starts, pa.timestamp("ns", "UTC")),
                "time_flow_end": pa.array(starts + 1000, pa.timestamp("ns", "UTC")),
                "src_addr": addresses.from_ipv4((0x0A000000 + ids % 50).astype(np.uint32)),
                "dst_addr": addresses.from_ipv4(np.full(n, 0xC0000201, np.uint32)),
                "src_port": (ids % 60000).astype(np.uint16),
                "dst_port": np.full(n, 443, np.uint16),
                "proto": np.full(n, 6, np.uint8),
                "bytes": ids,
                "packets": np.ones(n, np.uint64),
            }
        )
    )


def wait_until(predicate: Callable[[], bool], timeout: float = 30) -> bool:
    """Poll ``predicate`` every 0.1 s until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False
