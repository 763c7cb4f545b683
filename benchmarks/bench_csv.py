"""Flow CSV ingest + pairs reduction (flowscope vs DuckDB) and materialize into SQLite and PostgreSQL.

    python benchmarks/bench_csv.py --rows 5000000 [--postgres postgresql://postgres@127.0.0.1:5432/test]

Input: a generated 11-column CSV in the Kaggle "87 apps" cut (Source.IP, ..., Timestamp as
``26/04/201711:11:17``, Flow.Duration in microseconds): realistic (50,000 clients) and hostile (every
record a pair of fresh random IPv6 addresses). Both sides run as fresh processes from the command
line, round-robin, median of ``--rounds``, and produce one row per (source, source port, destination,
destination port) with duration, both directions' packets and bytes summed: ``flowscope read CSV
--reduce pairs -o pairs.parquet`` (which reduces each batch read, as an ingest reduction does), the same with
``--reduce-whole`` (one row per pair, as DuckDB) and DuckDB's
``read_csv`` + the same ``GROUP BY`` on one thread into Parquet (issue 17's peer); the packet and byte
totals must agree.
The materialize steps read the CSV into a lake, then time ``flowscope materialize pairs`` into a new SQLite
table (the whole command, median of ``--rounds``; ``--hostile``: every record a pair of fresh IPv6 addresses),
and ``flowscope materialize`` into PostgreSQL: ``pairs`` and ``services_by_day`` into new tables (the whole
view computed over the lake: ``pairs`` in process, ``services_by_day`` by DuckDB; binary COPY with addresses
as inet, primary key built after the load), and
``pairs`` again after 100 k more rows landed (only the keys those rows hold are recomputed and upserted).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from common import flowscope_command, machine, measure_in_subprocess, print_runs, run_rounds, timed

HEADER = [
    "Source.IP", "Source.Port", "Destination.IP", "Destination.Port", "Protocol", "Timestamp", "Flow.Duration",
    "Total.Fwd.Packets", "Total.Backward.Packets", "Total.Length.of.Fwd.Packets", "Total.Length.of.Bwd.Packets",
]  # fmt: skip
KEY = ["Source.IP", "Source.Port", "Destination.IP", "Destination.Port"]
CHUNK = 1_000_000


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """About ``rows / 5`` distinct pairs: clients talk to a few thousand servers, repeats collapse."""
    rng = np.random.default_rng(seed)
    clients = pa.array([f"10.{a}.{b}.{c}" for a, b, c in rng.integers(0, 256, (50_000, 3))])
    servers = pa.array([f"172.{16 + a % 16}.{b}.{c}" for a, b, c in rng.integers(0, 256, (3_000, 3))])
    server_ports = np.array([80, 443, 3128, 53, 22, 8080, 25, 993], np.uint16)
    day = [f"26/04/2017{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
    stamps = pa.array(day)
    pair_count = max(rows // 5, 1)
    pair_client = rng.integers(0, len(clients), pair_count)
    pair_server = rng.integers(0, len(servers), pair_count)
    pair_cport = rng.integers(1024, 65536, pair_count).astype(np.uint16)
    pair_sport = server_ports[rng.integers(0, len(server_ports), pair_count)]
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with open(path, "wb") as handle:
        handle.write((",".join(HEADER) + "\n").encode())
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            pair = rng.integers(0, pair_count, n)
            outbound = rng.random(n) < 0.5  # half the records are the server's side of the pair
            src_ip = np.where(outbound, pair_client[pair], pair_server[pair] + len(clients))
            dst_ip = np.where(outbound, pair_server[pair] + len(clients), pair_client[pair])
            addresses = pa.concat_arrays([clients, servers])
            second = np.sort(rng.integers(0, len(day), n))
            table = pa.table(
                {
                    "a": addresses.take(pa.array(src_ip)),
                    "b": np.where(outbound, pair_cport[pair], pair_sport[pair]),
                    "c": addresses.take(pa.array(dst_ip)),
                    "d": np.where(outbound, pair_sport[pair], pair_cport[pair]),
                    "e": np.full(n, 6, np.uint8),
                    "f": stamps.take(pa.array(second)),
                    "g": rng.integers(1, 120_000_000, n),
                    "h": rng.integers(1, 200, n),
                    "i": rng.integers(0, 200, n),
                    "j": rng.integers(40, 300_000, n),
                    "k": rng.integers(0, 300_000, n),
                }
            )
            pacsv.write_csv(table, handle, options)


def generate_hostile(path: Path, rows: int, seed: int = 7) -> None:
    """Every record a pair of its own: fresh random IPv6 addresses (the longest address text, lengths vary),
    random ports; the other columns as ``generate`` makes them."""
    rng = np.random.default_rng(seed)
    groups = pa.array([f"{value:x}" for value in range(1 << 16)])
    stamps = pa.array([f"26/04/2017{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)])
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with open(path, "wb") as handle:
        handle.write((",".join(HEADER) + "\n").encode())
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            words = rng.integers(0, 1 << 16, (2, 8, n))
            ends = [pc.binary_join_element_wise(*(groups.take(pa.array(w)) for w in side), ":") for side in words]
            columns = {"a": ends[0], "b": rng.integers(1, 65536, n), "c": ends[1], "d": rng.integers(1, 65536, n)}
            columns |= {"e": np.full(n, 17, np.uint8), "f": stamps.take(pa.array(np.sort(rng.integers(0, 86400, n))))}
            columns |= {k: rng.integers(0, 300_000, n) for k in "ghijk"}
            pacsv.write_csv(pa.table(columns), handle, options)


def written(generator: str, path: str, rows: str) -> tuple[float, int]:
    """Write an input in its own process: a child's peak RSS counts its parent's at the fork, so the processes
    timed must not be started by one that built the input (the DuckDB side showed the 638 MiB of this one)."""
    return timed(lambda: globals()[generator](Path(path), int(rows)) or int(rows))


DUCKDB_PAIRS = """
import sys, duckdb
con = duckdb.connect()
con.execute("SET threads = 1")
con.execute(f\"\"\"COPY (
    SELECT "Source.IP", "Source.Port", "Destination.IP", "Destination.Port",
           sum("Flow.Duration") AS duration, sum("Total.Fwd.Packets") AS packets,
           sum("Total.Backward.Packets") AS packets_rev, sum("Total.Length.of.Fwd.Packets") AS bytes,
           sum("Total.Length.of.Bwd.Packets") AS bytes_rev, last("Protocol") AS proto,
           max(strptime("Timestamp", '%d/%m/%Y%H:%M:%S')) AS time_flow_start
    FROM read_csv('{sys.argv[1]}', header = true)
    GROUP BY ALL) TO '{sys.argv[2]}' (FORMAT parquet)\"\"\")
