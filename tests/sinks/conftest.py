"""Servers for this folder's integration tests: a throwaway ClickHouse (scripts/clickhouse.sh) and the PostgreSQL
of the materialize tests, with a fresh database per test."""

from collections.abc import Iterator

import psycopg
import pytest
from tests.clickhouse_server import clickhouse_database, clickhouse_server
from tests.materialize.conftest import postgres_server

__all__ = ["clickhouse_database", "clickhouse_server", "postgres_database", "postgres_server"]


@pytest.fixture
def postgres_database(postgres_server: str, clickhouse_database: str) -> Iterator[str]:
    """The URL of a new, empty database on the test server (dropped afterwards)."""
    base, _, _ = postgres_server.rpartition("/")
    with psycopg.connect(postgres_server, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{clickhouse_database}"')
    yield f"{base}/{clickhouse_database}"
    with psycopg.connect(postgres_server, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{clickhouse_database}" WITH (FORCE)')
