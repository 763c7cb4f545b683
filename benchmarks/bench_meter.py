"""Metering a capture into flows, whole process from the command line: flowscope vs nfpcapd.

    python benchmarks/bench_meter.py [--packets 2000000] [--flows 100000] [--rounds 3] [--keep DIR]

Writes two synthetic captures (``flowscope.demo.pcap``: TCP/UDP/ICMP mix, 10 % IPv6, some 802.1Q):
- realistic: ``--packets`` packets in ``--flows`` biflows, whole packets (2 M packets: about 1.1 GB), 65 k
  client and 4 k server addresses;
- hostile: the same number of packets cut at 96 bytes (``tcpdump -s 96``, about 200 MB for 2 M packets), four
  packets per flow (high flow churn) and a fresh client address for nearly every flow (one distinct address
  every four packets, up to 16 M clients and 100 k servers).
Then, per capture and round-robin for ``--rounds`` rounds after an unmeasured one, times each command as a user
runs it (a fresh process: start-up, imports and output writing included), active 300 s / idle 60 s:
- ``flowscope read CAPTURE -o flows.parquet``, ``... -o flows.csv`` and ``... --lake DIR`` (a fresh lake each run);
- ``flowscope read CAPTURE -o flows.parquet --workers 2`` (the file metered in two spans, ``jobs/split.py``; its
  flows are checked equal to one process's);
- ``nfpcapd -r CAPTURE -w DIR -e 300,60`` (nfdump's own pcap meter, writing nfcapd files).
Prints median wall and CPU seconds (wait4: user + system, threads included), packets per wall second, the speed
ratio to nfpcapd in wall time (the goal) and in CPU time (steadier on a shared machine), the largest peak RSS of
the runs, and checks that flowscope's Parquet output and nfpcapd count the same packets and IP-layer bytes.
Nothing is pinned: both tools use the cores as they would.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import Runs, flowscope_command, machine, measure_in_subprocess, print_runs, run_rounds

ACTIVE, IDLE = 300, 60
HOSTILE_SNAPLEN = 96
HOSTILE_PACKETS_PER_FLOW = 4
WORKERS_OUTPUT = "flows-workers.parquet"
FLOW_ORDER = ["time_flow_start", "src_addr", "dst_addr", "src_port", "dst_port", "proto", "vlan_id", "time_flow_end"]


def fresh(path: Path) -> Path:
    """Remove ``path`` (a file or folder of the previous run) and return it."""
    if path.is_dir():
        shutil.rmtree(path)
    path.unlink(missing_ok=True)
    return path


def commands(capture: Path, work: Path) -> dict[str, Callable[[], list[str]]]:
    timeouts = ["--active", str(ACTIVE), "--idle", str(IDLE), "-q"]

    def to_file(name: str, *extra: str) -> Callable[[], list[str]]:
        return lambda: flowscope_command("read", str(capture), "-o", str(fresh(work / name)), *timeouts, *extra)

    def to_lake() -> list[str]:
        return flowscope_command("read", str(capture), "--lake", str(fresh(work / "lake")), *timeouts)

    def nfpcapd() -> list[str]:
        fresh(work / "nfpcapd").mkdir()
        return ["nfpcapd", "-r", str(capture), "-w", str(work / "nfpcapd"), "-e", f"{ACTIVE},{IDLE}"]

    return {
        "flowscope -> Parquet": to_file("flows.parquet"),
        "flowscope -> Parquet, --workers 2": to_file(WORKERS_OUTPUT, "--workers", "2"),
        "flowscope -> CSV": to_file("flows.csv"),
        "flowscope -> lake": to_lake,
        "nfpcapd": nfpcapd,
    }


def nfpcapd_totals(directory: Path) -> tuple[int, int, int]:
    info = subprocess.run(["nfdump", "-R", str(directory), "-I"], capture_output=True, text=True, check=True).stdout
    totals = {k.lower(): int(v) for k, v in re.findall(r"^(Flows|Packets|Bytes): (\d+)", info, re.M)}
    return totals["flows"], totals["packets"], totals["bytes"]


def parquet_totals(path: Path) -> tuple[int, int, int]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["packets", "packets_rev", "bytes", "bytes_rev"])
    total = {name: int(pc.sum(table[name]).as_py() or 0) for name in table.column_names}
    return table.num_rows, total["packets"] + total["packets_rev"], total["bytes"] + total["bytes_rev"]


def report(title: str, packets: int, results: dict[str, Runs], work: Path) -> None:
    print_runs(title, results, packets, "packets", ["nfpcapd"], cpu_peer="nfpcapd")
    csv_cost = results["flowscope -> CSV"].seconds / results["flowscope -> Parquet"].seconds
    print(f"  CSV / Parquet wall time: {csv_cost:.2f}x")
    ours, theirs = parquet_totals(work / "flows.parquet"), nfpcapd_totals(work / "nfpcapd")
    print(f"  flows: flowscope {ours[0]:,} biflows, nfpcapd {theirs[0]:,} one-way flows; "
          f"packets {ours[1]:,} / {theirs[1]:,}; IP bytes {ours[2]:,} / {theirs[2]:,}")  # fmt: skip
    if ours[1:] != theirs[1:]:
        raise SystemExit("flowscope and nfpcapd count different packets or bytes")
    if not same_flows(work / "flows.parquet", work / WORKERS_OUTPUT):
        raise SystemExit("flowscope --workers 2 wrote other flows than one process")
    print("  --workers 2: the same flows as one process")


def same_flows(one: Path, other: Path) -> bool:
    import pyarrow.parquet as pq

    def flows(path: Path) -> Any:
        table = pq.read_table(path).drop_columns(["time_received"])
        return table.sort_by([(name, "ascending") for name in FLOW_ORDER])

    return bool(flows(one).equals(flows(other)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=2_000_000)
    parser.add_argument("--flows", type=int, default=100_000, help="Flows of the realistic capture.")
    parser.add_argument("--duration", type=float, default=600.0, help="Seconds of traffic in each capture.")
    parser.add_argument("--rounds", type=int, default=3, help="Runs of every command (the median counts).")
    parser.add_argument(
        "--realistic-snaplen", type=int, default=65535, help="Cut the realistic capture's packets (96: about 200 MB)."
    )
    parser.add_argument("--inputs", default="realistic,hostile", help="Which captures to meter.")
    parser.add_argument("--keep", type=Path, help="Write the captures and outputs here and keep them.")
    args = parser.parse_args()
    if shutil.which("nfpcapd") is None:
        raise SystemExit("nfpcapd is not installed (scripts/system-deps.sh installs nfdump)")

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-meter-"))
    work.mkdir(parents=True, exist_ok=True)
    hostile_flows = args.packets // HOSTILE_PACKETS_PER_FLOW
    shapes = {
        "realistic": (args.flows, args.realistic_snaplen, 65_000, 4_000),
        "hostile": (hostile_flows, HOSTILE_SNAPLEN, min(1 << 24, hostile_flows * 4), 100_000),
    }
    print(f"machine: {machine()}; whole processes, unpinned; active {ACTIVE}s idle {IDLE}s; "
          f"median of {args.rounds} after a warm-up round")  # fmt: skip
    try:
        for name in args.inputs.split(","):
            flows, snaplen, clients, servers = shapes[name]
            capture = work / f"{name}-{snaplen}.pcap"
            if not capture.exists():
                shape = [str(args.packets), str(flows), str(args.duration), str(snaplen), str(clients), str(servers)]
                measure_in_subprocess("write capture", "bench_meter", "write_capture", str(capture), *shape)
            size = capture.stat().st_size / 2**20
            title = (
                f"{name}: {args.packets:,} packets, {flows:,} flows, snaplen {snaplen}, "
                f"{clients:,} clients / {servers:,} servers, {size:,.0f} MiB"
            )
            outputs = work / f"{name}-{snaplen}"
            outputs.mkdir(exist_ok=True)
            report(title, args.packets, run_rounds(commands(capture, outputs), args.rounds), outputs)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def write_capture(
    path: str, packets: str, flows: str, duration: str, snaplen: str, clients: str, servers: str
) -> tuple[float, int]:
    import time

    from flowscope.demo.pcap import write_synthetic_pcap

    started = time.perf_counter()
    write_synthetic_pcap(
        path,
        packets=int(packets),
        flows=int(flows),
        duration=float(duration),
        snaplen=int(snaplen),
        clients=int(clients),
        servers=int(servers),
    )
    return time.perf_counter() - started, int(packets)


if __name__ == "__main__":
    main()