"""
"""The peer of issue 17: DuckDB's read_csv and the same GROUP BY on one thread, as a fresh process."""


def ingest(path: Path, work: Path, rows: int, rounds: int, title: str) -> None:
    """``flowscope read CSV --reduce pairs -o pairs.parquet`` (each batch reduced, as at ingest) and with
    ``--reduce-whole`` (one row per pair, DuckDB's result) against DuckDB, whole processes, same groups."""
    ours, whole, theirs = work / "pairs.parquet", work / "whole-pairs.parquet", work / "duckdb-pairs.parquet"

    def flowscope() -> list[str]:
        ours.unlink(missing_ok=True)
        return flowscope_command("-q", "read", str(path), "--reduce", "pairs", "-o", str(ours))

    def flowscope_whole() -> list[str]:
        whole.unlink(missing_ok=True)
        return flowscope_command("-q", "read", str(path), "--reduce", "pairs", "--reduce-whole", "-o", str(whole))

    def duckdb() -> list[str]:
        theirs.unlink(missing_ok=True)
        return [sys.executable, "-c", DUCKDB_PAIRS, str(path), str(theirs)]

    peer = "DuckDB read_csv + GROUP BY, 1 thread"
    commands = {"flowscope read --reduce pairs": flowscope, "  ... --reduce-whole": flowscope_whole, peer: duckdb}
    results = run_rounds(commands, rounds)
    print_runs(title, results, rows, "rows", [peer], cpu_peer=peer)
    totals = [_totals(p) for p in (ours, whole, theirs)]
    print(f"  rows out: flowscope {totals[0][0]:,} (reduced per batch, as --reduce does at ingest), "
          f"--reduce-whole {totals[1][0]:,}, DuckDB {totals[2][0]:,} (one GROUP BY); "
          f"packets, bytes: {totals[0][1:]} / {totals[1][1:]} / {totals[2][1:]}")  # fmt: skip
    if totals[1][0] != totals[2][0]:
        raise SystemExit("flowscope --reduce-whole and DuckDB made different numbers of pairs")
    if not totals[0][1:] == totals[1][1:] == totals[2][1:]:
        raise SystemExit("flowscope and DuckDB sum different packets or bytes")


def _totals(path: Path) -> tuple[int, int, int]:
    table = pq.read_table(path, columns=["packets", "packets_rev", "bytes", "bytes_rev"])
    sums = {name: int(pc.sum(table[name]).as_py()) for name in table.column_names}
    return table.num_rows, sums["packets"] + sums["packets_rev"], sums["bytes"] + sums["bytes_rev"]


