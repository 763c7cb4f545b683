"""``flowscope db init --cluster``: the DDL text, and run on a real one-node cluster (ClickHouse 18.16 + ZooKeeper)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.clickhouse_server import SCRIPT, ClickHouseServer, free_tcp_port
from tests.conftest import ROOT, require_tool, skip_or_fail
from tests.helpers import flows

from flowscope.cli import main
from flowscope.db import clickhouse as ch
from flowscope.sinks.clickhouse import ClickHouseSink

ZOOKEEPER = ROOT / "scripts" / "zookeeper.sh"
CLUSTER = "flowscope"  # scripts/clickhouse.sh names its one-node cluster so


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_cluster_ddl_replicated_locals_and_distributed_tables_over_them() -> None:
    statements = ch.cluster_ddl("flows", "edge")
    assert all(" ON CLUSTER `edge`" in statement for statement in statements)
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS `flows` ON CLUSTER `edge`"
    raw, rollup, view, distributed_raw, distributed_rollup = statements[1:]
    assert raw.startswith("CREATE TABLE IF NOT EXISTS `flows`.flows_raw_local ON CLUSTER `edge` (\n    `Date` Date,")
    assert raw.endswith(
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/flows/flows_raw_local', '{replica}') "
        "PARTITION BY Date ORDER BY TimeReceived"
    )
    assert [line for line in raw.splitlines() if line.startswith("    ")] == [
        line for line in ch.raw_table_ddl("flows").splitlines() if line.startswith("    ")
    ]  # the same columns as one server's flows_raw: one catalogue
    assert (
        "ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/flows/flows_5m_local', '{replica}')" in rollup
    )
    assert "TO `flows`.flows_5m_local AS" in view and "FROM `flows`.flows_raw_local" in view
    assert distributed_raw == (
        "CREATE TABLE IF NOT EXISTS `flows`.flows_raw ON CLUSTER `edge` AS `flows`.flows_raw_local\n"
        "ENGINE = Distributed(`edge`, `flows`, flows_raw_local, rand())"
    )
    assert distributed_rollup.endswith("ENGINE = Distributed(`edge`, `flows`, flows_5m_local)")


def test_print_shows_the_statements_without_a_server_and_bad_names_are_refused() -> None:
    printed = run("db", "init", "clickhouse://127.0.0.1:1/flows", "--cluster", "edge", "--print")
    assert printed.exit_code == 0 and printed.output == ";\n\n".join(ch.cluster_ddl("flows", "edge")) + ";\n"
    bad = run("db", "init", "clickhouse://127.0.0.1:1/flows", "--cluster", "edge`; DROP", "--print")
    assert bad.exit_code == 2 and "bad ClickHouse cluster name" in bad.output


@pytest.fixture(scope="module")
def cluster_server() -> Iterator[ClickHouseServer]:
    """ZooKeeper and a ClickHouse server configured as the one node of cluster ``flowscope``."""
    require_tool("clickhouse-server")
    require_tool("java")
    if not Path("/usr/share/java/zookeeper.jar").exists():
        skip_or_fail("ZooKeeper is not installed (scripts/system-deps.sh installs zookeeper)")
    home = Path(tempfile.mkdtemp(prefix="flowscope-chc-"))
    zookeeper_port = free_tcp_port()
    server = ClickHouseServer(home / "clickhouse", free_tcp_port(), free_tcp_port())
    try:  # ZooKeeper is stopped by its pid file however its start ended (a start that timed out left it running)
        started = subprocess.run(
            ["bash", str(ZOOKEEPER), "start", str(home / "zookeeper"), str(zookeeper_port)],
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        if started.returncode:
            skip_or_fail(f"could not start ZooKeeper: {started.stderr.strip()[-500:]}")
        ports = [str(server.port), str(server.http_port), str(zookeeper_port)]
        started = subprocess.run(
            ["bash", str(SCRIPT), "start", str(server.home), *ports], capture_output=True, text=True, timeout=60
        )
        if started.returncode:
            skip_or_fail(f"could not start clickhouse-server: {started.stderr.strip()[-500:]}")
        yield server
    finally:
        server.stop()
        subprocess.run(["bash", str(ZOOKEEPER), "stop", str(home / "zookeeper")], capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.integration
def test_init_on_a_cluster_creates_every_table_and_inserts_reach_the_roll_up(cluster_server: ClickHouseServer) -> None:
    url = cluster_server.url("flows")
    result = run("db", "init", url, "--cluster", CLUSTER)
    assert result.exit_code == 0, result.output
    assert "created flows.flows_raw on cluster flowscope" in result.output
    client = ch.connect(ch.ClickHouseURL.parse(url))
    try:
        engines = dict(client.execute("SELECT name, engine FROM system.tables WHERE database = 'flows'"))
        assert engines == {
            "flows_raw_local": "ReplicatedMergeTree",
            "flows_5m_local": "ReplicatedSummingMergeTree",
            "flows_5m_view": "MaterializedView",
            "flows_raw": "Distributed",
            "flows_5m": "Distributed",
        }
        day = date(2024, 1, 1)
        rows = [(day, 1704067200 * 10**9, 10, 64512, 0x0800), (day, 1704067260 * 10**9, 5, 64512, 0x0800)]
        client.execute("INSERT INTO flows_raw (Date, TimeReceived, Bytes, SrcAS, EType) VALUES", rows,
                       settings={"insert_distributed_sync": 1})  # fmt: skip
        assert client.execute("SELECT count(), sum(Bytes) FROM flows_raw") == [(2, 15)]
        assert client.execute("SELECT SrcAS, sum(Bytes), sum(Count) FROM flows_5m GROUP BY SrcAS") == [(64512, 15, 2)]
    finally:
        client.disconnect()
    sink = ClickHouseSink(url)  # the destination, unchanged: its own init finds every table and adds nothing
    sink.write(flows(1000))
    sink.close()
    client = ch.connect(ch.ClickHouseURL.parse(url))
    try:  # a Distributed table forwards inserts to the shards in the background
        deadline = time.monotonic() + 60
        while client.execute("SELECT count() FROM flows_raw")[0][0] < 1002:
            assert time.monotonic() < deadline, "the Distributed table never forwarded the sink's rows"
            time.sleep(0.2)
        assert client.execute("SELECT count(), sum(Bytes) FROM flows_raw") == [(1002, 15 + sum(range(1000)))]
    finally:
        client.disconnect()
    again = run("db", "init", url, "--cluster", CLUSTER)
    assert again.exit_code == 0 and "created" not in again.output
    unknown = run("db", "init", url, "--cluster", "nowhere")
    assert unknown.exit_code == 2 and "knows no cluster 'nowhere'" in unknown.output
