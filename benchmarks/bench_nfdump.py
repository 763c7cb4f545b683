"""Reading nfdump files and profiling them: flowscope vs the nfdump binary, per block compression.

    python benchmarks/bench_nfdump.py [--records 2000000] [--profile-records 2000000,10000000] [--rounds 3]

The input is made by the real collector: synthetic NetFlow v5 datagrams (30 records each, the records of
bench_profile's synthetic traffic) sent over loopback to ``nfcapd`` (nfdump 1.7.1), then recompressed
with ``nfdump -J`` into LZ4, LZO and BZ2 copies. Measured, each in its own process: flowscope decoding
every record to flow-schema Arrow tables (NfdumpSource, one core) and ``nfdump -r FILE -q -o csv`` (every
record decoded and printed, output discarded).

The profile job (issue 17: >= 3 M records/s) is measured as users run it: whole ``flowscope -q profile FILE -o
OUT`` processes (start-up, imports and writing included), round-robin with the peers, median of ``--rounds``,
on nfcapd files of busy networks' sizes (``--profile-records``; 5-minute files hold several million records),
realistic traffic (65,536 client addresses) and hostile (2**24: nearly a fresh address, so a fresh biflow, per
connection), uncompressed (nfcapd's default) and LZ4 (``nfcapd -y``). Start-up alone is a run stopped after one
record (``--max-records 1``). Peers, up to ``--peer-records`` records (nfdump prints ~100 k records/s):
``nfdump -r FILE -q -o csv``, and ft-profiler's pipeline shape once (nfdump printing text, a Python model of
ft-profiler parsing it record by record: tests/profile/ftprofiler_reference.py; ft-profiler is not installable
here), whose profile must hold the same rows as flowscope's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from common import (
    Measurement,
    flowscope_command,
    machine,
    measure_in_subprocess,
    print_comparison,
    print_runs,
    run_rounds,
    run_tool,
    timed,
)

ROOT = Path(__file__).resolve().parents[1]
PORT = 39_055
RECORDS_PER_DATAGRAM = 30
BOOT_MS = 1_699_000_000_000
COMPRESSIONS = {"uncompressed": None, "LZ4": 3, "LZO": 1, "BZ2": 2}

V5_HEADER = np.dtype(
    [("version", ">u2"), ("count", ">u2"), ("uptime", ">u4"), ("secs", ">u4"), ("nsecs", ">u4"),
     ("sequence", ">u4"), ("engine_type", "u1"), ("engine_id", "u1"), ("sampling", ">u2")]
)  # fmt: skip
V5_RECORD = np.dtype(
    [("src", ">u4"), ("dst", ">u4"), ("next_hop", ">u4"), ("input", ">u2"), ("output", ">u2"),
     ("packets", ">u4"), ("bytes", ">u4"), ("first", ">u4"), ("last", ">u4"), ("src_port", ">u2"),
     ("dst_port", ">u2"), ("pad1", "u1"), ("tcp_flags", "u1"), ("proto", "u1"), ("tos", "u1"),
     ("src_as", ">u2"), ("dst_as", ">u2"), ("src_mask", "u1"), ("dst_mask", "u1"), ("pad2", ">u2")]
)  # fmt: skip


def v5_datagrams(records: int, clients: int) -> list[bytes]:
    """NetFlow v5 datagrams carrying bench_profile's synthetic records, exported after each record ends."""
    from bench_profile import synthetic_records

    r = synthetic_records(records, clients)
    n = len(r["start_ms"])
    body = np.zeros(n, V5_RECORD)
    end = r["start_ms"] + r["duration_ms"]
    for name in ("src", "dst", "proto", "src_port", "dst_port", "packets", "bytes"):
        body[name] = r[name]
    body["first"] = r["start_ms"] - BOOT_MS
    body["last"] = end - BOOT_MS
    body["input"] = 1
    body["output"] = 2
    body["tcp_flags"] = np.where(r["proto"] == 6, 0x1B, 0)
    out = []
    for index, first in enumerate(range(0, n, RECORDS_PER_DATAGRAM)):
        chunk = body[first : first + RECORDS_PER_DATAGRAM]
        export_ms = int(end[first : first + RECORDS_PER_DATAGRAM].max()) + 1000
        header = np.zeros(1, V5_HEADER)
        header["version"], header["count"] = 5, len(chunk)
        header["uptime"] = export_ms - BOOT_MS
        header["secs"], header["nsecs"] = export_ms // 1000, (export_ms % 1000) * 1_000_000
        header["sequence"] = first
        header["engine_id"] = index % 2
        out.append(header.tobytes() + chunk.tobytes())
    return out


