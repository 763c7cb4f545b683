"""Address text both ways: flowscope's column conversion vs Python's ipaddress, and whole commands.

    python benchmarks/bench_addresses.py [--addresses 5000000] [--rows 2000000] [--baseline-src DIR]

Micro: ``--addresses`` random addresses (IPv4: uniform over all 2^32, so nearly all distinct; IPv6: a few
hundred /48 prefixes with random 64-bit interface ids, the common full-length form) are formatted
(``addresses.format_text``) and the text parsed back (``addresses.parse_text``), each step in its own process
on one core; the peer is ``ipaddress`` on 200 k of them (``str(ip_address)`` of the stored bytes as flowscope
always printed them, ``ip_address(text).packed``), rate per address. Times are CPU seconds, median of 3 runs.

Whole process: ``flowscope read flows.csv -o out.csv`` (addresses parsed from the input CSV and formatted
into the output) on a realistic CSV (bench_csv's generator: 53 k hosts, so every address repeats) and a
hostile one (the same rows, every address new: uniform IPv4 sources, destinations 20 % IPv6), CPU seconds of
the command, median of 3 runs. ``--baseline-src`` runs the same commands with another source tree on the
path (for example the main checkout before this change) for a before/after comparison.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from common import as_installed, machine, measure_in_subprocess, run_tool

SOURCE = Path(__file__).resolve().parents[1] / "src"
PEER_ADDRESSES = 200_000
RUNS = 3


def stored_addresses(kind: str, count: int, seed: int = 1) -> pa.Array:
    from flowscope import addresses

    rng = np.random.default_rng(seed)
    if kind == "ipv4":
        return addresses.from_ipv4(rng.integers(0, 2**32, count, dtype=np.uint64).astype(np.uint32))
    prefixes = rng.integers(0, 256, (300, 6), dtype=np.uint8)
    prefixes[:, :2] = [0x20, 0x01]
    matrix = np.empty((count, 16), np.uint8)
    matrix[:, :6] = prefixes[rng.integers(0, len(prefixes), count)]
    matrix[:, 6:8] = 0
    matrix[:, 8:] = rng.integers(0, 256, (count, 8), dtype=np.uint8)
    return addresses.from_ipv6_bytes(matrix)


def format_step(kind: str, count: str) -> tuple[float, int]:
    as_installed()
    _one_core()
    from flowscope import addresses

    stored = stored_addresses(kind, int(count))
    started = time.process_time()
    addresses.format_text(stored)
    return time.process_time() - started, len(stored)


def parse_step(kind: str, count: str) -> tuple[float, int]:
    as_installed()
    _one_core()
    from flowscope import addresses

    text = addresses.format_text(stored_addresses(kind, int(count)))
    started = time.process_time()
    parsed = addresses.parse_text(text)
    seconds = time.process_time() - started
    assert parsed.null_count == 0
    return seconds, len(text)


def peer_format_step(kind: str, count: str) -> tuple[float, int]:
    import ipaddress

    values = stored_addresses(kind, int(count)).to_pylist()
    started = time.process_time()
    for value in values:
        address = ipaddress.IPv6Address(value)
        str(address.ipv4_mapped or address)
    return time.process_time() - started, len(values)


def peer_parse_step(kind: str, count: str) -> tuple[float, int]:
    import ipaddress

    from flowscope import addresses

    texts = addresses.format_text(stored_addresses(kind, int(count))).to_pylist()
    started = time.process_time()
    for text in texts:
        ipaddress.ip_address(text).packed  # noqa: B018
    return time.process_time() - started, len(texts)


def _one_core() -> None:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def hostile_csv(realistic: Path, hostile: Path, seed: int = 3) -> None:
    """The realistic CSV's rows with every address new: uniform IPv4 sources, destinations 20 % IPv6."""
    import pyarrow.csv as pacsv

    from flowscope import addresses

    table = pacsv.read_csv(realistic)
    count = table.num_rows
    rng = np.random.default_rng(seed)
    sources = addresses.format_text(stored_addresses("ipv4", count, seed))
    six = addresses.format_text(stored_addresses("ipv6", count, seed + 1))
    four = addresses.format_text(stored_addresses("ipv4", count, seed + 2))
    destinations = pa.array(np.where(rng.random(count) < 0.2, six.to_numpy(False), four.to_numpy(False)))
    table = table.set_column(0, table.schema.names[0], sources).set_column(2, table.schema.names[2], destinations)
    pacsv.write_csv(table, hostile, pacsv.WriteOptions(quoting_style="none"))


def median_step(name: str, function: str, kind: str, count: int) -> tuple[float, float]:
    """(median addresses/s, median seconds) of ``RUNS`` fresh processes."""
    runs = [measure_in_subprocess(name, "bench_addresses", function, kind, str(count)) for _ in range(RUNS)]
    seconds = statistics.median(run.seconds for run in runs)
    return count / seconds, seconds


def command_cpu(source: Path, csv: Path, output: Path) -> tuple[float, float]:
    """Median (CPU seconds, wall seconds) of ``flowscope read CSV -o out.csv`` with ``source`` on the path."""
    command = ["env", f"PYTHONPATH={source}", sys.executable, "-m", "flowscope", "-q", "read", str(csv), "-o",
               str(output)]  # fmt: skip
    runs = [run_tool(command) for _ in range(RUNS)]
    return statistics.median(r.cpu_seconds for r in runs), statistics.median(r.seconds for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--addresses", type=int, default=5_000_000)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--baseline-src", type=Path, help="another source tree to run the commands with")
    parser.add_argument("--skip-commands", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine()}; {args.addresses:,} addresses per step, peer on {PEER_ADDRESSES:,}")
    print(f"\n{'':<14} {'flowscope':>14} {'ipaddress':>14} {'ratio':>8}   (addresses/s per core, median of 3)")
    for kind in ("ipv4", "ipv6"):
        for direction, ours, peer in (("format", "format_step", "peer_format_step"),
                                      ("parse", "parse_step", "peer_parse_step")):  # fmt: skip
            rate, _ = median_step(f"flowscope {direction}", ours, kind, args.addresses)
            peer_rate, _ = median_step(f"ipaddress {direction}", peer, kind, PEER_ADDRESSES)
            print(f"{kind} {direction:<9} {rate:>14,.0f} {peer_rate:>14,.0f} {rate / peer_rate:>7.0f}x")
    if args.skip_commands:
        return
    sys.path.insert(0, str(Path(__file__).parent))
    import bench_csv

    with tempfile.TemporaryDirectory(prefix="bench-addresses-") as tmp:
        realistic, hostile, output = Path(tmp) / "realistic.csv", Path(tmp) / "hostile.csv", Path(tmp) / "out.csv"
        bench_csv.generate(realistic, args.rows)
        hostile_csv(realistic, hostile)
        print(f"\nflowscope read FLOWS.csv -o out.csv, {args.rows:,} rows (CPU seconds, median of 3; wall in brackets)")
        trees = [("this tree", SOURCE)] + ([("baseline", args.baseline_src.resolve())] if args.baseline_src else [])
        for label, csv in (("realistic", realistic), ("hostile", hostile)):
            figures = []
            for tree, source in trees:
                cpu, wall = command_cpu(source, csv, output)
                figures.append(f"{tree}: {cpu:6.2f} s ({wall:.2f}) = {args.rows / cpu / 1e6:.2f} M rows/s")
            print(f"  {label:<10} " + "; ".join(figures))


if __name__ == "__main__":
    main()
