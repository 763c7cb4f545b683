"""``flowscope db init clickhouse://...`` against a real clickhouse-server 18.16."""

from __future__ import annotations

from datetime import date

import pytest
from click.testing import CliRunner
from tests.clickhouse_server import free_tcp_port

from flowscope.cli import main
from flowscope.db import clickhouse as ch
from flowscope.errors import FlowscopeError

pytestmark = pytest.mark.integration


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def query(url: str, sql: str, rows: list | None = None) -> list:
    target = ch.ClickHouseURL.parse(url)
    client = ch.connect(target)
    try:
        return client.execute(sql, rows)
    finally:
        client.disconnect()


def test_init_creates_the_seeds_tables_and_a_rerun_changes_nothing(clickhouse_server, clickhouse_database):
    url = clickhouse_server.url(clickhouse_database)
    first = run("db", "init", url)
    assert first.exit_code == 0, first.output
    assert f"created table {clickhouse_database}.flows_raw" in first.output
    assert f"created materialized view {clickhouse_database}.flows_5m_view" in first.output
    tables = dict(query(url, f"SELECT name, engine FROM system.tables WHERE database = '{clickhouse_database}'"))
    rollups = {f"rollup_{r}": "SummingMergeTree" for r in ("1m", "5m", "1h")}
    assert tables == {
        "flows_raw": "MergeTree", "flows_5m": "SummingMergeTree", "flows_5m_view": "MaterializedView",
        **rollups, **{f"{name}_view": "MaterializedView" for name in rollups},
    }  # fmt: skip
    row = (date(2024, 1, 1), 1704067200 * 10**9, 1704067230 * 10**9, 10)
    query(url, "INSERT INTO flows_raw (Date, TimeReceived, TimeFlowStart, Bytes) VALUES", [row])
    again = run("db", "init", url)
    assert again.exit_code == 0 and "is up to date" in again.output
    assert query(url, "SELECT count(), sum(Bytes) FROM flows_raw") == [(1, 10)]
    assert query(url, "SELECT time, flows, bytes FROM rollup_1m") == [(1704067200 * 10**9, 1, 10)]
    # a database from before the roll-ups: init creates them and fills them from the flows there
    query(url, "DROP TABLE rollup_1h_view")
    query(url, "DROP TABLE rollup_1h")
    third = run("db", "init", url)
    assert third.exit_code == 0 and "rollup_1h filled from the 1 flows in flows_raw" in third.output, third.output
    assert query(url, "SELECT time, flows, bytes FROM rollup_1h") == [(1704067200 * 10**9, 1, 10)]


def test_a_missing_column_is_added_and_a_changed_one_is_named(clickhouse_server, clickhouse_database):
    url = clickhouse_server.url(clickhouse_database)
    target = ch.ClickHouseURL.parse(url)
    ch.init(target)
    query(url, "ALTER TABLE flows_raw DROP COLUMN CommunityId")
    assert ch.init(target).added_columns == ["flows_raw.CommunityId"]
    query(url, "ALTER TABLE flows_raw MODIFY COLUMN DstPort Nullable(UInt32)")
    result = run("db", "init", url)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: ClickHouse at 127.0.0.1:{clickhouse_server.port}: column {clickhouse_database}.flows_raw.DstPort is "
        "Nullable(UInt32), flowscope writes Nullable(UInt16) (changed by someone else? change it back or use another "
        "database)"
    ]


def test_unreachable_server_and_wrong_user_are_one_line_errors(clickhouse_server):
    down = run("db", "init", f"clickhouse://127.0.0.1:{free_tcp_port()}/x")
    assert down.exit_code == 2
    assert down.output.startswith("error: cannot reach ClickHouse at 127.0.0.1:") and down.output.count("\n") == 1
    with pytest.raises(FlowscopeError, match="refused user 'nobody': wrong user or password"):
        ch.init(ch.ClickHouseURL.parse(f"clickhouse://nobody:secret@127.0.0.1:{clickhouse_server.port}/x"))
