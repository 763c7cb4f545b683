"""A throwaway Elasticsearch-compatible server for integration tests: noida-db (PyPI; REAL-TOOLS.md) answering
the Elasticsearch 8 REST API on 127.0.0.1, started with its own data directory and stopped by its PID."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.clickhouse_server import free_tcp_port
from tests.conftest import skip_or_fail


def _binary() -> str:
    beside_python = Path(sys.executable).parent / "noida-db"
    found = shutil.which("noida-db") or (str(beside_python) if beside_python.exists() else None)
    if found is None:
        skip_or_fail("noida-db is not installed (pip install -e '.[test]')")
    return str(found)


@pytest.fixture(scope="session")
def elasticsearch_server() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a fresh server."""
    try:
        import elasticsearch  # noqa: F401
    except ImportError:
        skip_or_fail("the elasticsearch client is not installed (pip install -e '.[test]')")
    home = Path(tempfile.mkdtemp(prefix="flowscope-es-"))
    port = free_tcp_port()
    log = open(home / "server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        ["timeout", "1800", _binary(), "start", "--data-dir", str(home / "data"), "--host", "127.0.0.1",
         "--only", "elasticsearch", "--elasticsearch-port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    skip_or_fail(f"noida-db did not start: {(home / 'server.log').read_text()[-500:]}")
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        shutil.rmtree(home, ignore_errors=True)