def collect_with_nfcapd(directory: Path, records: int, clients: int = 1 << 16) -> Path:
    """Send the datagrams to a real nfcapd on 127.0.0.1 and return the file it wrote."""
    nfcapd = shutil.which("nfcapd") or "/usr/bin/nfcapd"
    spool = directory / "spool"
    spool.mkdir()
    datagrams = v5_datagrams(records, clients)
    command = ["timeout", "600", nfcapd, "-b", "127.0.0.1", "-p", str(PORT), "-B", "8388608", "-w", str(spool),
               "-t", "3600"]  # fmt: skip
    daemon = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for index, payload in enumerate(datagrams):
                sender.sendto(payload, ("127.0.0.1", PORT))
                if index % 5 == 4:  # nfcapd's socket buffer overflows when fed faster
                    time.sleep(0.001)
        time.sleep(2.0)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    files = sorted(p for p in spool.rglob("nfcapd.*") if ".current." not in p.name)
    if not files:
        raise SystemExit(f"nfcapd wrote no file into {spool}")
    if len(files) == 1:
        return files[0]
    # nfcapd rotates at wall-clock multiples of -t: a run across a full hour leaves two files; join them
    joined = directory / "nfcapd.joined"
    nfdump = shutil.which("nfdump") or "/usr/bin/nfdump"
    subprocess.run([nfdump, "-R", str(spool), "-w", str(joined)], check=True, capture_output=True)
    return joined


def compressed_copies(source: Path, directory: Path, names: list[str]) -> dict[str, Path]:
    nfdump = shutil.which("nfdump") or "/usr/bin/nfdump"
    copies = {}
    for name in names:
        level = COMPRESSIONS[name]
        target = directory / f"nfcapd.{name}"
        shutil.copy(source, target)
        if level is not None:
            subprocess.run([nfdump, "-r", str(target), "-J", str(level)], check=True, capture_output=True)
        copies[name] = target
    return copies


def prepare(directory: str, records: str, copies: str, clients: str = str(1 << 16)) -> tuple[float, int]:
    """Collect the input with nfcapd and recompress it (``copies``: the compressions, comma-separated) in its own
    process: the measured processes must not inherit this one's memory high-water mark (Linux keeps ru_maxrss
    across fork and exec)."""
    from flowscope.nfdump.container import read_stat

    def action() -> int:
        source = collect_with_nfcapd(Path(directory), int(records), int(clients))
        compressed_copies(source, Path(directory), ["uncompressed", *copies.split(",")])
        stat = read_stat(Path(directory) / "nfcapd.uncompressed")
        return stat.flows if stat else 0

    return timed(action)


def read_flowscope(path: str) -> tuple[float, int]:
    from flowscope.nfdump.reader import NfdumpSource

    return timed(lambda: sum(t.num_rows for t in NfdumpSource([Path(path)])))


def run_peer(name: str, command: list[str], units: int, stdout_path: str = os.devnull) -> Measurement:
    """Run a command with its output to a file; peak RSS is the command's own."""
    run = run_tool(command, stdout_path)
    return Measurement(name, run.seconds, units, run.peak_rss_mib)


def profile_ftprofiler_shape(path: str, output: str) -> tuple[float, int]:
    """nfdump prints text, Python parses it line by line into the ft-profiler model (as ft-profiler's nffile reader)."""
    sys.path.insert(0, str(ROOT / "tests" / "profile"))
    import ftprofiler_reference as ref

    nfdump = shutil.which("nfdump") or "/usr/bin/nfdump"
    command = [nfdump, "-qN", "-6", "-r", path, "-o", "fmt:%tsr,%td,%pr,%sa,%da,%sp,%dp,%pkt,%byt"]

    def flows():
        zero = None
        with subprocess.Popen(command, stdout=subprocess.PIPE, env={"TZ": "UTC"}) as process:
            for line in process.stdout:
                start, dur, proto, src, dst, sport, dport, packets, octets = map(str.strip, line.decode().split(","))
                start_ms = round(float(start) * 1000)  # %tsr is seconds.msec; ft-profiler's %msec is the integer
                duration = int(float(dur) * 1000)
                if not zero:
                    zero = start_ms
                # nfdump prints ICMP's destination port as "type.code", which ft-profiler's int() rejects
                ports = [0 if "." in port else int(port) for port in (sport, dport)]
                yield ref.Flow(start_ms - zero, start_ms + duration - zero, int(proto), src, dst, *ports,
                               int(packets), int(octets))  # fmt: skip

    def action() -> int:
        count = 0

        def counted():
            nonlocal count
            for flow in flows():
                count += 1
                yield flow

        ref.write(ref.profile(counted(), 30_000, 300_000, 2048 * 4096), Path(output))
        return count

    return timed(action)


TRAFFIC = {"realistic": 1 << 16, "hostile": 1 << 24}
GOAL = 3_000_000  # issue 17: records/s, whole process


def _sizes(text: str) -> list[int]:
    return [int(size) for size in text.split(",") if size]