def materialize_step(lake: str, url: str, view: str, table: str, breakdown: str, more: str = "") -> tuple[float, int]:
    """Wall seconds of one ``materialize VIEW`` run into an empty table (PostgreSQL does part of the work); with
    ``more`` (a CSV), of the run after those rows landed as well (the first run untimed): it recomputes and
    upserts only the keys they hold."""
    import psycopg

    from flowscope.lake import Lake
    from flowscope.materialize.postgres import PostgresTarget
    from flowscope.materialize.run import materialize_once
    from flowscope.query.views import view_key

    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f'DROP TABLE IF EXISTS "{table}"')
    target = PostgresTarget(url)
    if more:
        materialize_once(Lake(Path(lake)), view, target, table, view_key(view))
        subprocess.run([sys.executable, "-m", "flowscope", "-q", "--lake", lake, "read", more], check=True)
    started = time.perf_counter()
    outcome = materialize_once(Lake(Path(lake)), view, target, table, view_key(view))
    seconds = time.perf_counter() - started
    target.close()
    with psycopg.connect(url, autocommit=True) as con:
        stored = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        con.execute(f'DROP TABLE "{table}"')
        con.execute("DELETE FROM flowscope_materialized WHERE target_table = %s", (table,))
        con.execute("DELETE FROM flowscope_materialized_files WHERE target_table = %s", (table,))
    assert more or stored == outcome.view_rows
    Path(breakdown).write_text(json.dumps([outcome.view_seconds, outcome.apply_seconds]))
    return seconds, outcome.view_rows


def sqlite_materialize(lake: Path, work: Path, rounds: int) -> None:
    """``flowscope materialize pairs --to sqlite:///...`` into a new table, whole process, median of ``rounds``."""
    database = work / "pairs.db"

    def command() -> list[str]:
        database.unlink(missing_ok=True)
        target = f"sqlite:///{database}"
        return flowscope_command("-q", "--lake", str(lake), "materialize", "pairs", "--to", target, "--table", "pairs")

    runs = run_rounds({"sqlite": command}, rounds)["sqlite"]
    rows = sqlite3.connect(database).execute("SELECT count(*) FROM pairs").fetchone()[0]
    print(f"\nmaterialize pairs into a new SQLite table (whole process, median of {rounds}): {rows:,} rows in "
          f"{runs.seconds:.2f} s = {rows / runs.seconds:,.0f} rows/s (CPU {runs.cpu_seconds:.2f} s, "
          f"peak {runs.peak_rss_mib:,.0f} MiB; runs {' '.join(f'{r.seconds:.2f}' for r in runs.runs)} s)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--skip-materialize", action="store_true")
    parser.add_argument("--sqlite-only", action="store_true", help="Only build the lake and materialize into SQLite.")
    parser.add_argument("--rounds", type=int, default=3, help="Whole-process runs of each command (the median counts).")
    parser.add_argument("--hostile", action="store_true", help="Materialize from the hostile input (generate_hostile).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-csv-") as tmp:
        path = Path(tmp) / "flows.csv"
        print(f"machine: {machine()}; whole processes, median of {args.rounds} after a warm-up round")
        if not args.sqlite_only:
            inputs = {"hostile, every record a pair of fresh IPv6 addresses": "generate_hostile"}
            for name, write in {**inputs, "realistic, 50,000 clients": "generate"}.items():
                measure_in_subprocess("generate", "bench_csv", "written", write, str(path), str(args.rows))
                title = f"{name}: {args.rows:,} rows, {path.stat().st_size / 2**20:,.0f} MiB"
                ingest(path, Path(tmp), args.rows, args.rounds, title)
        (generate_hostile if args.hostile else generate)(path, args.rows)
        if args.skip_materialize:
            return
        lake = Path(tmp) / "lake"
        subprocess.run([sys.executable, "-m", "flowscope", "-q", "--lake", str(lake), "read", str(path)], check=True)
        more = Path(tmp) / "more.csv"  # the first 100 k rows again: new records of pairs the lake holds
        with open(path, "rb") as source, open(more, "wb") as sink:
            sink.writelines(line for _, line in zip(range(100_001), source, strict=False))
        sqlite_materialize(lake, Path(tmp), args.rounds)
        if args.sqlite_only:
            return
        print("\nmaterialize into PostgreSQL (wall seconds: the view over the lake, binary COPY, upsert)")
        runs = [("pairs", "", "whole view"), ("services_by_day", "", "whole view"), ("pairs", str(more), "+100k rows")]
        for view, extra, what in runs:
            breakdown = Path(tmp) / f"{view}.json"
            step = measure_in_subprocess(
                f"materialize {view}", "bench_csv", "materialize_step", str(lake), args.postgres, view,
                f"bench_{view}_{os.getpid()}", str(breakdown), extra,
            )  # fmt: skip
            view_seconds, database_seconds = json.loads(breakdown.read_text())
            print(
                f"  {view:<16} {what:<11} {step.units:>10,} rows in {step.seconds:6.2f} s = {step.rate:>10,.0f} "
                f"rows/s, peak {step.peak_rss_mib:,.0f} MiB\n"
                f"  {'':<28} view {view_seconds:.2f} s; database (COPY + upsert) {database_seconds:.2f} s = "
                f"{step.units / database_seconds:,.0f} rows/s"
            )


if __name__ == "__main__":
    main()
