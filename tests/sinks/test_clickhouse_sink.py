"""The ClickHouse destination against a real clickhouse-server 18.16: rows back equal, flows_5m equal to an
independent GROUP BY, a restarted server retried without loss, one-line errors."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from tests.clickhouse_server import free_tcp_port, run_server

from flowscope.db import clickhouse as ch
from flowscope.demo.traffic import synthetic_flows
from flowscope.errors import FlowscopeError
from flowscope.pipeline import run
from flowscope.sinks.clickhouse import ClickHouseSink, InsertPolicy
from flowscope.sinks.registry import DestinationContext, open_destination

pytestmark = pytest.mark.integration

END = datetime(2024, 3, 1, 12, tzinfo=UTC)


def flows(n: int = 6_000) -> pa.Table:
    """Synthetic flows with a unique sequence number per row, some unknown AS numbers and community ids."""
    table = pa.concat_tables(synthetic_flows(n, end=END, days=0.5, batch_rows=n))
    table = table.set_column(table.schema.get_field_index("sequence_num"), "sequence_num",
                             pa.array(np.arange(n, dtype=np.uint32)))  # fmt: skip
    unknown = np.arange(n) % 7 == 0
    src_as = pa.array(table.column("src_as").to_numpy(), mask=unknown)
    table = table.set_column(table.schema.get_field_index("src_as"), "src_as", src_as)
    ids = pa.array([f"1:{i:x}=" if i % 3 else None for i in range(n)])
    return table.set_column(table.schema.get_field_index("community_id"), "community_id", ids)


def query(url: str, sql: str) -> list:
    client = ch.connect(ch.ClickHouseURL.parse(url))
    try:
        return client.execute(sql)
    finally:
        client.disconnect()


def optimize_final(url: str, database: str) -> None:
    """``OPTIMIZE TABLE flows_5m FINAL`` until each partition is one part (the server skips it, silently, while
    a background merge of the same parts runs)."""
    parts = (
        f"SELECT max(n) FROM (SELECT count() AS n FROM system.parts WHERE database = '{database}' "
        "AND table = 'flows_5m' AND active GROUP BY partition)"
    )
    deadline = time.monotonic() + 30
    while True:
        query(url, "OPTIMIZE TABLE flows_5m FINAL")
        if query(url, parts) == [(1,)] or time.monotonic() > deadline:
            return
        time.sleep(0.2)


def write(url: str, table: pa.Table, batches: int = 4) -> ClickHouseSink:
    sink = open_destination(url, DestinationContext(lake=None))  # type: ignore[arg-type]
    assert isinstance(sink, ClickHouseSink)
    step = -(-table.num_rows // batches)
    run((table.slice(i, step) for i in range(0, table.num_rows, step)), sink)
    return sink


def test_flows_read_back_equal(clickhouse_server, clickhouse_database):
    url = clickhouse_server.url(clickhouse_database, "batch_rows=2000")
    table = flows()
    sink = write(url, table)
    assert sink.rows_inserted == table.num_rows and sink.inserts == 2  # 1,500-row batches, 2,000-row inserts
    columns = ch.raw_columns()
    select = ", ".join(f"hex({c.name})" if "FixedString" in c.type else c.name for c in columns if c.source is not None)
    got = query(url, f"SELECT {select} FROM flows_raw ORDER BY SequenceNum")
    expected_columns = []
    for c in columns:
        if c.source is None:
            continue
        values = table.column(c.source.name)
        if c.source.role.value == "address":
            expected_columns.append([v.hex().upper() if v is not None else None for v in values.to_pylist()])
        elif c.source.role.value == "time":
            expected_columns.append(values.cast(pa.int64()).to_pylist())
        else:
            expected_columns.append(values.to_pylist())
    assert got == list(zip(*expected_columns, strict=True))
    days = query(url, "SELECT DISTINCT Date, toDate(toDateTime(intDiv(TimeReceived, 1000000000))) FROM flows_raw")
    assert all(a == b for a, b in days)


def test_flows_5m_after_optimize_equals_an_independent_group_by(clickhouse_server, clickhouse_database):
    url = clickhouse_server.url(clickhouse_database, "batch_rows=1000")
    table = flows()
    write(url, table, batches=6)  # six inserts: six parts for the merge to sum
    optimize_final(url, clickhouse_database)
    totals = query(
        url,
        "SELECT min(arraySum(ETypeMap.Bytes) = Bytes AND arraySum(ETypeMap.Packets) = Packets "
        "AND arraySum(ETypeMap.Count) = Count) FROM flows_5m",
    )
    assert totals == [(1,)]  # every row's totals are its nested sums
    repeated = query(url, "SELECT count() FROM flows_5m GROUP BY Date, Timeslot, SrcAS, DstAS HAVING count() > 1")
    assert repeated == []  # as flow-pipeline's README shows: one row per (5-minute slot, SrcAS, DstAS)
    rollup = query(
        url,
        "SELECT Date, toUInt32(Timeslot), SrcAS, DstAS, ETypeMap.EType, ETypeMap.Bytes, ETypeMap.Packets, "
        "ETypeMap.Count FROM flows_5m ARRAY JOIN ETypeMap",
    )
    by_key = {(str(r[0]), *r[1:5]): r[5:] for r in rollup}
    assert len(by_key) == len(rollup)
    con = duckdb.connect()
    con.register("flows", table)
    independent = con.execute(
        """SELECT CAST(CAST(time_received AS DATE) AS VARCHAR),
                  CAST(epoch(time_bucket(INTERVAL 5 MINUTE, time_received)) AS UBIGINT),
                  coalesce(src_as, 0), coalesce(dst_as, 0), coalesce(etype, 0),
                  sum(bytes)::UBIGINT, sum(packets)::UBIGINT, count(*)
           FROM flows GROUP BY ALL"""
    ).fetchall()
    assert by_key == {r[:5]: r[5:] for r in independent}
    over_raw = query(
        url,
        "SELECT Date, toUInt32(toStartOfFiveMinute(toDateTime(intDiv(TimeReceived, 1000000000)))) AS slot, "
        "ifNull(SrcAS, 0) AS src, ifNull(DstAS, 0) AS dst, ifNull(EType, 0) AS etype, sum(Bytes), sum(Packets), "
        "count() FROM flows_raw GROUP BY Date, slot, src, dst, etype",
    )
    assert by_key == {(str(r[0]), *r[1:5]): r[5:] for r in over_raw}


@pytest.mark.slow
def test_a_restarted_server_is_retried_without_loss():
    for server in run_server():
        url = server.url("restart", "batch_rows=1000&retry_seconds=30")
        table = flows(3_000)
        sink = ClickHouseSink(url)
        sink.write(table.slice(0, 1_000))
        server.stop("KILL")
        restarter = threading.Timer(1.0, server.start)
        restarter.start()
        started = time.monotonic()
        sink.write(table.slice(1_000, 1_000))  # fails, retries until the server is back
        restarter.join()
        sink.write(table.slice(2_000))
        sink.close()
        assert sink.retries > 0 and time.monotonic() - started >= 1.0
        assert query(url, "SELECT count(), uniqExact(SequenceNum) FROM flows_raw") == [(3_000, 3_000)]
        assert any("inserts retried" in note for note in sink.notes())


def test_an_outage_longer_than_the_retry_budget_is_one_error():
    for server in run_server():
        sink = ClickHouseSink(server.url("gone"), InsertPolicy(batch_rows=10, retry_seconds=1.0))
        server.stop("KILL")
        with pytest.raises(FlowscopeError, match=r"failed for \d+ s .*: 6,000 rows not written"):
            sink.write(flows())
        sink.abort()


def test_server_down_at_start_and_wrong_user_are_one_line_errors(clickhouse_server):
    with pytest.raises(FlowscopeError, match=r"^cannot reach ClickHouse at 127\.0\.0\.1:\d+: Connection refused"):
        ClickHouseSink(f"clickhouse://127.0.0.1:{free_tcp_port()}/x")
    with pytest.raises(FlowscopeError, match="refused user 'nobody'"):
        ClickHouseSink(f"clickhouse://nobody@127.0.0.1:{clickhouse_server.port}/x")


WRITER = """
import sys
import numpy as np, pyarrow as pa
sys.path[:0] = sys.argv[2:]
from tests.sinks.test_clickhouse_sink import flows
from flowscope.sinks.clickhouse import ClickHouseSink
template = flows(300)
sink = ClickHouseSink(sys.argv[1])
position = 0
while True:
    sink.write(template.set_column(template.schema.get_field_index("sequence_num"), "sequence_num",
                                   pa.array(np.arange(position, position + 300, dtype=np.uint32))))
    position += 300
    print(position, sink.rows_inserted, flush=True)
"""


@pytest.mark.slow
def test_a_killed_writer_loses_at_most_its_buffer_and_duplicates_nothing(clickhouse_server, clickhouse_database):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    url = clickhouse_server.url(clickhouse_database, "batch_rows=1000")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, url, root, f"{root}/src"], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    assert writer.stdout is not None
    written = inserted = 0
    while inserted < 5_000:
        written, inserted = map(int, writer.stdout.readline().split())
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    stored = query(url, "SELECT count(), uniqExact(SequenceNum), max(SequenceNum) FROM flows_raw")[0]
    assert stored[0] == stored[1] >= inserted  # nothing twice; every acknowledged insert kept
    assert written - stored[0] < 1_000 + 300  # lost: at most the buffer (one batch and the table being added)
    assert stored[2] == stored[0] - 1  # a prefix of the stream