def profile_job(directory: Path, records: int, traffic: str, clients: int, args: argparse.Namespace) -> None:
    """Whole ``flowscope profile`` processes on one nfcapd file, uncompressed and LZ4, against the peers."""
    directory.mkdir()
    made = measure_in_subprocess("nfcapd", "bench_nfdump", "prepare", str(directory), str(records), "LZ4", str(clients))
    out = directory / "profile.csv"
    files = {name: directory / f"nfcapd.{name}" for name in ("uncompressed", "LZ4")}
    commands = {
        f"flowscope profile ({name})": _fresh(out, flowscope_command("-q", "profile", str(path), "-o", str(out)))
        for name, path in files.items()
    }
    commands["start-up (--max-records 1)"] = _fresh(
        out, flowscope_command("-q", "profile", str(files["LZ4"]), "--max-records", "1", "-o", str(out))
    )
    peers = []
    if records <= args.peer_records:
        nfdump = shutil.which("nfdump") or "/usr/bin/nfdump"
        peers = ["nfdump -o csv (LZ4)"]
        commands[peers[0]] = lambda: [nfdump, "-r", str(files["LZ4"]), "-q", "-o", "csv"]
    size = ", ".join(f"{name} {path.stat().st_size / 2**20:,.0f} MiB" for name, path in files.items())
    title = f"profile job, {traffic}: {made.units:,} records ({size}); load average before: {_load()}"
    results = run_rounds(commands, args.rounds)
    print_runs(title, results, made.units, "records", peers, cpu_peer=peers[0] if peers else None)
    for name in files:
        rate = made.units / results[f"flowscope profile ({name})"].seconds
        verdict = "met" if rate >= GOAL else "not met"
        print(f"  {name}: {rate / 1e6:.2f} M records/s, goal >= {GOAL / 1e6:.0f} M: {verdict}")
    print(f"  load average after: {_load()}")
    if peers:
        # the profile of the last flowscope run is the LZ4 file's start-up run: make the whole one again
        subprocess.run(commands["flowscope profile (LZ4)"](), check=True)
        model = measure_in_subprocess("nfdump | ft-profiler model", "bench_nfdump", "profile_ftprofiler_shape",
                                      str(files["uncompressed"]), str(directory / "model.csv"))  # fmt: skip
        # compared in a process of its own: this one's peak RSS is what the next commands inherit at their fork
        from bench_profile import SAME

        checked = subprocess.run([sys.executable, "-c", SAME, str(out), str(directory / "model.csv")],
                                 capture_output=True, text=True, check=True).stdout  # fmt: skip
        same = checked.split()[0] == "1"
        print(f"  nfdump | ft-profiler model, one run: {model.seconds:.1f} s = {model.rate:,.0f} records/s, "
              f"peak RSS {model.peak_rss_mib:.0f} MiB; profiles identical (as row sets): {same}")  # fmt: skip
        if not same:
            raise SystemExit("profiles differ")
    shutil.rmtree(directory)


def _fresh(out: Path, command: list[str]) -> Callable[[], list[str]]:
    """The command, after removing the previous run's output."""

    def prepare() -> list[str]:
        out.unlink(missing_ok=True)
        return command

    return prepare


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2_000_000, help="records for the reader comparison (0: none)")
    parser.add_argument("--profile-records", type=_sizes, default=[2_000_000, 10_000_000],
                        help="records for the profile job: comma-separated sizes (empty: none)")  # fmt: skip
    parser.add_argument("--peer-records", type=int, default=2_000_000, help="largest input the peers run on")
    parser.add_argument("--rounds", type=int, default=3, help="runs of every profile command (the median counts)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench_nfdump_") as tmp:
        if args.records:
            compare_readers(Path(tmp), args.records)
        for records in args.profile_records:
            for traffic, clients in TRAFFIC.items():
                profile_job(Path(tmp) / f"{traffic}-{records}", records, traffic, clients, args)


def compare_readers(directory: Path, records: int) -> None:
    """flowscope's reader vs nfdump printing every field, and one field, per compression."""
    nfdump = shutil.which("nfdump") or "/usr/bin/nfdump"
    made = measure_in_subprocess("nfcapd", "bench_nfdump", "prepare", str(directory), str(records), "LZ4,LZO,BZ2")
    print(f"sent {records:,} records to nfcapd, it stored {made.units:,}")
    for name in COMPRESSIONS:
        path = directory / f"nfcapd.{name}"
        ours = measure_in_subprocess(f"flowscope reader ({name})", "bench_nfdump", "read_flowscope", str(path))
        total = ours.units
        title = f"read {total:,} records, {name}, {path.stat().st_size / 2**20:.1f} MiB"
        peer = run_peer(f"nfdump -o csv ({name})", [nfdump, "-r", str(path), "-q", "-o", "csv"], total)
        print_comparison(title + " (peer prints every field)", "records", ours, peer)
        lean = run_peer(f"nfdump -o fmt:%pkt ({name})", [nfdump, "-r", str(path), "-q", "-o", "fmt:%pkt"], total)
        print_comparison(title + " (peer prints one field)", "records", ours, lean)


if __name__ == "__main__":
    main()
