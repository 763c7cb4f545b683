"""Running ``flowscope consume`` as a process in tests, and reading what it wrote."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import numpy as np

SRC = str(Path(__file__).resolve().parents[2] / "src")


def fresh_group() -> str:
    """A consumer group no process has used on the session's broker.

    tansu (0.6) can stop assigning partitions in a group whose earlier members have left: a departed
    member stays the group's leader, so the joiners loop on SyncGroup "rebalance in progress" for
    minutes (seen in 5 of 8 rounds reusing one group, 0 of 12 with a group per round). Tests that
    reused the group "lake" on the session's broker hung that way (``consume --exit-idle`` counts
    idleness only once the group settled). A restarted consumer in a fresh group also proves that the
    destination's positions, not Kafka's committed offsets, say where to resume.
    """
    return f"g-{uuid.uuid4().hex[:12]}"


def start_consumer(lake: Path, bootstrap: str, topic: str, *args: str, group: str | None = None) -> subprocess.Popen:
    """``flowscope consume`` of ``topic`` into ``lake`` as a process, in ``group`` (default: a fresh one)."""
    command = [sys.executable, "-m", "flowscope", "--lake", str(lake), "consume", f"kafka://{bootstrap}/{topic}",
               "--group", group or fresh_group(), "--from-beginning", *args]  # fmt: skip
    return subprocess.Popen(  # not under `timeout`: the test kills this very process; callers wait with a limit
        command,
        env={**os.environ, "PYTHONPATH": SRC},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> tuple[str, str]:
    try:
        return process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def lake_ids(lake: Path) -> np.ndarray:
    """The ``bytes`` column of every flow in the lake: each produced flow's unique id."""
    if not list(lake.glob("flows/**/*.parquet")):
        return np.zeros(0, np.uint64)
    query = f"SELECT bytes FROM read_parquet('{lake}/flows/**/*.parquet')"
    return duckdb.sql(query).fetchnumpy()["bytes"]
