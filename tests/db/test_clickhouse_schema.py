"""flow-pipeline's ClickHouse tables rendered from the catalogue; URLs and insert settings."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from flowscope.cli import main
from flowscope.db import clickhouse as ch
from flowscope.errors import FlowscopeError
from flowscope.schema import FLOWS, table_columns
from flowscope.sinks.clickhouse import InsertPolicy

SEED = [
    "Date", "TimeReceived", "TimeFlowStart", "SequenceNum", "SamplingRate", "SamplerAddress", "SrcAddr", "DstAddr",
    "SrcAS", "DstAS", "EType", "Proto", "SrcPort", "DstPort", "Bytes", "Packets",
]  # fmt: skip


def test_flows_raw_has_the_seeds_columns_first_then_the_whole_catalogue():
    columns = ch.raw_columns()
    assert [c.name for c in columns[: len(SEED)]] == SEED
    assert sorted(c.source.name for c in columns if c.source) == sorted(c.name for c in table_columns(FLOWS))
    types = {c.name: c.type for c in columns}
    assert types["Date"] == "Date"
    assert types["TimeReceived"] == "UInt64"  # the sort key: never Nullable
    assert types["SrcAddr"] == types["SamplerAddress"] == "Nullable(FixedString(16))"
    assert types["BytesRev"] == "UInt64"  # declared never null in the catalogue


def test_ddl():
    raw = ch.raw_table_ddl("flows", ttl_days=30)
    assert "ENGINE = MergeTree() PARTITION BY Date ORDER BY TimeReceived\nTTL Date + INTERVAL 30 DAY" in raw
    assert "\nTTL" not in ch.raw_table_ddl("flows")
    rollup = ch.rollup_table_ddl("flows")
    assert "ETypeMap Nested(EType UInt16, Bytes UInt64, Packets UInt64, Count UInt64)" in rollup
    assert "SummingMergeTree() PARTITION BY Date ORDER BY (Date, Timeslot, SrcAS, DstAS)" in rollup
    view = ch.rollup_view_ddl("flows")
    assert "TO `flows`.flows_5m" in view and "FROM `flows`.flows_raw" in view


def test_url():
    url = ch.ClickHouseURL.parse("clickhouse://me:p%40ss@ch1/flows?batch_rows=1000")
    assert (url.host, url.port, url.database, url.user, url.password) == ("ch1", 9000, "flows", "me", "p@ss")
    assert InsertPolicy.from_params(dict(url.params)) == InsertPolicy(batch_rows=1000)
    assert ch.ClickHouseURL.parse("clickhouse://127.0.0.1:9001").database == "default"
    with pytest.raises(FlowscopeError, match="unknown ClickHouse URL parameter 'batch'"):
        InsertPolicy.from_params({"batch": "1"})
    with pytest.raises(FlowscopeError, match="not a number"):
        InsertPolicy.from_params({"batch_seconds": "soon"})
    with pytest.raises(FlowscopeError, match="bad ClickHouse database"):
        ch.ClickHouseURL.parse("clickhouse://h/a`b")


def test_drift_names_the_column():
    url = ch.ClickHouseURL.parse("clickhouse://h/flows")
    expected = [("SrcAS", "Nullable(UInt32)"), ("X", "UInt8")]
    missing = ch.check_columns("flows_raw", {"SrcAS": "Nullable(UInt32)"}, expected, url)
    assert missing == [("X", "UInt8")]
    with pytest.raises(FlowscopeError, match=r"column flows\.flows_raw\.SrcAS is UInt64, flowscope writes"):
        ch.check_columns("flows_raw", {"SrcAS": "UInt64"}, [("SrcAS", "Nullable(UInt32)")], url)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["clickhouse://127.0.0.1:9/x", "--rollup-ttl-days", "30"], "raw flows for ever: reports answered"),
        (["clickhouse://127.0.0.1:9/x", "--raw-ttl-days", "31", "--rollup-ttl-days", "30"], "raw flows 31 days"),
        (["postgresql://postgres@127.0.0.1:9/x", "--rollup-ttl-days", "30"], "PostgreSQL has no TTL"),
    ],
)
def test_db_init_refuses_rollups_kept_shorter_than_the_raw_flows_and_ttls_on_postgresql(args, message):
    result = CliRunner().invoke(main, ["db", "init", *args])
    assert result.exit_code == 2 and message in result.output and result.output.count("\n") == 1, result.output
