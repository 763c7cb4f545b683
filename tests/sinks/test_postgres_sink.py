"""The PostgreSQL destination against a real server: rows back equal in day partitions, flows_5m equal to an
independent GROUP BY, checkpoint positions committed with the rows, retention, one-line errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner
from tests.sinks.test_clickhouse_sink import flows

from flowscope import addresses
from flowscope.cli import main
from flowscope.db import postgres as pg
from flowscope.errors import FlowscopeError
from flowscope.pipeline import Checkpoint, run
from flowscope.sinks import postgres_rollups
from flowscope.sinks.postgres import PostgresSink
from flowscope.sinks.registry import DestinationContext, open_destination
from flowscope.transforms.rollups import stores

pytestmark = pytest.mark.integration


def fetch(url: str, sql: str) -> list:
    with psycopg.connect(url) as con:
        return con.execute(sql).fetchall()


def test_flows_back_equal_in_day_partitions_and_flows_5m_equals_a_group_by(postgres_database):
    url = postgres_database + "?batch_rows=1000"
    table = flows()
    sink = open_destination(url, DestinationContext(lake=None))  # type: ignore[arg-type]
    assert isinstance(sink, PostgresSink)
    run((table.slice(i, 1500) for i in range(0, table.num_rows, 1500)), sink)
    assert sink.rows_committed == table.num_rows
    got = fetch(
        postgres_database,
        "SELECT sequence_num, host(src_addr), host(dst_addr), src_as, bytes, packets, community_id, "
        "(extract(epoch FROM time_flow_start) * 1e6)::bigint FROM flows ORDER BY sequence_num",
    )
    expected = zip(
        table.column("sequence_num").to_pylist(),
        addresses.format_text(table.column("src_addr")).to_pylist(),
        addresses.format_text(table.column("dst_addr")).to_pylist(),
        table.column("src_as").to_pylist(),
        table.column("bytes").to_pylist(),
        table.column("packets").to_pylist(),
        table.column("community_id").to_pylist(),
        [t // 1000 for t in table.column("time_flow_start").cast(pa.int64()).to_pylist()],
        strict=True,
    )
    assert got == list(expected)
    partitions = fetch(postgres_database, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'flows'::regclass")
    days = {t // 86_400_000_000_000 for t in table.column("time_received").cast(pa.int64()).to_pylist()}
    assert partitions == [(len(days),)]

    rollup = fetch(
        postgres_database,
        "SELECT extract(epoch FROM slot)::bigint, src_as, dst_as, etype, bytes, packets, flows FROM flows_5m",
    )
    con = duckdb.connect()
    con.register("flows", table)
    independent = con.execute(
        """SELECT epoch(time_bucket(INTERVAL 5 MINUTE, time_received))::BIGINT, coalesce(src_as, 0),
                  coalesce(dst_as, 0), coalesce(etype, 0), sum(bytes)::BIGINT, sum(packets)::BIGINT, count(*)
           FROM flows GROUP BY ALL"""
    ).fetchall()
    assert sorted(rollup) == sorted(independent)
    over_flows = fetch(
        postgres_database,
        "SELECT extract(epoch FROM date_bin('5 minutes', time_received, '1970-01-01'))::bigint, coalesce(src_as, 0), "
        "coalesce(dst_as, 0), coalesce(etype, 0), sum(bytes), sum(packets), count(*) FROM flows GROUP BY 1, 2, 3, 4",
    )
    assert sorted(rollup) == sorted(over_flows)


@pytest.mark.parametrize("hold_rows", [postgres_rollups.HOLD_ROWS, 300])
def test_store_rollups_equal_a_group_by_over_the_stored_flows(postgres_database, monkeypatch, hold_rows):
    """Several copies per transaction (their roll-up rows summed on the client before the commit; with a small
    ``HOLD_ROWS``, also sent part-way through it), 5m and 1h summed from the 1m rows: each ``rollup_*`` table
    equals ``db init``'s GROUP BY over the stored flows, run by PostgreSQL."""
    monkeypatch.setattr(postgres_rollups, "HOLD_ROWS", hold_rows)
    table = flows(5_000)
    rates = table.column("sampling_rate").to_numpy().copy()
    rates[np.arange(table.num_rows) % 5 == 1] = 0  # unknown rates: null and 0
    unknown = np.arange(table.num_rows) % 5 == 0
    table = table.set_column(table.schema.get_field_index("sampling_rate"), "sampling_rate",
                             pa.array(rates, mask=unknown))  # fmt: skip
    sink = PostgresSink(postgres_database + "?batch_rows=700")
    for start in range(0, table.num_rows, 700):  # a copy per write
        sink.write(table.slice(start, 700))
        if start == 2_800:
            sink.flush()
    sink.close()
    with psycopg.connect(postgres_database, autocommit=True) as con:
        for rollup in stores.store_rollups():
            name = stores.store_table(rollup.name)
            con.execute(f'CREATE TABLE "expected_{name}" (LIKE "{name}")')
            con.execute(
                stores.postgres_backfill(rollup).replace(f'INSERT INTO "{name}"', f'INSERT INTO "expected_{name}"')
            )
            difference = (f'(TABLE "{name}" EXCEPT ALL TABLE "expected_{name}") '
                          f'UNION ALL (TABLE "expected_{name}" EXCEPT ALL TABLE "{name}")')  # fmt: skip
            assert con.execute(f"SELECT count(*) FROM ({difference}) d").fetchone() == (0,), name
            assert con.execute(f'SELECT sum(flows), count(*) FROM "{name}"').fetchone()[0] == table.num_rows


