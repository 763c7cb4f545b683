"""``flowscope consume``: a topic into the lake exactly once, also across a consumer killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
from tests.helpers import flows

from flowscope.kafka.sink import KafkaSink
from flowscope.kafka.url import parse

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _produce(bootstrap: str, topic: str, n: int, per_message: int, first_id: int = 0) -> None:
    sink = KafkaSink(parse(f"kafka://{bootstrap}/{topic}?key=none&per_message={per_message}"))
    for first in range(first_id, first_id + n, 50_000):
        sink.write(flows(min(50_000, first_id + n - first), first_id=first))
    sink.close()


def _consume(lake: Path, bootstrap: str, topic: str, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "flowscope", "--lake", str(lake), "consume", f"kafka://{bootstrap}/{topic}",
               "--group", "lake", "--from-beginning", *args]  # fmt: skip
    return subprocess.Popen(  # not under `timeout`: the test kills this very process; callers wait with a limit
        command,
        env={**os.environ, "PYTHONPATH": SRC},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen) -> tuple[str, str]:
    try:
        return process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _ids(lake: Path) -> np.ndarray:
    """The ``bytes`` column of every flow in the lake: each produced flow's unique id."""
    if not list(lake.glob("flows/**/*.parquet")):
        return np.zeros(0, np.uint64)
    query = f"SELECT bytes FROM read_parquet('{lake}/flows/**/*.parquet')"
    return duckdb.sql(query).fetchnumpy()["bytes"]


def test_produced_flows_land_in_the_lake_exactly_once(kafka: str, topic: str, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _produce(kafka, topic, 5_000, 256)
    done = _consume(lake, kafka, topic, "--exit-idle", "2", "--flush", "0.5")
    _, err = _finish(done)
    assert done.returncode == 0, err
    assert "5,000 flows from 20 messages" in err
    assert sorted(_ids(lake).tolist()) == list(range(5_000))
    # a second run finds nothing new: it resumes where the lake's ledger says the data ends
    again = _consume(lake, kafka, topic, "--exit-idle", "2")
    _, err = _finish(again)
    assert again.returncode == 0 and "0 flows from 0 messages" in err, err
    assert _ids(lake).shape[0] == 5_000


def test_a_consumer_killed_mid_stream_loses_and_duplicates_nothing(kafka: str, topic: str, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    n = 400_000
    _produce(kafka, topic, n, 16)
    first = _consume(lake, kafka, topic, "--flush", "0.2")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list((lake / "_ledger").glob("*.json")):
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    landed = _ids(lake).shape[0]
    assert 0 < landed < n, f"the kill came too late or too early to test anything ({landed} flows)"
    second = _consume(lake, kafka, topic, "--exit-idle", "3", "--flush", "0.5")
    _, err = _finish(second)
    assert second.returncode == 0, err
    ids = _ids(lake)
    assert ids.shape[0] == n
    assert np.array_equal(np.sort(ids), np.arange(n, dtype=np.uint64))
