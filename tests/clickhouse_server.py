"""A throwaway ClickHouse server (Debian's clickhouse-server, ``scripts/clickhouse.sh``) for integration tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import ROOT, require_tool, skip_or_fail

SCRIPT = ROOT / "scripts" / "clickhouse.sh"


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class ClickHouseServer:
    """A server in ``home`` on 127.0.0.1:``port``; ``stop``/``start`` restart it on the same ports and data."""

    home: Path
    port: int
    http_port: int

    def start(self) -> None:
        started = subprocess.run(
            ["bash", str(SCRIPT), "start", str(self.home), str(self.port), str(self.http_port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if started.returncode != 0:
            skip_or_fail(f"could not start clickhouse-server: {started.stderr.strip()[-500:]}")

    def stop(self, signal: str = "TERM") -> None:
        """Stop it (``KILL``: crash it) and wait until it is gone."""
        subprocess.run(["bash", str(SCRIPT), "stop", str(self.home), signal], capture_output=True, timeout=60)

    def url(self, database: str, query: str = "") -> str:
        return f"clickhouse://127.0.0.1:{self.port}/{database}" + (f"?{query}" if query else "")


def run_server() -> Iterator[ClickHouseServer]:
    """Start a server in a fresh temp directory; stop it (by its PID) and remove the directory afterwards."""
    require_tool("clickhouse-server")
    try:
        import clickhouse_driver  # noqa: F401
    except ImportError:
        skip_or_fail("clickhouse-driver is not installed (pip install -e .)")
    server = ClickHouseServer(Path(tempfile.mkdtemp(prefix="flowscope-ch-")), free_tcp_port(), free_tcp_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.home, ignore_errors=True)


@pytest.fixture(scope="session")
def clickhouse_server() -> Iterator[ClickHouseServer]:
    yield from run_server()


@pytest.fixture
def clickhouse_database() -> str:
    """A database name no other test uses."""
    return f"t_{uuid.uuid4().hex[:10]}"
