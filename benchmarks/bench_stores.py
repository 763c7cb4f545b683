"""Flow stores: flowscope's ClickHouse and PostgreSQL destinations against the servers' own bulk loaders.

    python benchmarks/bench_stores.py [--rows 2000000] [--postgres postgresql://postgres@127.0.0.1:5432/test]
                                      [--workdir /tmp/flowscope-bench-stores]

Synthetic flows (``flowscope.demo``) are written once to Parquet; then, each step in its own process:
- ClickHouse (a private Debian clickhouse-server started by ``scripts/clickhouse.sh``): flowscope's sink
  (Parquet -> Arrow -> Native blocks -> ``flows_raw``, whose view fills ``flows_5m``) vs ``clickhouse-client``
  inserting the same rows, read back from ``flows_raw`` as Native and as TSV files, into an identical
  database (same tables and view, so the server does the same work);
- PostgreSQL: flowscope's sink (binary COPY into the day-partitioned ``flows`` plus the ``flows_5m`` upsert,
  one transaction per batch) vs ``psql \\copy`` of the same rows as CSV (exported from flowscope's table)
  into an identical partitioned ``flows`` (no roll-up: the peer only loads);
- top-10 sources by bytes over the stored flows: ``flowscope top --from clickhouse://`` vs the lake;
- Elasticsearch (noida-db, the Elasticsearch 8 API on 127.0.0.1; ``--es-rows``): flowscope's sink (NDJSON
  rendered by DuckDB, one bulk request per 20 000 documents) vs the official client's ``helpers.bulk`` fed
  one Python dict per document (addresses as text, times as ISO strings, as the sink sends them).
The rates are rows per wall second, server included (the servers share the machine's cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq

from common import Measurement, fresh_flows_parquet, machine, measure_in_subprocess, print_comparison, run_tool, timed

ROOT = Path(__file__).resolve().parents[1]
CH_SCRIPT = ROOT / "scripts" / "clickhouse.sh"


def sink_step(source: str, url: str) -> tuple[float, int]:
    """flowscope: the Parquet file's flows through a destination sink (as ``read --to URL`` writes them)."""
    import pyarrow as pa

    from flowscope.pipeline import run
    from flowscope.sinks.registry import DestinationContext, open_destination

    batches = pq.read_table(source).to_batches(max_chunksize=100_000)

    def write() -> int:
        sink = open_destination(url, DestinationContext(lake=None))  # type: ignore[arg-type]
        return run((pa.Table.from_batches([b]) for b in batches), sink).rows

    return timed(write)


def top_step(source: str, lake: str) -> tuple[float, int]:
    """``flowscope top`` (top-10 sources by bytes) on the lake (``source`` = lake) or a database URL."""
    from flowscope.query import open_lake
    from flowscope.query.dialects import dialect_for
    from flowscope.query.reports.top import top_sql
    from flowscope.query.stores import run_sql

    sql = top_sql("src", "bytes", 10, dialect=dialect_for(source))
    if source == "lake":
        with open_lake(lake) as con:
            return timed(lambda: len(con.execute(sql).fetchall()))
    return timed(lambda: run_sql(source, sql).num_rows)


def es_bulk_step(source: str, endpoint: str) -> tuple[float, int]:
    """The peer: ``helpers.bulk`` with one dict per document, built from the same rows (not timed)."""
    from elasticsearch import Elasticsearch, helpers

    from flowscope.db.elasticsearch import bulk_lines

    table = pq.read_table(source)
    docs = []
    for line in bulk_lines(table, "peer").to_pylist():
        action, document = line.splitlines()
        docs.append({"_index": json.loads(action)["index"]["_index"], "_source": json.loads(document)})
    client = Elasticsearch(endpoint, request_timeout=300)
    return timed(lambda: helpers.bulk(client, docs, chunk_size=20_000)[0])


