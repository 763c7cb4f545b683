"""End to end: softflowd -> nfcapd (the oracle), which repeats every datagram to ``flowscope collect --to lake
--to clickhouse:// --to postgresql://``: the flows and roll-up totals in ClickHouse and PostgreSQL equal
nfcapd's, and the lake's."""

from __future__ import annotations

import subprocess

import psycopg
import pytest
from tests.collect.test_e2e_exporters import collect_through_nfcapd, write_pcap
from tests.conftest import require_tool

from flowscope.db import clickhouse as ch

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_softflowd_ipfix_into_clickhouse_and_postgresql_equals_nfcapd(
    tmp_path, clickhouse_server, clickhouse_database, postgres_database
):
    softflowd = require_tool("softflowd")
    pcap = tmp_path / "generated.pcap"
    truth = write_pcap(pcap)
    url = clickhouse_server.url(clickhouse_database)

    def export(port: int) -> None:
        subprocess.run(
            [softflowd, "-d", "-r", str(pcap), "-n", f"127.0.0.1:{port}", "-v", "10", "-A", "milli", "-a",
             "-m", "65536", "-c", "none", "-p", str(tmp_path / "softflowd.pid")],
            capture_output=True, check=True, timeout=120,
        )  # fmt: skip

    oracle, lake, _ = collect_through_nfcapd(tmp_path, export, "--to", "lake", "--to", url, "--to", postgres_database)
    client = ch.connect(ch.ClickHouseURL.parse(url))
    try:
        raw = client.execute("SELECT count(), sum(Packets), sum(Bytes) FROM flows_raw")[0]
        rollup = client.execute("SELECT sum(Count), sum(Packets), sum(Bytes) FROM flows_5m")[0]
    finally:
        client.disconnect()
    assert oracle == truth == lake
    assert dict(zip(("flows", "packets", "bytes"), raw, strict=True)) == oracle
    assert dict(zip(("flows", "packets", "bytes"), rollup, strict=True)) == oracle
    with psycopg.connect(postgres_database) as con:
        flows = con.execute("SELECT count(*), sum(packets), sum(bytes) FROM flows").fetchone()
        rolled = con.execute("SELECT sum(flows), sum(packets), sum(bytes) FROM flows_5m").fetchone()
    assert dict(zip(("flows", "packets", "bytes"), flows, strict=True)) == oracle
    assert dict(zip(("flows", "packets", "bytes"), rolled, strict=True)) == oracle
