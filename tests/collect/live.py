"""Running a real ``flowscope collect`` (and the tools around it) on 127.0.0.1 in tests."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

# Every daemon a test starts is wrapped in `timeout`, so a hang can never outlive the test run.
DAEMON_SECONDS = 300


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_collector(lake: Path, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "flowscope", "--lake", str(lake), "collect", "--flush", "0.5", *args]
    return subprocess.Popen(
        ["timeout", "-s", "INT", str(DAEMON_SECONDS), *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def flowscope_json(lake: Path, command: str) -> dict | None:
    """``flowscope COMMAND --format json`` on ``lake`` (``exporters``, ``templates``); None when it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "flowscope", "--lake", str(lake), command, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(result.stdout) if result.returncode == 0 else None


def exporters_json(lake: Path) -> dict | None:
    return flowscope_json(lake, "exporters")


def wait_for_health(lake: Path, predicate: Callable[[dict], bool], timeout: float = 30.0) -> dict:
    """Poll ``flowscope exporters --format json`` until ``predicate(health)`` holds."""
    deadline = time.monotonic() + timeout
    health: dict | None = None
    while time.monotonic() < deadline:
        health = exporters_json(lake)
        if health is not None and predicate(health):
            return health
        time.sleep(0.3)
    raise AssertionError(f"collector health never matched: {health}")


def total_datagrams(health: dict) -> int:
    return sum(e["datagrams"] for e in health["exporters"])


def stop(process: subprocess.Popen, signum: int) -> tuple[int, str]:
    """Signal a process we started and collect its exit code and stderr."""
    process.send_signal(signum)
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return process.returncode, stderr


def lake_totals(lake: Path) -> dict[str, int]:
    """Flow, packet and byte totals of a lake's flows table."""
    files = str(lake / "flows" / "**" / "*.parquet")
    flows, packets, octets = duckdb.sql(
        f"SELECT count(*), sum(packets), sum(bytes) FROM read_parquet('{files}')"
    ).fetchall()[0]
    return {"flows": int(flows), "packets": int(packets or 0), "bytes": int(octets or 0)}


def wait_until_quiet(lake: Path, timeout: float = 60.0, quiet: float = 1.5) -> dict:
    """Wait until the collector has seen datagrams and their count stopped growing for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        health = exporters_json(lake)
        total = total_datagrams(health) if health else 0
        if total != last:
            last, since = total, time.monotonic()
        elif total > 0 and time.monotonic() - since >= quiet:
            return health
        time.sleep(0.3)
    raise AssertionError(f"collector never went quiet (last count {last})")
