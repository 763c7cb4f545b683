"""The same questions on every store: top-N and a traffic time series over the lake, ClickHouse and PostgreSQL,
raw and from roll-ups, as a whole ``flowscope top --from`` process and as ``flowscope serve --from`` API calls.

    python benchmarks/bench_query_stores.py [--rows 10000000] [--rounds 3] [--stores lake,clickhouse,postgresql]
        [--postgres postgresql://postgres@127.0.0.1:5432/test] [--workdir /tmp/flowscope-bench-query-stores]

Synthetic flows (``common.fresh_flows_parquet``: two days ending now) are stored once in each store: the lake
(then ``flowscope rollup``), a private ClickHouse (``scripts/clickhouse.sh``; ``db init`` first, so the
roll-ups' views fill ``rollup_1m``/``5m``/``1h`` as the sink inserts) and a fresh PostgreSQL database
(``db init``; the sink upserts the roll-ups with the raw rows). Then, per store:

- whole process, median of ``--rounds`` runs (round-robin, after one unmeasured round):
  ``flowscope top --by dst-as`` (answered from a roll-up) and ``flowscope top --by src`` (the raw flows:
  no roll-up holds addresses);
- API latency per call against a running ``flowscope serve --from``, median of ``--rounds`` calls after one
  warm-up: ``/api/top`` by dst-as (roll-up) and by src (raw), ``/api/timeseries`` in bps by protocol over
  3 days (200 points: 30-minute steps, the 5-minute roll-up) and the same with a filter (raw flows).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from bench_stores import CH_SCRIPT, _free_port, sink_step
from common import flowscope_command, fresh_flows_parquet, machine, run_rounds

CALLS = {
    "top by dst-as (roll-up)": ("/api/top", {"by": "dst-as", "since": "3d"}),
    "top by src (raw)": ("/api/top", {"by": "src", "since": "3d"}),
    "traffic by proto, 3 days (roll-up)": ("/api/timeseries", {"by": "proto", "unit": "bps", "since": "3d"}),
    "traffic by proto, filtered (raw)": (
        "/api/timeseries",
        {"by": "proto", "unit": "bps", "since": "3d", "filter": "proto in (tcp, udp)"},
    ),
}
PROCESSES = {"top --by dst-as (roll-up)": "dst-as", "top --by src (raw)": "src"}


def load(work: Path, source: Path, postgres: str, only: set[str]) -> tuple[list[str], Path]:
    """Store the flows in the lake and in those of ClickHouse and PostgreSQL that are in ``only``; their
    ``--from`` sources and the lake."""
    lake = work / "lake"
    started = time.perf_counter()
    sink_step(str(source), f"lake:{lake}")
    subprocess.run(flowscope_command("--lake", str(lake), "rollup"), check=True, capture_output=True)
    print(f"lake: stored and rolled up in {time.perf_counter() - started:.0f} s")
    stores = []
    if "clickhouse" in only:
        tcp, http = _free_port(), _free_port()
        subprocess.run(["bash", str(CH_SCRIPT), "start", str(work / "ch"), str(tcp), str(http)],
                       capture_output=True, text=True, check=True)  # fmt: skip
        stores.append(f"clickhouse://127.0.0.1:{tcp}/fs")
    if "postgresql" in only:
        import psycopg

        with psycopg.connect(postgres, autocommit=True) as con:
            con.execute("DROP DATABASE IF EXISTS bench_query WITH (FORCE)")
            con.execute("CREATE DATABASE bench_query")
        stores.append(f"{postgres.rpartition('/')[0]}/bench_query")
    for url in stores:
        started = time.perf_counter()
        subprocess.run(flowscope_command("db", "init", url), check=True, capture_output=True)
        sink_step(str(source), url + ("?batch_rows=500000" if url.startswith("clickhouse") else ""))
        print(f"{url}: stored in {time.perf_counter() - started:.0f} s")
    return [*(["lake"] if "lake" in only else []), *stores], lake


def processes(sources: list[str], lake: Path, rounds: int) -> None:
    commands = {
        (source, name): (lambda source=source, by=by: flowscope_command(
            "--lake", str(lake), "top", "--by", by, "--from", source, "-o", os.devnull, "--format", "csv"))
        for source in sources for name, by in PROCESSES.items()
    }  # fmt: skip
    results = run_rounds(commands, rounds)  # type: ignore[arg-type]
    print(f"\nwhole process, median of {rounds} (min-max)")
    for (source, name), runs in results.items():
        times = [run.seconds for run in runs.runs]
        print(f"  {_store(source):<11} {name:<28} {runs.seconds:6.2f} s  ({min(times):.2f}-{max(times):.2f})")


def api(sources: list[str], lake: Path, rounds: int) -> None:
    print(f"\nAPI latency per call, median of {rounds} after a warm-up (min-max)")
    for source in sources:
        port = _free_port()
        server = subprocess.Popen(
            flowscope_command("--lake", str(lake), "serve", "--listen", f"127.0.0.1:{port}", "--from", source,
                              "--query-timeout", "120"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            _wait(base + "/api/dimensions")
            for name, (path, params) in CALLS.items():
                url = f"{base}{path}?{urllib.parse.urlencode(params)}"
                _get(url)
                times = [_get(url) for _ in range(rounds)]
                median = statistics.median(times)
                print(f"  {_store(source):<11} {name:<36} {median * 1000:7.0f} ms  "
                      f"({min(times) * 1000:.0f}-{max(times) * 1000:.0f})")  # fmt: skip
        finally:
            os.kill(server.pid, signal.SIGINT)
            server.wait(timeout=60)


def _get(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as response:
        response.read()
    return time.perf_counter() - started


def _wait(url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            _get(url)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _store(source: str) -> str:
    return source.partition(":")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--workdir", default="/tmp/flowscope-bench-query-stores")
    parser.add_argument("--stores", default="lake,clickhouse,postgresql", help="the stores asked (comma-separated)")
    args = parser.parse_args()
    only = set(args.stores.split(","))
    work, source = fresh_flows_parquet(args.workdir, args.rows)
    print(f"machine: {machine()}; {args.rows:,} synthetic flows; load average {os.getloadavg()[0]:.1f}")
    sources, lake = load(work, source, args.postgres, only)
    try:
        processes(sources, lake, args.rounds)
        api(sources, lake, args.rounds)
    finally:
        if "clickhouse" in only:
            subprocess.run(["bash", str(CH_SCRIPT), "stop", str(work / "ch")], capture_output=True)
        if "postgresql" in only:
            import psycopg

            with psycopg.connect(args.postgres, autocommit=True) as con:
                con.execute("DROP DATABASE IF EXISTS bench_query WITH (FORCE)")
    print(f"load average at the end {os.getloadavg()[0]:.1f}", file=sys.stderr)


if __name__ == "__main__":
    main()
