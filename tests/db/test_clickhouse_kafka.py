"""``db init --kafka``: the Kafka-engine table and view, and the view's conversion of FlowMessages fed as
JSONEachRow on the 18.16 server (no broker: the same SELECT runs over a Memory table of messages)."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from click.testing import CliRunner
from tests.conftest import require_tool

from flowscope.cli import main
from flowscope.db import clickhouse as ch
from flowscope.db import clickhouse_kafka as ck
from flowscope.schema import FLOWS, table_columns


def test_flow_proto_and_the_view_follow_the_catalogue():
    proto = ck.flow_proto()
    for c in table_columns(FLOWS):
        if c.goflow2 is not None and c.goflow2.proto_type != "FlowType":
            assert f"  {c.goflow2.proto_type} {c.goflow2.name} = {c.goflow2.number};\n" in proto
    assert "  FlowType type = 1;\n" in proto and "    IPFIX = 4;\n" in proto
    aliases = set(re.findall(r"AS `?(\w+)`?(?:,|\n)", ck.message_select("m")))
    assert aliases == {c.name for c in ch.raw_columns()}  # every column, named (old servers fill none)
    assert "CAST(NULL AS Nullable(String)) AS `CommunityId`" in ck.message_select("m")
    assert ck.parse_topic("k1:9092,k2:9092/flows") == ("k1:9092,k2:9092", "flows")


@pytest.mark.integration
def test_kafka_tables_and_json_messages_into_flows_raw(clickhouse_server, clickhouse_database):
    client_tool = require_tool("clickhouse-client")
    url = clickhouse_server.url(clickhouse_database)
    result = CliRunner().invoke(main, ["db", "init", url, "--kafka", "127.0.0.1:9/flows"])
    assert result.exit_code == 0, result.output
    assert "JSONEachRow" in result.output  # 18.16 has no Protobuf input format
    target = ch.ClickHouseURL.parse(url)
    client = ch.connect(target)
    try:
        tables = f"SELECT name, engine FROM system.tables WHERE database = '{clickhouse_database}'"
        engines = dict(client.execute(tables))
        assert engines[ck.KAFKA_TABLE] == "Kafka"
        assert engines[ck.KAFKA_VIEW] == engines[ck.KAFKA_ROLLUP_VIEW] == "MaterializedView"
        columns = ", ".join(f"`{name}` {kind}" for name, kind in ck.kafka_columns())
        client.execute(f"CREATE TABLE messages ({columns}) ENGINE = Memory")
        client.execute(f"CREATE MATERIALIZED VIEW messages_view TO flows_raw AS {ck.message_select('messages')}")
        client.execute(ch.rollup_view_ddl(clickhouse_database, view="messages_5m", source="messages",
                                          inputs=ck.ROLLUP_INPUTS))  # fmt: skip
        messages = [
            {"type": "IPFIX", "time_received_ns": 1709251200 * 10**9 + 5, "src_addr": "\u000a\u0000\u0000\u0001",
             "dst_addr": "\u0020\u0001" + "\u0000" * 13 + "\u0001", "bytes": 1500, "packets": 3, "src_as": 65001,
             "etype": 2048, "proto": 6, "dst_port": 443},
            {"type": "SFLOW_5", "time_received_ns": 1709251260 * 10**9, "src_addr": "", "bytes": 64, "packets": 1,
             "src_as": 65001, "etype": 34525},
        ]  # fmt: skip
        lines = "".join(json.dumps(m) + "\n" for m in messages)
        subprocess.run(
            [client_tool, "--port", str(clickhouse_server.port), "-d", clickhouse_database, "-q",
             "INSERT INTO messages FORMAT JSONEachRow"],
            input=lines.encode(), check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        rows = client.execute(
            "SELECT Date, TimeReceived, Type, hex(SrcAddr), hex(DstAddr), Bytes, Packets, SrcAS, EType, Proto, "
            "DstPort, BytesRev, CommunityId FROM flows_raw ORDER BY TimeReceived"
        )
        assert [row[1:] for row in rows] == [
            (1709251200 * 10**9 + 5, "ipfix", "00000000000000000000FFFF0A000001", "2001" + "00" * 13 + "01",
             1500, 3, 65001, 2048, 6, 443, 0, None),
            (1709251260 * 10**9, "sflow_v5", None, None, 64, 1, 65001, 34525, 0, 0, 0, None),
        ]  # fmt: skip
        assert str(rows[0][0]) == "2024-03-01"
        assert client.execute("SELECT sum(Count), sum(Bytes) FROM flows_5m") == [(2, 1564)]
    finally:
        client.disconnect()
