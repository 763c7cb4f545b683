"""Crash consistency of every destination and long-running command (issue 16): ``crashloop`` kills each one with
SIGKILL at random points, restarts it and compares what the destination holds with the truth.

CI runs ``CRASHLOOP_ITERATIONS`` iterations per destination (default 1 for commands run to the end, each
iteration costing two runs, 2 for the collector streams, whose iterations are cheap); the recorded runs in
docs/RELIABILITY.md use 20:

    CRASHLOOP_ITERATIONS=20 pytest -o addopts="" -m "slow" -s tests/reliability/test_crashloop.py
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from tests.clickhouse_server import clickhouse_server
from tests.elasticsearch_server import elasticsearch_server
from tests.helpers import flows
from tests.kafka.conftest import kafka
from tests.materialize.conftest import postgres_server
from tests.readers.test_inputs import write_flow_csv
from tests.reliability.crashloop import (
    FLOWSCOPE,
    BatchTarget,
    Result,
    StreamTarget,
    Tally,
    batch_loop,
    stream_loop,
)

from flowscope.demo.pcap import write_synthetic_pcap
from flowscope.lake import Lake

__all__ = ["clickhouse_server", "elasticsearch_server", "kafka", "postgres_server"]

pytestmark = pytest.mark.slow
ITERATIONS = int(os.environ.get("CRASHLOOP_ITERATIONS", "1"))
STREAM_ITERATIONS = int(os.environ.get("CRASHLOOP_ITERATIONS", "2"))


def check(result: Result, iterations: int = ITERATIONS) -> None:
    print("\n" + result.report())
    report = os.environ.get("CRASHLOOP_REPORT")
    if report:
        with open(report, "a") as out:
            out.write(result.report() + "\n")
    assert result.iterations == iterations and not result.failures, result.report()


def lake_tally(lake: Path, expected: int) -> Tally:
    files = [str(p) for p in Lake.at(lake).files("flows")]
    if not files:
        return Tally(expected, 0, 0)
    [(stored, distinct)] = parquet_sql("SELECT count(*), count(DISTINCT bytes) FROM read_parquet($f)", files)
    return Tally(expected, stored, distinct)


def parquet_sql(query: str, files: list[str]) -> list[tuple]:
    with duckdb.connect() as con:
        return con.execute(query, {"f": files}).fetchall()


def lake_opened(here: Path) -> bool:
    """The command opened its lake destination (start-up and imports are over)."""
    return (here / "lake").is_dir()


def lake_ids(lake: Path) -> np.ndarray:
    files = [str(p) for p in Lake.at(lake).files("flows")]
    if not files:
        return np.zeros(0, np.uint64)
    with duckdb.connect() as con:
        return con.execute("SELECT bytes FROM read_parquet($f)", {"f": files}).fetchnumpy()["bytes"]


# ---- batch commands ------------------------------------------------------------------------------------------

CSV_FILES, CSV_ROWS = 4, 60_000


@pytest.fixture(scope="module")
def csv_inputs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("csv")
    return [str(write_flow_csv(folder / f"{i}.csv", CSV_ROWS, first_id=CSV_ROWS * i)) for i in range(CSV_FILES)]


def test_read_into_the_lake(tmp_path: Path, csv_inputs: list[str]) -> None:
    check(
        batch_loop(
            BatchTarget(
                "read -> lake",
                prepare=lambda here: None,
                command=lambda here: [*FLOWSCOPE, "--lake", str(here / "lake"), "read", *csv_inputs],
                tally=lambda here: lake_tally(here / "lake", CSV_FILES * CSV_ROWS),
                ready=lake_opened,
            ),
            tmp_path,
            ITERATIONS,
        )
    )


def test_read_into_a_file(tmp_path: Path, csv_inputs: list[str]) -> None:
    expected = CSV_FILES * CSV_ROWS

    def file_tally(here: Path) -> Tally:
        table = pq.read_table(here / "out.parquet", columns=["bytes"])
        return Tally(expected, table.num_rows, len(np.unique(table.column("bytes").to_numpy())))

    def whole_or_absent(here: Path) -> list[str]:
        out = here / "out.parquet"
        if out.exists() and pq.read_metadata(out).num_rows != expected:
            return [f"a killed run left a partial {out.name}"]
        return []

    check(
        batch_loop(
            BatchTarget(
                "read -o FILE.parquet",
                prepare=lambda here: None,
                command=lambda here: [
                    *FLOWSCOPE,
                    "--lake",
                    str(here / "lake"),
                    "read",
                    *csv_inputs,
                    "-o",
                    str(here / "out.parquet"),
                ],
                tally=file_tally,
                after_kill=whole_or_absent,
                ready=lambda here: (here / ".out.parquet.tmp").exists(),
            ),
            tmp_path,
            ITERATIONS,
        )
    )


@pytest.fixture(scope="module")
def capture_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("captures") / "2024-05-01"
    folder.mkdir()
    for i in range(8):
        write_synthetic_pcap(folder / f"cap-{i:02d}.pcap", packets=40_000, flows=2_000, seed=i)
    return folder.parent


def first_is_truth(measure):  # type: ignore[no-untyped-def]
    """A tally whose truth is what the uninterrupted baseline run left (``batch_loop`` tallies it first):
    ``measure(here)`` returns a comparable summary and a row count."""
    truth: list = []

    def tally(here: Path) -> Tally:
        summary, rows = measure(here)
        if not truth:
            truth.append((summary, rows))
        expected = truth[0][1]
        if summary != truth[0][0] and rows == expected:  # as many rows, other totals: count one as lost
            return Tally(expected, rows, rows - 1)
        return Tally(expected, rows, min(rows, expected))

    return tally


def test_watch(tmp_path: Path, capture_folder: Path) -> None:
    def packets(here: Path) -> tuple[object, int]:
        files = [str(p) for p in Lake.at(here / "lake").files("flows")]
        [(packets, octets, count)] = parquet_sql(
            "SELECT sum(packets), sum(bytes), count(*) FROM read_parquet($f)", files
        )
        return (packets, octets), count

    check(
        batch_loop(
            BatchTarget(
                "watch --once -> lake",
                prepare=lambda here: None,
                command=lambda here: [
                    *FLOWSCOPE,
                    "--lake",
                    str(here / "lake"),
                    "watch",
                    str(capture_folder),
                    "--once",
                    "--settle",
                    "0",
                ],
                tally=first_is_truth(packets),
                ready=lake_opened,
            ),
            tmp_path,
            ITERATIONS,
        )
    )


def test_materialize_into_sqlite(tmp_path: Path) -> None:
    import sqlite3

    from flowscope.lake.writer import LakeWriter

    lake = tmp_path / "lake"
    with LakeWriter(lake) as writer:
        for start in range(0, 300_000, 50_000):
            writer.write(flows(50_000, first_id=start))

    def rows(here: Path) -> tuple[object, int]:
        with sqlite3.connect(here / "t.db") as con:
            count, total, packets = con.execute("SELECT count(*), sum(bytes), sum(packets) FROM t").fetchone()
        return (total, packets), count

    check(
        batch_loop(
            BatchTarget(
                "materialize pairs -> sqlite",
                prepare=lambda here: None,
                command=lambda here: [
                    *FLOWSCOPE,
                    "--lake",
                    str(lake),
                    "materialize",
                    "pairs",
                    "--to",
                    f"sqlite:///{here}/t.db",
                    "--table",
                    "t",
                ],
                tally=first_is_truth(rows),
                ready=lambda here: (here / "t.db").exists(),
            ),
            tmp_path / "loop",
            ITERATIONS,
        )
    )


# ---- Kafka consume ------------------------------------------------------------------------------------------

KAFKA_FLOWS = 200_000


@pytest.fixture(scope="module")
def produced(kafka: str) -> str:
    """A topic holding KAFKA_FLOWS flows with ids 0..n-1 in ``bytes``, 16 per message."""
    from flowscope.kafka.sink import KafkaSink
    from flowscope.kafka.url import parse

    topic = f"crashloop-{uuid.uuid4().hex[:8]}"
    sink = KafkaSink(parse(f"kafka://{kafka}/{topic}?key=none&per_message=16"))
    for first in range(0, KAFKA_FLOWS, 50_000):
        sink.write(flows(50_000, first_id=first))
    sink.close()
    return topic


def consume(kafka: str, topic: str, here: Path, *to: str) -> list[str]:
    group = f"g-{here.parent.name}-{here.name}"
    command = [*FLOWSCOPE, "--lake", str(here / "lake"), "consume", f"kafka://{kafka}/{topic}", "--group", group]
    return [*command, "--from-beginning", "--exit-idle", "3", "--flush", "0.5", *to]


@pytest.mark.integration
def test_consume_into_the_lake(tmp_path: Path, kafka: str, produced: str) -> None:
    check(
        batch_loop(
            BatchTarget(
                "consume -> lake",
                prepare=lambda here: None,
                command=lambda here: consume(kafka, produced, here),
                tally=lambda here: lake_tally(here / "lake", KAFKA_FLOWS),
                ready=lambda here: bool(list((here / "lake").glob("flows/**/*.parquet"))),
            ),
            tmp_path,
            ITERATIONS,
        ),
        ITERATIONS,
    )


@pytest.mark.integration
def test_consume_into_postgresql(tmp_path: Path, kafka: str, produced: str, postgres_server: str) -> None:
    import psycopg

    base = postgres_server.rpartition("/")[0]

    run = uuid.uuid4().hex[:8]

    def database(here: Path) -> str:
        return f"crash_{run}_{here.name}"

    created: list[str] = []

    def prepare(here: Path) -> None:
        with psycopg.connect(postgres_server, autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{database(here)}"')
        created.append(database(here))

    def tally(here: Path) -> Tally:
        with psycopg.connect(f"{base}/{database(here)}") as con:
            stored, distinct = con.execute("SELECT count(*), count(DISTINCT bytes) FROM flows").fetchone()  # type: ignore[misc]
        return Tally(KAFKA_FLOWS, stored, distinct)

    try:
        result = batch_loop(
            BatchTarget(
                "consume -> postgresql",
                prepare=prepare,
                command=lambda here: consume(kafka, produced, here, "--to", f"{base}/{database(here)}"),
                tally=tally,
            ),
            tmp_path,
            ITERATIONS,
        )
    finally:
        drop_databases(postgres_server, created)
    check(result, ITERATIONS)


def drop_databases(server: str, names: list[str]) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as con:
        for name in names:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---- collect -> destination ---------------------------------------------------------------------------------


def test_collect_into_the_lake(tmp_path: Path) -> None:
    check(stream_loop(StreamTarget("collect -> lake", lambda work: [], lambda work: lake_ids(work / "lake")),
                      tmp_path, STREAM_ITERATIONS), STREAM_ITERATIONS)  # fmt: skip


@pytest.mark.integration
def test_collect_into_postgresql(tmp_path: Path, postgres_server: str) -> None:
    import psycopg

    name = f"collect_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    url = f"{postgres_server.rpartition('/')[0]}/{name}"

    def ids(work: Path) -> np.ndarray:
        with psycopg.connect(url) as con:
            return np.array([r[0] for r in con.execute("SELECT bytes FROM flows").fetchall()], np.int64)

    try:
        result = stream_loop(
            StreamTarget("collect -> postgresql", lambda work: ["--to", url], ids), tmp_path, STREAM_ITERATIONS
        )
    finally:
        drop_databases(postgres_server, [name])
    check(result, STREAM_ITERATIONS)


@pytest.mark.integration
def test_collect_into_clickhouse(tmp_path: Path, clickhouse_server) -> None:  # type: ignore[no-untyped-def]
    from flowscope.db import clickhouse as ch

    url = clickhouse_server.url(f"t_{uuid.uuid4().hex[:10]}")

    def ids(work: Path) -> np.ndarray:
        client = ch.connect(ch.ClickHouseURL.parse(url))
        try:
            return np.array([r[0] for r in client.execute("SELECT Bytes FROM flows_raw")], np.int64)
        finally:
            client.disconnect()

    check(
        stream_loop(
            StreamTarget("collect -> clickhouse", lambda work: ["--to", url], ids), tmp_path, STREAM_ITERATIONS
        ),
        STREAM_ITERATIONS,
    )


@pytest.mark.integration
def test_collect_into_elasticsearch(tmp_path: Path, elasticsearch_server: str) -> None:
    from elasticsearch import Elasticsearch

    index = f"crash{uuid.uuid4().hex[:8]}"
    url = f"elasticsearch://{elasticsearch_server.removeprefix('http://')}/{index}"

    def ids(work: Path) -> np.ndarray:
        client = Elasticsearch(elasticsearch_server)
        client.indices.refresh(index=f"{index}-*")
        found: list[int] = []
        after = None
        while True:
            page = client.search(index=f"{index}-*", size=5_000, sort=[{"bytes": "asc"}], source=["bytes"],
                                 search_after=after)["hits"]["hits"]  # fmt: skip
            if not page:
                return np.array(found, np.int64)
            found += [hit["_source"]["bytes"] for hit in page]
            after = page[-1]["sort"]

    check(
        stream_loop(
            StreamTarget("collect -> elasticsearch", lambda work: ["--to", url], ids, rate=100.0),
            tmp_path,
            STREAM_ITERATIONS,
        ),
        STREAM_ITERATIONS,
    )
