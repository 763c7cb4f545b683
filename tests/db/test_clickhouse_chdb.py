"""The same ClickHouse DDL and report SQL on a current ClickHouse (chdb: 26.x in-process): flows_5m answers as
flow-pipeline's README shows, and ``top`` rendered for ClickHouse equals the lake's answer on the same flows."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.conftest import skip_or_fail
from tests.sinks.test_clickhouse_sink import flows

from flowscope.db import clickhouse as ch
from flowscope.query.dialects import clickhouse
from flowscope.query.helpers import register_helpers
from flowscope.query.reports.top import top_sql
from flowscope.schema import Role
from flowscope.transforms.rollups import stores

pytestmark = pytest.mark.integration


def _load(session, parquet: Path) -> None:
    """Insert the Parquet file's flows into ``flows_raw`` with SQL (names and types as the sink writes them)."""
    columns = []
    for c in ch.raw_columns():
        if c.source is None:
            columns.append("toDate(time_received)")
        elif c.source.role is Role.TIME:
            value = f"toUInt64(toUnixTimestamp64Nano({c.source.name}))"
            columns.append(f"assumeNotNull({value})" if c.name == "TimeReceived" else value)
        elif not c.type.startswith("Nullable"):
            columns.append(f"ifNull({c.source.name}, 0)")
        else:
            columns.append(c.source.name)
    names = ", ".join(f"`{c.name}`" for c in ch.raw_columns())
    session.query(f"INSERT INTO fl.flows_raw ({names}) SELECT {', '.join(columns)} FROM file('{parquet}', Parquet)")


def test_ddl_view_and_top_on_current_clickhouse(tmp_path):
    try:
        from chdb import session as chdb_session
    except ImportError:
        skip_or_fail("chdb is not installed (pip install -e '.[test]')")
    session = chdb_session.Session(str(tmp_path / "chdb"))
    session.query("CREATE DATABASE fl")
    session.query("CREATE DATABASE with_ttl")
    for database, days in (("fl", None), ("with_ttl", 30)):  # the flows are from 2024: a TTL would expire them
        session.query(ch.raw_table_ddl(database, days))
        session.query(ch.rollup_table_ddl(database, days))
        session.query(ch.rollup_view_ddl(database))
    for rollup in stores.store_rollups():  # the lake's roll-ups, fed by their views
        session.query(stores.clickhouse_table_ddl("fl", rollup))
        session.query(stores.clickhouse_view_ddl("fl", rollup, stores.pipeline_names()))
    table = flows(4_000)
    for part in range(4):  # four inserts: four parts for the merge to sum
        path = tmp_path / f"part{part}.parquet"
        pq.write_table(table.slice(part * 1_000, 1_000), path)
        _load(session, path)
    session.query("OPTIMIZE TABLE fl.flows_5m FINAL")
    rollup = session.query(
        "SELECT count(), uniqExact(Date, Timeslot, SrcAS, DstAS), sum(Count), min(arraySum(ETypeMap.Bytes) = Bytes) "
        "FROM fl.flows_5m",
        "CSV",
    ).bytes()
    rows, keys, counted, nested_ok = map(int, rollup.decode().strip().split(","))
    assert rows == keys and counted == table.num_rows and nested_ok == 1

    lake = duckdb.connect()
    register_helpers(lake)
    lake.register("input", table)
    lake.execute("CREATE VIEW flows AS SELECT *, CAST(time_flow_start AS DATE) AS date FROM input")
    for grouping in ("src", "port", "dst-as"):
        expected = lake.sql(top_sql(grouping, "bytes", 10)).to_arrow_table()
        sql = top_sql(grouping, "bytes", 10, dialect=clickhouse()).replace("FROM flows_raw", "FROM fl.flows_raw")
        got = session.query(sql, "Arrow").bytes()
        answer = pa.ipc.open_file(pa.py_buffer(got)).read_all()
        assert [list(map(_plain, row.values())) for row in answer.to_pylist()] == [
            list(map(_plain, row.values())) for row in expected.to_pylist()
        ], grouping
    for name in ("flows_1m", "flows_1h"):  # the same answer from the roll-ups (their parts unmerged)
        expected = lake.sql(top_sql("dst-as", "packets", 10)).to_arrow_table()
        sql = top_sql("dst-as", "packets", 10, table=name, dialect=clickhouse())
        sql = sql.replace(f"FROM {stores.store_table(name)}", f"FROM fl.{stores.store_table(name)}")
        answer = pa.ipc.open_file(pa.py_buffer(session.query(sql, "Arrow").bytes())).read_all()
        assert [list(map(_plain, row.values())) for row in answer.to_pylist()] == [
            list(map(_plain, row.values())) for row in expected.to_pylist()
        ], name


def _plain(value):
    """Values of either engine in one form (addresses as bytes, numbers as int/float, text as str)."""
    if isinstance(value, bytes) and len(value) != 16:
        return value.decode()
    return value


def test_rollup_ttl_deletes_old_buckets_and_keeps_rows_of_unknown_time(tmp_path):
    try:
        from chdb import session as chdb_session
    except ImportError:
        skip_or_fail("chdb is not installed (pip install -e '.[test]')")
    session = chdb_session.Session(str(tmp_path / "chdb"))
    session.query("CREATE DATABASE fl")
    now = int(time.time()) * 1_000_000_000
    for rollup in stores.store_rollups():
        table = f"fl.{stores.store_table(rollup.name)}"
        session.query(stores.clickhouse_table_ddl("fl", rollup, ttl_days=30))
        for moment in ("0", str(now - 40 * 86_400 * 10**9), str(now - 20 * 86_400 * 10**9), str(now), "NULL"):
            session.query(f"INSERT INTO {table} (time, flows) VALUES ({moment}, 1)")  # "0": 1970
        session.query(f"OPTIMIZE TABLE {table} FINAL")  # merges apply the TTL
        kept = session.query(f"SELECT count(), countIf(time IS NULL), sum(flows) FROM {table}", "CSV").bytes()
        assert kept.decode().strip() == "3,1,3", rollup.name  # 20 days old, now, unknown time
