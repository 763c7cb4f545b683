"""Running ``flowscope consume`` as a process in tests, and reading what it wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np

SRC = str(Path(__file__).resolve().parents[2] / "src")


def start_consumer(lake: Path, bootstrap: str, topic: str, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "flowscope", "--lake", str(lake), "consume", f"kafka://{bootstrap}/{topic}",
               "--group", "lake", "--from-beginning", *args]  # fmt: skip
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
