"""flowscope profile vs a record-at-a-time Python model of ft-profiler on the same ft-profiler input CSV.

    python benchmarks/bench_profile.py [--records 1000000]

ft-profiler itself (CESNET FlowTest tools/ft-profiler) is not installable here (not on PyPI, no network
beyond PyPI), so the peer is tests/profile/ftprofiler_reference.py: a straightforward model of its reader,
dict cache and writer, verified against ft-profiler's integration oracle. Input: synthetic uniflow records
(both directions of most connections, long connections split by a 300 s active timeout, ICMP, DNS),
written in ft-profiler's csvfile format in export order. Each side runs in its own process and is timed
from reading the CSV to the written profile; the two profiles must hold the same rows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import machine, measure_in_subprocess, print_comparison, timed

ROOT = Path(__file__).resolve().parents[1]
HEADER = "START_TIME,DURATION,PROTO,SRC_IP,DST_IP,SRC_PORT,DST_PORT,PACKETS,BYTES"


def _ip_text(values: np.ndarray) -> np.ndarray:
    octets = [(values >> shift) & 0xFF for shift in (24, 16, 8, 0)]
    text = octets[0].astype(str)
    for octet in octets[1:]:
        text = np.char.add(np.char.add(text, "."), octet.astype(str))
    return text


def _seconds_text(ms: np.ndarray) -> np.ndarray:
    return np.char.add(np.char.add((ms // 1000).astype(str), "."), np.char.zfill((ms % 1000).astype(str), 3))


def synthetic_records(records: int, seed: int = 1) -> dict[str, np.ndarray]:
    """``records`` uniflow records from ~records/1.8 connections over one hour, in export order."""
    rng = np.random.default_rng(seed)
    conns = int(records / 1.8) + 10
    proto = rng.choice([6, 17, 1], size=conns, p=[0.7, 0.25, 0.05])
    client = (10 << 24) + rng.integers(0, 1 << 16, conns)
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


def write_input(path: Path, records: int) -> None:
    """The synthetic records in ft-profiler's csvfile format."""
    r = synthetic_records(records)
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


def generate(path: str, records: str) -> tuple[float, int]:
    """Write the input in its own process, so the measured processes do not inherit its memory."""
    return timed(lambda: write_input(Path(path), int(records)) or int(records))


def run_flowscope(source: str, output: str) -> tuple[float, int]:
    from flowscope.cli import main
    from flowscope.readers import registry

    registry.readers()  # import every input format's module before timing (a fixed start-up cost)
    with open(source) as handle:
        records = sum(1 for _ in handle) - 1
    seconds, _ = timed(lambda: main(["-q", "profile", source, "-o", output], standalone_mode=False) or 0)
    return seconds, records


def run_reference(source: str, output: str) -> tuple[float, int]:
    sys.path.insert(0, str(ROOT / "tests" / "profile"))
    import ftprofiler_reference as ref

    def action() -> int:
        count = 0

        def counted():
            nonlocal count
            for flow in ref.read_csv(Path(source)):
                count += 1
                yield flow

        ref.write(ref.profile(counted(), 30_000, 300_000, 2048 * 1048576 // 256), Path(output))
        return count

    return timed(action)


def rows(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    return [lines[0], *sorted(lines[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_profile_") as tmp:
        directory = Path(tmp)
        source = directory / "input.csv"
        measure_in_subprocess("generate", "bench_profile", "generate", str(source), str(args.records))
        print(f"machine: {machine()}; input: {args.records:,} records, {source.stat().st_size / 2**20:.1f} MiB CSV")
        ours_out, peer_out = directory / "ours.csv", directory / "peer.csv"
        ours = measure_in_subprocess("flowscope profile", "bench_profile", "run_flowscope", str(source), str(ours_out))
        peer = measure_in_subprocess(
            "ft-profiler model (Python)", "bench_profile", "run_reference", str(source), str(peer_out)
        )
        print_comparison("profile: input CSV -> profile CSV (1 core)", "records", ours, peer)
        same = rows(ours_out) == rows(peer_out)
        print(f"  profiles identical (as row sets): {same}; biflows: {len(rows(ours_out)) - 1:,}")
        if not same:
            raise SystemExit("profiles differ")


if __name__ == "__main__":
    main()
