"""A PostgreSQL server for materialize tests: the one on 127.0.0.1:5432 if it answers, else a throwaway one."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from tests.conftest import ROOT, skip_or_fail

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    url = os.environ.get("FLOWSCOPE_TEST_POSTGRES", DEFAULT_URL)
    if _answers(url):
        yield url
        return
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        skip_or_fail("no PostgreSQL server answers and none is installed (scripts/system-deps.sh installs it)")
    home = Path(tempfile.mkdtemp(prefix="flowscope-pg-", dir="/tmp"))
    home.chmod(0o755)  # reachable by the postgres user when the tests run as root
    script = ROOT / "scripts" / "postgres.sh"
    started = subprocess.run(
        ["bash", str(script), "start", str(home / "pg"), str(_free_port())],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if started.returncode != 0:
        skip_or_fail(f"could not start PostgreSQL: {started.stderr.strip()[-500:]}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(script), "stop", str(home / "pg")], capture_output=True, timeout=120)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def table_name() -> str:
    """A table name no other test (or concurrent run) uses."""
    return f"mat_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def postgres_url(postgres_server: str, table_name: str) -> Iterator[str]:
    """The server's URL; the test's ``table_name`` table and its bookkeeping row are removed afterwards."""
    yield postgres_server
    with psycopg.connect(postgres_server, autocommit=True) as con:
        con.execute(f'DROP TABLE IF EXISTS "{table_name}"')
        if con.execute("SELECT to_regclass('flowscope_materialized')").fetchone()[0] is not None:
            con.execute("DELETE FROM flowscope_materialized WHERE target_table = %s", (table_name,))
