"""``flowscope read -``: a live CSV feed on stdin reaches the lake while it is still running."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.helpers import wait_until

from flowscope.lake import Lake

EXAMPLE = Path(__file__).parent / "data" / "unicauca11_example.csv"


@pytest.mark.slow
def test_stdin_feed_is_committed_while_running(lake_dir: Path) -> None:
    lines = EXAMPLE.read_bytes().splitlines(keepends=True)
    command = [sys.executable, "-m", "flowscope", "--lake", str(lake_dir), "read", "-", "--commit-seconds", "0.5"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as process:
        try:
            assert process.stdin is not None
            process.stdin.write(b"".join(lines[:4]))  # header + 3 rows, no end of input yet
            process.stdin.flush()
            committed = wait_until(lambda: len(Lake(lake_dir).files("flows")) >= 1, timeout=20)
            assert committed, "first rows not committed while live"
            process.stdin.write(b"".join(lines[4:]))
            process.stdin.close()
            assert process.wait(timeout=60) == 0
        finally:
            if process.poll() is None:
                process.kill()
    rows = sum(pq.read_metadata(path).num_rows for path in Lake(lake_dir).files("flows"))
    assert rows == 8


def test_gzip_on_stdin_is_detected(lake_dir: Path) -> None:
    command = [sys.executable, "-m", "flowscope", "--lake", str(lake_dir), "read", "-"]
    done = subprocess.run(command, input=gzip.compress(EXAMPLE.read_bytes()), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert sum(pq.read_metadata(path).num_rows for path in Lake(lake_dir).files("flows")) == 8