def test_positions_are_committed_with_the_rows_and_an_abort_keeps_neither(postgres_database):
    table = flows(2_000)
    sink = PostgresSink(postgres_database)
    sink.write(table.slice(0, 1_000))
    sink.flush(Checkpoint(positions={"flows/0": 1_000, "flows/1": {"offset": 7}}))
    sink.write(table.slice(1_000))
    sink.flush()
    sink.write(table.slice(0, 500))
    sink.abort()
    assert pg.read_positions(postgres_database) == {"flows/0": 1_000, "flows/1": {"offset": 7}}
    assert fetch(postgres_database, "SELECT (SELECT count(*) FROM flows), (SELECT sum(flows) FROM flows_5m)") == [
        (2_000, 2_000)
    ]


def test_retention_drops_old_day_partitions(postgres_database):
    table = flows(1_000)  # 2024: far older than any retention
    old = PostgresSink(postgres_database)
    run([table], old)
    assert fetch(postgres_database, "SELECT count(*) FROM flows") == [(1_000,)]
    recent = table.set_column(
        table.schema.get_field_index("time_received"),
        "time_received",
        pa.array([datetime.now(UTC)] * table.num_rows, pa.timestamp("ns", tz="UTC")),
    )
    sink = PostgresSink(postgres_database + "?retention_days=3")
    run([recent], sink)
    assert fetch(postgres_database, "SELECT count(*) FROM flows") == [(1_000,)]
    assert fetch(postgres_database, "SELECT count(*), min(slot) > now() - interval '1 day' FROM flows_5m")[0][1]
    assert any("retention dropped flows_p2024" in note for note in sink.notes())


def _at(table: pa.Table, moment: datetime) -> pa.Table:
    """``table``'s flows received and started at ``moment``."""
    times = pa.array([moment] * table.num_rows, pa.timestamp("ns", tz="UTC"))
    for name in ("time_received", "time_flow_start"):
        table = table.set_column(table.schema.get_field_index(name), name, times)
    return table


def test_rollup_retention_keeps_the_rollups_longer_than_the_raw_flows(postgres_database):
    now = datetime.now(UTC)
    table = flows(3_000)
    old = _at(table.slice(0, 1_000), datetime(2024, 3, 1, tzinfo=UTC))  # older than both retentions
    unknown_start = np.arange(1_000) < 10  # ten of them of unknown start: a roll-up row of no time
    start = pc.if_else(pa.array(unknown_start), None, old.column("time_flow_start"))
    old = old.set_column(old.schema.get_field_index("time_flow_start"), "time_flow_start", start)
    weeks = _at(table.slice(1_000, 1_000), now - timedelta(days=10))  # older than the raw flows' 3 days only
    run([old, weeks, _at(table.slice(2_000), now)], PostgresSink(postgres_database))
    tables = [name for name, _ in pg.rollup_tables()]
    totals = " + ".join(f'(SELECT sum(flows) FROM "{name}")' for name in tables)
    assert fetch(postgres_database, f"SELECT {totals}") == [(len(tables) * 3_000,)]

    sink = PostgresSink(postgres_database + "?retention_days=3&rollup_retention_days=30")
    run([], sink)
    assert fetch(postgres_database, "SELECT count(*) FROM flows") == [(1_000,)]
    for name in tables:
        kept = fetch(postgres_database, f'SELECT sum(flows) FROM "{name}"')
        assert kept == [(2_010 if name.startswith("rollup_") else 2_000,)], name  # flows_5m's slot: time_received
    assert any("retention deleted" in note and "roll-up rows" in note for note in sink.notes())
    for params in ("rollup_retention_days=30", "retention_days=31&rollup_retention_days=30"):
        with pytest.raises(FlowscopeError, match="would miss flows the raw table still holds"):
            PostgresSink(f"{postgres_database}?{params}")


