"""A throwaway ClickHouse server for this folder's integration tests (scripts/clickhouse.sh)."""

from tests.clickhouse_server import clickhouse_database, clickhouse_server

__all__ = ["clickhouse_database", "clickhouse_server"]
