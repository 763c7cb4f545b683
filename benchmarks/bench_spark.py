"""The Spark job against ``flowscope read`` on one rotated capture directory, whole process: throughput and
fixed overhead.

    python benchmarks/bench_spark.py [--packets 1000000] [--flows 50000] [--rotate 30] [--rounds 3] [--keep DIR]

Writes a synthetic capture (``flowscope.demo.pcap``, the metering benchmark's realistic shape: whole packets,
65 k clients, 4 k servers, ten minutes) and rotates it every ``--rotate`` seconds of capture time into one
folder (``editcap -i``, as tcpdump -G leaves files), plus a tiny directory of one 1,000-packet file. Then,
round-robin for ``--rounds`` rounds after an unmeasured one, each as a user runs it (a fresh process, a fresh lake):
- ``flowscope read DIR --lake L``;
- ``flowscope spark meter DIR --master local[2] --lake L`` (JVM start, executors' Python workers, the job);
- both on the tiny directory: the fixed cost of each (the Spark session and job set-up, flowscope's imports).
Prints median wall seconds, packets per wall second, the Spark job's throughput without its fixed cost
((wall - tiny wall) on the large directory), and the peak memory of the whole process tree (driver, JVM, Python
workers: the sum of their RSS, sampled every 50 ms), and checks that both wrote the same number of flows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common import flowscope_command, machine, measure_in_subprocess

PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class TreeRuns:
    seconds: list[float] = field(default_factory=list)
    peak_mib: list[float] = field(default_factory=list)


def tree_rss(session: int) -> int:
    """Bytes resident in every process of ``session`` (the command and everything it started)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                fields = handle.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # field 6 of stat: the session id
            total += int(fields[21]) * PAGE  # field 24: resident pages
    return total


def run_tree(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak tree RSS (MiB) of ``command``, run in its own session."""
    started = time.perf_counter()
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss(process.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    return seconds, peak / 2**20


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def flow_count(lake: Path) -> int:
    import duckdb

    return int(duckdb.sql(f"SELECT count(*) FROM read_parquet('{lake}/flows/**/*.parquet')").fetchall()[0][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--flows", type=int, default=50_000)
    parser.add_argument("--rotate", type=int, default=30, help="Seconds of capture time per rotated file.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--keep", type=Path, help="Write the captures and outputs here and keep them.")
    args = parser.parse_args()
    if shutil.which("editcap") is None:
        raise SystemExit("editcap is not installed (scripts/system-deps.sh installs tshark)")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-spark-"))
    work.mkdir(parents=True, exist_ok=True)
    whole, rotated, tiny = work / "whole.pcap", work / "rotated", work / "tiny"
    if not rotated.exists():
        shape = [str(args.packets), str(args.flows), "600", "65535", "65000", "4000"]
        measure_in_subprocess("write capture", "bench_meter", "write_capture", str(whole), *shape)
        (rotated / "2024-05-01").mkdir(parents=True)
        subprocess.run(
            ["editcap", "-i", str(args.rotate), str(whole), str(rotated / "2024-05-01" / "cap.pcap")], check=True
        )
        tiny.mkdir()
        subprocess.run(["editcap", "-r", str(whole), str(tiny / "cap.pcap"), "1-1000"], check=True)
        whole.unlink()
    files = sorted(rotated.rglob("*.pcap"))
    size = sum(path.stat().st_size for path in files) / 2**20
    spark = ["spark", "meter", "--master", args.master, "-q"]
    commands: dict[str, Callable[[], list[str]]] = {
        "read": lambda: flowscope_command("read", str(rotated), "-q", "--lake", str(fresh(work / "read"))),
        "spark meter": lambda: flowscope_command(*spark, str(rotated), "--lake", str(fresh(work / "spark"))),
        "read (tiny)": lambda: flowscope_command("read", str(tiny), "-q", "--lake", str(fresh(work / "read-tiny"))),
        "spark meter (tiny)": lambda: flowscope_command(*spark, str(tiny), "--lake", str(fresh(work / "spark-tiny"))),
    }
    results = {name: TreeRuns() for name in commands}
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}; {len(files)} files, {size:,.0f} MiB, "
          f"{args.packets:,} packets; median of {args.rounds} after a warm-up round")  # fmt: skip
    for round_number in range(args.rounds + 1):
        for name, command in commands.items():
            seconds, peak = run_tree(command())
            if round_number:
                results[name].seconds.append(seconds)
                results[name].peak_mib.append(peak)
    print(f"  {'command':<20} {'wall s':>7} {'packets/s':>11} {'peak tree RSS':>14}  runs (wall s)")
    for name, runs in results.items():
        wall = statistics.median(runs.seconds)
        each = " ".join(f"{s:.2f}" for s in runs.seconds)
        rate = f"{args.packets / wall:11,.0f}" if "tiny" not in name else f"{'':>11}"
        print(f"  {name:<20} {wall:7.2f} {rate} {max(runs.peak_mib):10,.0f} MiB  {each}")
    job = statistics.median(results["spark meter"].seconds) - statistics.median(results["spark meter (tiny)"].seconds)
    read = statistics.median(results["read"].seconds) - statistics.median(results["read (tiny)"].seconds)
    print(f"  without fixed costs: spark meter {args.packets / job:,.0f} packets/s, read {args.packets / read:,.0f}")
    print(f"  load average after: {os.getloadavg()[0]:.1f}")
    ours, theirs = flow_count(work / "spark"), flow_count(work / "read")
    print(f"  flows: spark meter {ours:,}, read {theirs:,}")
    if ours != theirs:
        raise SystemExit("the Spark job and read wrote different numbers of flows")
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