def test_db_init_twice_and_a_changed_column(postgres_database):
    first = CliRunner().invoke(main, ["db", "init", postgres_database])
    assert first.exit_code == 0 and "created table flows" in first.output
    again = CliRunner().invoke(main, ["db", "init", postgres_database])
    assert again.exit_code == 0 and "up to date" in again.output
    with psycopg.connect(postgres_database, autocommit=True) as con:
        con.execute("ALTER TABLE flows ALTER COLUMN dst_port TYPE bigint")
    changed = CliRunner().invoke(main, ["db", "init", postgres_database])
    assert changed.exit_code == 2
    assert "column flows.dst_port is bigint, flowscope writes integer" in changed.output
    assert changed.output.count("\n") == 1


def test_server_down_and_wrong_role_are_one_line_errors(postgres_server):
    with pytest.raises(FlowscopeError, match=r"cannot connect to PostgreSQL at postgresql://postgres@127\.0\.0\.1:9/x"):
        PostgresSink("postgresql://postgres@127.0.0.1:9/x")
    base = postgres_server.replace("postgresql://postgres@", "postgresql://nobody_here@")
    with pytest.raises(FlowscopeError, match="refused the login"):
        PostgresSink(base)


WRITER = """
import sys
import numpy as np, pyarrow as pa
sys.path[:0] = sys.argv[3:]
from tests.sinks.test_clickhouse_sink import flows
from flowscope.pipeline import Checkpoint
from flowscope.sinks.postgres import PostgresSink
template = flows(500)
sink = PostgresSink(sys.argv[1])
position = int(sys.argv[2])
while True:  # a consumer: each batch of 500 messages, then its offset committed with it
    batch = template.set_column(template.schema.get_field_index("sequence_num"), "sequence_num",
                                pa.array(np.arange(position, position + 500, dtype=np.uint32)))
    sink.write(batch)
    position += 500
    sink.flush(Checkpoint(positions={"flows/0": position}))
    print(position, flush=True)
"""


@pytest.mark.slow
def test_a_killed_writer_leaves_exactly_the_rows_its_committed_positions_stand_for(postgres_database):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    paths = [root, f"{root}/src"]
    writer = subprocess.Popen([sys.executable, "-c", WRITER, postgres_database, "0", *paths], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    assert writer.stdout is not None
    while int(writer.stdout.readline() or 0) < 5_000:  # at least ten commits, then kill it mid-stream
        pass
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    resume = pg.read_positions(postgres_database)["flows/0"]
    stored = fetch(postgres_database, "SELECT count(*), count(DISTINCT sequence_num), max(sequence_num) FROM flows")
    assert stored == [(resume, resume, resume - 1)]  # exactly the rows its committed positions stand for
    for table, _ in pg.rollup_tables():  # and every roll-up counts exactly them
        assert fetch(postgres_database, f'SELECT sum(flows) FROM "{table}"') == [(resume,)], table


@pytest.mark.slow
def test_a_restarted_server_is_retried_and_the_open_transaction_sent_again():
    import shutil
    import subprocess
    import tempfile
    import threading
    from pathlib import Path

    from tests.clickhouse_server import free_tcp_port
    from tests.conftest import ROOT, skip_or_fail

    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        skip_or_fail("no PostgreSQL server binaries (scripts/system-deps.sh installs them)")
    home = Path(tempfile.mkdtemp(prefix="flowscope-pg-restart-", dir="/tmp"))
    home.chmod(0o755)  # reachable by the postgres user when the tests run as root
    script, port = str(ROOT / "scripts" / "postgres.sh"), str(free_tcp_port())

    def server(*action: str) -> None:
        subprocess.run(["bash", script, *action], capture_output=True, timeout=120, check=True)

    try:
        server("start", str(home / "pg"), port)
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres?batch_rows=500"
        table = flows(2_000)
        sink = PostgresSink(url)
        sink.write(table.slice(0, 1_000))
        sink.flush()
        sink.write(table.slice(1_000, 600))  # 600 rows copied into the open transaction
        server("stop", str(home / "pg"))
        restart = threading.Timer(1.0, server, ("start", str(home / "pg"), port))
        restart.start()
        sink.write(table.slice(1_600))
        sink.close()
        restart.join()
        assert sink.retries > 0 and sink.most_rows_replayed == 600
        assert fetch(url.partition("?")[0], "SELECT count(*), count(DISTINCT sequence_num) FROM flows") == [
            (2_000, 2_000)
        ]
        for rollup, _ in pg.rollup_tables():  # the replay summed the open transaction's roll-ups once
            assert fetch(url.partition("?")[0], f'SELECT sum(flows) FROM "{rollup}"') == [(2_000,)], rollup
    finally:
        subprocess.run(["bash", script, "stop", str(home / "pg")], capture_output=True, timeout=120)
        shutil.rmtree(home, ignore_errors=True)