def elasticsearch(work: Path, source: Path, rows: int) -> None:
    port = _free_port()
    binary = Path(sys_python()).parent / "noida-db"
    server = subprocess.Popen(
        ["timeout", "1800", str(binary), "start", "--data-dir", str(work / "es"), "--host", "127.0.0.1",
         "--only", "elasticsearch", "--elasticsearch-port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(2)
        ours = measure_in_subprocess("flowscope sink (DuckDB NDJSON)", "bench_stores", "sink_step", str(source),
                                     f"elasticsearch://127.0.0.1:{port}/fs")  # fmt: skip
        peer = measure_in_subprocess("helpers.bulk (a dict per document)", "bench_stores", "es_bulk_step",
                                     str(source), f"http://127.0.0.1:{port}")  # fmt: skip
        print_comparison(f"Elasticsearch bulk (noida-db), {rows:,} flows", "docs", ours, peer)
    finally:
        server.terminate()
        server.wait(timeout=60)


def run_timed(command: list[str], stdin: Path) -> float:
    """Wall seconds of ``command`` reading ``stdin`` (the server's work included)."""
    started = time.perf_counter()
    with open(stdin, "rb") as data:
        subprocess.run(command, stdin=data, check=True, capture_output=True)
    return time.perf_counter() - started


def clickhouse(work: Path, source: Path, rows: int) -> None:
    tcp, http = _free_port(), _free_port()
    subprocess.run(["bash", str(CH_SCRIPT), "start", str(work / "ch"), str(tcp), str(http)],
                   capture_output=True, text=True, check=True)  # fmt: skip
    client = ["clickhouse-client", "--host", "127.0.0.1", "--port", str(tcp)]
    try:
        ours = measure_in_subprocess("flowscope sink (Native blocks)", "bench_stores", "sink_step", str(source),
                                     f"clickhouse://127.0.0.1:{tcp}/fs?batch_rows=500000")  # fmt: skip
        subprocess.run([sys_python(), "-m", "flowscope", "db", "init", f"clickhouse://127.0.0.1:{tcp}/peer"],
                       check=True, capture_output=True)  # fmt: skip
        for fmt in ("Native", "TSV"):
            dump = work / f"rows.{fmt.lower()}"
            with open(dump, "wb") as out:
                subprocess.run([*client, "-q", f"SELECT * FROM fs.flows_raw FORMAT {fmt}"], stdout=out, check=True)
            subprocess.run([*client, "-q", "TRUNCATE TABLE peer.flows_raw"], check=True)
            subprocess.run([*client, "-q", "TRUNCATE TABLE peer.flows_5m"], check=True)
            peer = Measurement(f"clickhouse-client {fmt}", run_timed(
                [*client, "-q", f"INSERT INTO peer.flows_raw FORMAT {fmt}"], dump), rows, 0.0)  # fmt: skip
            print_comparison(f"ClickHouse insert, {rows:,} flows (flows_raw + flows_5m view)", "rows", ours, peer)
        lake = work / "lake"
        sink_step(str(source), f"lake:{lake}")
        on_ch = measure_in_subprocess("flowscope top --from clickhouse://", "bench_stores", "top_step",
                                      f"clickhouse://127.0.0.1:{tcp}/fs", str(lake))  # fmt: skip
        on_lake = measure_in_subprocess("flowscope top (lake)", "bench_stores", "top_step", "lake", str(lake))
        on_ch.units = on_lake.units = rows
        print_comparison(f"top-10 sources by bytes over {rows:,} flows", "flows", on_ch, on_lake)
    finally:
        subprocess.run(["bash", str(CH_SCRIPT), "stop", str(work / "ch")], capture_output=True)


def postgres(work: Path, source: Path, rows: int, server: str) -> None:
    import psycopg

    base = server.rpartition("/")[0]
    # Databases of this run only: a fixed name would drop another run's (or a user's) database of that name.
    ours_db, peer_db = f"flowscope_bench_{os.getpid()}_fs", f"flowscope_bench_{os.getpid()}_peer"
    with psycopg.connect(server, autocommit=True) as con:
        for db in (ours_db, peer_db):
            con.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            con.execute(f"CREATE DATABASE {db}")
    try:
        ours = measure_in_subprocess("flowscope sink (binary COPY + roll-up)", "bench_stores", "sink_step",
                                     str(source), f"{base}/{ours_db}")  # fmt: skip
        csv = work / "rows.csv"
        subprocess.run(["psql", f"{base}/{ours_db}", "-q", "-c", f"\\copy (SELECT * FROM flows) TO '{csv}' CSV"],
                       check=True)  # fmt: skip
        with psycopg.connect(f"{base}/{ours_db}") as con:
            days = [
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT date_trunc('day', time_received AT TIME ZONE 'UTC')::date FROM flows"
                ).fetchall()
            ]
        from flowscope.db import postgres as pg

        with psycopg.connect(f"{base}/{peer_db}") as con, con.cursor() as cursor:
            cursor.execute(pg.flows_ddl())
            pg.create_partitions(cursor, days)
        command = ["psql", f"{base}/{peer_db}", "-q", "-c", f"\\copy flows FROM '{csv}' CSV"]
        tool = run_tool(command)
        peer = Measurement("psql \\copy CSV (partitioned flows)", tool.seconds, rows, tool.peak_rss_mib)
        print_comparison(f"PostgreSQL load, {rows:,} flows", "rows", ours, peer)
    finally:
        with psycopg.connect(server, autocommit=True) as con:
            for db in (ours_db, peer_db):
                con.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def sys_python() -> str:
    import sys

    return sys.executable


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--workdir", default="/tmp/flowscope-bench-stores")
    parser.add_argument("--only", choices=("clickhouse", "postgresql", "elasticsearch"))
    parser.add_argument("--es-rows", type=int, default=100_000, help="Flows for the (slow) Elasticsearch step.")
    args = parser.parse_args()
    work, source = fresh_flows_parquet(args.workdir, args.rows)
    print(f"machine: {machine()}; {args.rows:,} synthetic flows")
    if args.only in (None, "clickhouse"):
        clickhouse(work, source, args.rows)
    if args.only in (None, "postgresql"):
        postgres(work, source, args.rows, args.postgres)
    if args.only in (None, "elasticsearch"):
        es_source = work / "es-input.parquet"
        pq.write_table(pq.read_table(source).slice(0, args.es_rows), es_source)
        elasticsearch(work, es_source, min(args.rows, args.es_rows))


if __name__ == "__main__":
    main()
