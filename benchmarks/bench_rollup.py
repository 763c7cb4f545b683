"""Top-10 by AS over 30 days from the 1-hour roll-up: whole ``flowscope top`` process and query alone.

    python benchmarks/bench_rollup.py [--days 30] [--groups-per-hour 3000] [--flows-per-day 10000000]

Writes a lake whose ``flows_1h`` table holds what ``flowscope rollup`` makes of ``--flows-per-day`` flows a
day with the default dimensions (exporter, EtherType, protocol, source and destination AS, interfaces):
``--groups-per-hour`` rows per hour (Zipf-popular AS numbers among 20 k), one file per day, and the roll-up
state that marks it current. The raw flows themselves are not generated (300 M flows would not fit this
machine's budget), so the table choice sees no raw partition to be stale against. Measures, five runs each,
the median wall time of a whole ``flowscope top --by dst-as --since ... --until ...`` process (which
answers from ``flows_1h``), of the same process for ``--help`` (interpreter and imports alone), and of the
query in an open connection.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from common import machine


def build(lake: Path, days: int, groups: int, flows_per_day: int, end: datetime) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from flowscope.lake.layout import Lake
    from flowscope.transforms.rollups.build import FILE_NAME, STATE, rollup_schema
    from flowscope.transforms.rollups.spec import DEFAULTS

    hourly = DEFAULTS[2]
    schema = rollup_schema(hourly)
    rng = np.random.default_rng(5)
    popularity = 1.0 / np.arange(1, 20_001) ** 1.1
    popularity /= popularity.sum()
    exporters = np.zeros((10, 16), np.uint8)
    exporters[:, 10:12] = 0xFF
    exporters[:, 12:] = [192, 0, 2, 0]
    exporters[:, 15] = np.arange(1, 11)
    for day in range(days):
        start = end - timedelta(days=days - day)
        n = 24 * groups
        hours = np.repeat(np.arange(24), groups)
        flows = rng.multinomial(flows_per_day, np.full(n, 1 / n)).astype(np.uint64)
        columns = {
            "time": pa.array(((start.timestamp() + hours * 3600) * 1e9).astype(np.int64), pa.timestamp("ns", "UTC")),
            "sampler_address": pa.array(list(map(bytes, exporters[rng.integers(0, 10, n)])), pa.binary(16)),
            "etype": rng.choice([0x0800, 0x86DD], n).astype(np.uint16),
            "proto": rng.choice([6, 17, 1], n).astype(np.uint8),
            "src_as": (rng.choice(20_000, n, p=popularity) + 1).astype(np.uint32),
            "dst_as": (rng.choice(20_000, n, p=popularity) + 1).astype(np.uint32),
            "in_if": rng.integers(1, 48, n).astype(np.uint32),
            "out_if": rng.integers(1, 48, n).astype(np.uint32),
            "flows": flows,
            "flows_sampling_unknown": np.zeros(n, np.uint64),
            "bytes": flows * rng.integers(500, 50_000, n).astype(np.uint64),
            "packets": flows * rng.integers(1, 40, n).astype(np.uint64),
            "bytes_rev": flows * rng.integers(0, 90_000, n).astype(np.uint64),
            "packets_rev": flows * rng.integers(0, 70, n).astype(np.uint64),
        }
        directory = Lake(lake).partition_dir(hourly.name, start.strftime("%Y-%m-%d"), 0)
        directory.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns).cast(schema), directory / FILE_NAME, compression="zstd")
    (lake / STATE).parent.mkdir(parents=True, exist_ok=True)
    (lake / STATE).write_text(f'{{"{hourly.name}": {{"definition": "{hourly.digest()}", "partitions": {{}}}}}}')


def _median_wall_cpu(command: list[str], runs: int = 5) -> tuple[float, float]:
    """Median wall and CPU (user + system) seconds of a whole process: on a loaded machine the CPU time is
    the figure that holds."""
    times, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(times), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--groups-per-hour", type=int, default=3000)
    parser.add_argument("--flows-per-day", type=int, default=10_000_000)
    args = parser.parse_args()
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    since, until = end - timedelta(days=args.days), end
    print(f"machine: {machine()}; {args.days} days x {args.flows_per_day:,} flows/day as "
          f"{args.groups_per_hour:,} roll-up rows per hour")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-rollup-") as tmp:
        lake = Path(tmp)
        build(lake, args.days, args.groups_per_hour, args.flows_per_day, end)
        rows = 24 * args.days * args.groups_per_hour
        flowscope = [sys.executable, "-m", "flowscope", "--lake", str(lake)]
        top = [*flowscope, "top", "--by", "dst-as", "--since", since.isoformat(), "--until", until.isoformat()]
        verbose = subprocess.run([*top, "-v"], check=True, capture_output=True, text=True)
        chosen = next(line for line in (verbose.stdout + verbose.stderr).splitlines() if "answered from" in line)
        whole, whole_cpu = _median_wall_cpu(top)
        baseline, baseline_cpu = _median_wall_cpu([*flowscope, "top", "--help"])

        from flowscope.query import open_lake
        from flowscope.query.reports.top import top_sql

        sql = top_sql("dst-as", "bytes", 10, since=since, until=until, table="flows_1h")
        with open_lake(lake) as con:
            con.sql(sql).fetchall()
            started = time.perf_counter()
            for _ in range(5):
                con.sql(sql).fetchall()
            query = (time.perf_counter() - started) / 5
    print(f"  {chosen}")
    print(f"  flows_1h rows: {rows:,} in {args.days} files")
    print(f"  whole process `flowscope top --by dst-as` (median of 5): {whole * 1000:7.0f} ms, "
          f"{whole_cpu * 1000:.0f} ms CPU")  # fmt: skip
    print(f"  of which interpreter + imports (`top --help`):            {baseline * 1000:7.0f} ms, "
          f"{baseline_cpu * 1000:.0f} ms CPU")  # fmt: skip
    print(f"  the query alone in an open connection (mean of 5):        {query * 1000:7.0f} ms")
    print(f"  load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
