"""flowscope profile vs a record-at-a-time Python model of ft-profiler and a plain csv.reader pass, same input CSV.

    python benchmarks/bench_profile.py [--records 1000000] [--rounds 3]

ft-profiler itself (CESNET FlowTest tools/ft-profiler) is not installable here (not on PyPI, no network
beyond PyPI), so the peer is tests/profile/ftprofiler_reference.py: a straightforward model of its reader,
dict cache and writer, verified against ft-profiler's integration oracle. Input: synthetic uniflow records
(both directions of most connections, long connections split by a 300 s active timeout, ICMP, DNS),
written in ft-profiler's csvfile format in export order; realistic (65,536 client addresses) and hostile
(2**24: nearly a fresh address per connection). Every command is a fresh process from the command line,
round-robin, median of ``--rounds``; the two profiles must hold the same rows. Issue 17's goal: flowscope in
at most 0.8x the time of a Python ``csv.reader`` pass over the file.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import flowscope_command, machine, measure_in_subprocess, print_runs, run_rounds, timed

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "tests" / "profile"
HEADER = "START_TIME,DURATION,PROTO,SRC_IP,DST_IP,SRC_PORT,DST_PORT,PACKETS,BYTES"


def _ip_text(values: np.ndarray) -> np.ndarray:
    octets = [(values >> shift) & 0xFF for shift in (24, 16, 8, 0)]
    text = octets[0].astype(str)
    for octet in octets[1:]:
        text = np.char.add(np.char.add(text, "."), octet.astype(str))
    return text


def _seconds_text(ms: np.ndarray) -> np.ndarray:
    return np.char.add(np.char.add((ms // 1000).astype(str), "."), np.char.zfill((ms % 1000).astype(str), 3))


def synthetic_records(records: int, clients: int = 1 << 16, seed: int = 1) -> dict[str, np.ndarray]:
    """``records`` uniflow records from ~records/1.8 connections over one hour, in export order; clients drawn
    from ``clients`` addresses (the hostile input: 2**24, nearly a fresh address per connection)."""
    rng = np.random.default_rng(seed)
    conns = int(records / 1.8) + 10
    proto = rng.choice([6, 17, 1], size=conns, p=[0.7, 0.25, 0.05])
    client = (10 << 24) + rng.integers(0, clients, conns)
    server = (172 << 24) + (16 << 16) + rng.integers(0, 5000, conns)
    cport = rng.integers(1024, 65536, conns)
    sport = rng.choice([443, 80, 53, 123, 22, 8080, 993], size=conns, p=[0.5, 0.2, 0.15, 0.05, 0.04, 0.04, 0.02])
    start = 1_700_000_000_000 + rng.integers(0, 3_600_000, conns)
    duration = np.minimum(rng.exponential(20_000, conns).astype(np.int64), 1_500_000)
    # split at the 300 s active timeout, as an exporter does
    pieces = duration // 300_000 + 1
    idx = np.repeat(np.arange(conns), pieces)
    part = np.arange(len(idx)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    p_start = start[idx] + part * 300_000
    p_dur = np.minimum(duration[idx] - part * 300_000, 299_999)
    n = len(idx)
    both = rng.random(n) < 0.85
    reverse = np.concatenate([np.zeros(n, bool), np.ones(int(both.sum()), bool)])
    piece = np.concatenate([np.arange(n), np.flatnonzero(both)])
    conn = idx[piece]
    r_start = p_start[piece] + np.where(reverse, rng.integers(0, 40, len(piece)), 0)
    r_dur = np.maximum(p_dur[piece] - np.where(reverse, 40, 0), 0)
    packets = np.maximum(1, (r_dur // 1000 + rng.integers(0, 4, len(piece)))).astype(np.int64)
    octets = packets * rng.integers(40, 1400, len(piece))
    ported = proto[conn] != 1
    columns = {
        "start_ms": r_start,
        "duration_ms": r_dur,
        "proto": proto[conn],
        "src": np.where(reverse, server[conn], client[conn]),
        "dst": np.where(reverse, client[conn], server[conn]),
        "src_port": np.where(ported, np.where(reverse, sport[conn], cport[conn]), 0),
        "dst_port": np.where(ported, np.where(reverse, cport[conn], sport[conn]), np.where(reverse, 0, 2048)),
        "packets": packets,
        "bytes": octets,
    }
    order = np.argsort(r_start + r_dur + rng.integers(0, 2_000, len(piece)), kind="stable")[:records]
    return {name: values[order] for name, values in columns.items()}


def write_input(path: Path, records: int, clients: int) -> None:
    """The synthetic records in ft-profiler's csvfile format."""
    r = synthetic_records(records, clients)
    columns = [
        _seconds_text(r["start_ms"]),
        _seconds_text(r["duration_ms"]),
        r["proto"].astype(str),
        _ip_text(r["src"]),
        _ip_text(r["dst"]),
        r["src_port"].astype(str),
        r["dst_port"].astype(str),
        r["packets"].astype(str),
        r["bytes"].astype(str),
    ]
    lines = columns[0]
    for column in columns[1:]:
        lines = np.char.add(np.char.add(lines, ","), column)
    path.write_text(HEADER + "\n" + "\n".join(lines.tolist()) + "\n")


