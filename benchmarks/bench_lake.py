"""Lake write and query throughput on one core, against DuckDB doing the same job natively.

    python benchmarks/bench_lake.py [--rows 10000000] [--workdir /tmp/flowscope-bench-lake]

Write: Arrow batches -> hour-partitioned Parquet lake (flowscope LakeWriter) vs DuckDB's
own partitioned ``COPY ... TO (FORMAT parquet, PARTITION_BY (date, hour))`` of the same
in-memory table. Query: top-10 talkers over the stored flows through ``flowscope top``'s
SQL on the lake vs the same SQL on a native in-memory DuckDB table. Targets (issue 2):
>= 5 M rows/s written, top-10 over 10 M flows in < 1 s, one core.
"""

from __future__ import annotations

import argparse

import pyarrow as pa
import pyarrow.parquet as pq

from common import fresh_flows_parquet, machine, measure_in_subprocess, print_comparison, timed

ONE_CORE = 1


def _one_core() -> None:
    pa.set_cpu_count(ONE_CORE)
    pa.set_io_thread_count(ONE_CORE)


def write_with_flowscope(source: str, lake: str) -> tuple[float, int]:
    from flowscope.lake import LakeWriter

    _one_core()
    batches = pq.read_table(source).to_batches(max_chunksize=256_000)

    def write() -> int:
        with LakeWriter(lake, max_rows=4_000_000) as writer:
            for batch in batches:
                writer.write(pa.Table.from_batches([batch]))
        return writer.rows_written

    return timed(write)


def write_with_duckdb(source: str, target: str) -> tuple[float, int]:
    import duckdb

    _one_core()
    table = pq.read_table(source)
    con = duckdb.connect()
    con.execute(f"SET threads = {ONE_CORE}")
    con.execute("SET TimeZone = 'UTC'")
    con.register("input", table)

    def write() -> int:
        con.execute(
            "COPY (SELECT *, CAST(time_flow_start::TIMESTAMPTZ AS DATE) AS date, "
            "hour(time_flow_start::TIMESTAMPTZ) AS hour FROM input) "
            f"TO '{target}' (FORMAT parquet, PARTITION_BY (date, hour), COMPRESSION zstd)"
        )
        return table.num_rows

    return timed(write)


def top_with_flowscope(lake: str) -> tuple[float, int]:
    from flowscope.query import open_lake
    from flowscope.query.reports.top import top_sql

    with open_lake(lake, threads=ONE_CORE) as con:
        rows = con.execute("SELECT count(*) FROM flows").fetchone()[0]
        seconds, _ = timed(lambda: len(con.execute(top_sql("src", "bytes", 10)).fetchall()))
    return seconds, rows


def top_with_duckdb_table(source: str) -> tuple[float, int]:
    import duckdb

    from flowscope.query.reports.top import top_sql

    con = duckdb.connect()
    con.execute(f"SET threads = {ONE_CORE}")
    con.execute(f"CREATE TABLE flows AS SELECT *, CAST(time_flow_start AS DATE) AS date FROM read_parquet('{source}')")
    rows = con.execute("SELECT count(*) FROM flows").fetchone()[0]
    seconds, _ = timed(lambda: len(con.execute(top_sql("src", "bytes", 10)).fetchall()))
    return seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--workdir", default="/tmp/flowscope-bench-lake")
    args = parser.parse_args()

    work, source = fresh_flows_parquet(args.workdir, args.rows)
    print(f"machine: {machine()}; {args.rows:,} synthetic flows; one core for every step")

    ours = measure_in_subprocess(
        "flowscope LakeWriter", "bench_lake", "write_with_flowscope", str(source), str(work / "lake")
    )
    peer = measure_in_subprocess(
        "duckdb COPY PARTITION_BY", "bench_lake", "write_with_duckdb", str(source), str(work / "duck")
    )
    print_comparison("lake write (Arrow batches -> partitioned Parquet)", "rows", ours, peer)

    ours = measure_in_subprocess("flowscope top (Parquet lake)", "bench_lake", "top_with_flowscope", str(work / "lake"))
    peer = measure_in_subprocess("duckdb top (native table)", "bench_lake", "top_with_duckdb_table", str(source))
    print_comparison(f"top-10 talkers by bytes over {ours.units:,} flows", "flows", ours, peer)


if __name__ == "__main__":
    main()
