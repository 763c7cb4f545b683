"""``flowscope consume --to postgresql://``: exactly once into PostgreSQL, also across a consumer killed with SIGKILL.

The positions PostgreSQL stores in the rows' transaction (``flowscope_positions``) are where the restarted
consumer resumes, whatever Kafka's committed offsets say.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from tests.kafka.live import finish, start_consumer
from tests.kafka.test_consume import _produce
from tests.materialize.conftest import postgres_server

from flowscope.db import postgres as pg

__all__ = ["postgres_server"]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def database(postgres_server: str) -> Iterator[str]:
    """A new, empty database on the test server (dropped afterwards)."""
    name = f"k_{uuid.uuid4().hex[:10]}"
    base, _, _ = postgres_server.rpartition("/")
    with psycopg.connect(postgres_server, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    yield f"{base}/{name}"
    with psycopg.connect(postgres_server, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _stored(url: str) -> tuple[int, int]:
    """(rows, distinct ids) in ``flows``: each produced flow's unique id is its ``bytes``."""
    with psycopg.connect(url) as con:
        if con.execute("SELECT to_regclass('flows')").fetchone() == (None,):
            return 0, 0
        rows, ids = con.execute("SELECT count(*), count(DISTINCT bytes) FROM flows").fetchone() or (0, 0)
        return rows, ids


def test_a_consumer_killed_mid_stream_leaves_every_flow_once_in_postgresql(
    kafka: str, topic: str, tmp_path: Path, database: str
) -> None:
    n = 400_000
    _produce(kafka, topic, n, 16)
    first = start_consumer(tmp_path / "lake", kafka, topic, "--flush", "0.2", "--to", database)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _stored(database)[0]:  # a first transaction is committed
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    landed = _stored(database)[0]
    assert 0 < landed < n, f"the kill came too late or too early to test anything ({landed} flows)"
    assert pg.read_positions(database)
    # another group, so Kafka has no offsets for it: only PostgreSQL's positions can stop it from starting over
    second = start_consumer(tmp_path / "lake", kafka, topic, "--exit-idle", "3", "--flush", "0.5", "--to", database)
    _, err = finish(second)
    assert second.returncode == 0, err
    assert _stored(database) == (n, n)
    with psycopg.connect(database) as con:
        assert con.execute("SELECT min(bytes), max(bytes) FROM flows").fetchone() == (0, n - 1)