def generate(path: str, records: str, clients: str) -> tuple[float, int]:
    """Write the input in its own process, so the measured processes do not inherit its memory."""
    return timed(lambda: write_input(Path(path), int(records), int(clients)) or int(records))


MODEL = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
import ftprofiler_reference as ref
ref.write(ref.profile(ref.read_csv(Path(sys.argv[1])), 30_000, 300_000, 2048 * 1048576 // 256), Path(sys.argv[2]))
"""
"""The ft-profiler model (tests/profile/ftprofiler_reference.py) as its own process, with ft-profiler's defaults."""

CSV_READER = "import csv, sys\nfor _ in csv.reader(open(sys.argv[1], newline='')): pass\n"
"""Issue 17's yardstick: a plain Python ``csv.reader`` pass over the same file."""


def compare(source: Path, directory: Path, records: int, rounds: int, title: str) -> None:
    ours, model = directory / "ours.csv", directory / "model.csv"
    commands = {
        "flowscope profile": lambda: flowscope_command("-q", "profile", str(source), "-o", str(ours)),
        "csv.reader pass": lambda: [sys.executable, "-c", CSV_READER, str(source)],
        "ft-profiler model": lambda: [
            sys.executable,
            "-c",
            MODEL,
            str(source),
            str(model),
            str(ROOT / "tests" / "profile"),
        ],
    }
    peers = ["csv.reader pass", "ft-profiler model"]
    print_runs(title, run_rounds(commands, rounds), records, "records", peers, cpu_peer="csv.reader pass")
    checked = subprocess.run([sys.executable, "-c", SAME, str(ours), str(model)], capture_output=True, text=True)
    same, biflows = (int(value) for value in checked.stdout.split())
    print(f"  profiles identical (as row sets): {bool(same)}; biflows: {biflows:,}")
    if not same:
        raise SystemExit("profiles differ")


SAME = """
import sys
def rows(path):
    lines = open(path).read().splitlines()
    return [lines[0], *sorted(lines[1:])]
ours, model = rows(sys.argv[1]), rows(sys.argv[2])
print(int(ours == model), len(ours) - 1)
"""
"""The two profiles compared as row sets in a process of their own: in this one, the lists of rows would raise the
peak RSS that the next input's timed processes inherit at their fork (the hostile ``csv.reader`` pass showed
192 MiB against 30)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="Runs of every command (the median counts).")
    args = parser.parse_args()
    print(f"machine: {machine()}; whole processes, median of {args.rounds} after a warm-up round")
    with tempfile.TemporaryDirectory(prefix="bench_profile_") as tmp:
        directory = Path(tmp)
        for name, clients in (("realistic", 1 << 16), ("hostile", 1 << 24)):
            source = directory / f"{name}.csv"
            measure_in_subprocess("generate", "bench_profile", "generate", str(source), str(args.records), str(clients))
            size = source.stat().st_size / 2**20
            title = f"{name}: {args.records:,} records, {clients:,} possible clients, {size:.1f} MiB CSV"
            compare(source, directory, args.records, args.rounds, title)
            source.unlink()


if __name__ == "__main__":
    main()
