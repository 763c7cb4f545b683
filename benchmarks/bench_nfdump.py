"""Reading nfdump files: flowscope's native reader vs the nfdump binary, per block compression.

    python benchmarks/bench_nfdump.py [--records 2000000]

The input is made by the real collector: synthetic NetFlow v5 datagrams (30 records each, the records of
bench_profile's synthetic traffic) sent over loopback to ``nfcapd`` (nfdump 1.7.1), then recompressed
with ``nfdump -J`` into LZ4, LZO and BZ2 copies. Measured, each in its own process: flowscope decoding
every record to flow-schema Arrow tables (NfdumpSource, one core) and ``nfdump -r FILE -q -o csv`` (every
record decoded and printed, output discarded). Also the whole ft-profiler job on the uncompressed file:
``flowscope profile`` vs ft-profiler's pipeline shape (nfdump printing text, a Python model of ft-profiler
parsing it record by record: tests/profile/ftprofiler_reference.py; ft-profiler is not installable here).
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
from pathlib import Path

import numpy as np

from common import Measurement, machine, measure_in_subprocess, print_comparison, run_tool, timed

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


def v5_datagrams(records: int) -> list[bytes]:
    """NetFlow v5 datagrams carrying bench_profile's synthetic records, exported after each record ends."""
    from bench_profile import synthetic_records

    r = synthetic_records(records)
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


def collect_with_nfcapd(directory: Path, records: int) -> Path:
    """Send the datagrams to a real nfcapd on 127.0.0.1 and return the file it wrote."""
    nfcapd = shutil.which("nfcapd") or "/usr/bin/nfcapd"
    spool = directory / "spool"
    spool.mkdir()
    datagrams = v5_datagrams(records)
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
    if len(files) != 1:
        raise SystemExit(f"expected one nfcapd file, found {files}")
    return files[0]


def compressed_copies(source: Path, directory: Path) -> dict[str, Path]:
    nfdump = shutil.which("nfdump") or "/usr/bin/nfdump"
    copies = {}
    for name, level in COMPRESSIONS.items():
        target = directory / f"nfcapd.{name}"
        shutil.copy(source, target)
        if level is not None:
            subprocess.run([nfdump, "-r", str(target), "-J", str(level)], check=True, capture_output=True)
        copies[name] = target
    return copies


def prepare(directory: str, records: str, copies: str) -> tuple[float, int]:
    """Collect the input with nfcapd (and recompress it) in its own process: the measured processes must not
    inherit this one's memory high-water mark (Linux keeps ru_maxrss across fork and exec)."""
    from flowscope.nfdump.container import read_stat

    def action() -> int:
        source = collect_with_nfcapd(Path(directory), int(records))
        if copies == "yes":
            compressed_copies(source, Path(directory))
        else:
            shutil.move(source, Path(directory) / "nfcapd.uncompressed")
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


def profile_flowscope(path: str, output: str) -> tuple[float, int]:
    from flowscope.cli import main
    from flowscope.readers import registry

    registry.readers()  # import every input format's module before timing (a fixed start-up cost)
    return timed(lambda: main(["-q", "profile", path, "-o", output], standalone_mode=False) or 0)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--profile-records", type=int, default=1_000_000, help="records for the profile job")
    args = parser.parse_args()
    nfdump = shutil.which("nfdump") or "/usr/bin/nfdump"
    with tempfile.TemporaryDirectory(prefix="bench_nfdump_") as tmp:
        directory = Path(tmp)
        made = measure_in_subprocess("nfcapd", "bench_nfdump", "prepare", str(directory), str(args.records), "yes")
        print(f"machine: {machine()}; sent {args.records:,} records to nfcapd, it stored {made.units:,}")
        for name in COMPRESSIONS:
            path = directory / f"nfcapd.{name}"
            ours = measure_in_subprocess(f"flowscope reader ({name})", "bench_nfdump", "read_flowscope", str(path))
            total = ours.units
            title = f"read {total:,} records, {name}, {path.stat().st_size / 2**20:.1f} MiB"
            peer = run_peer(f"nfdump -o csv ({name})", [nfdump, "-r", str(path), "-q", "-o", "csv"], total)
            print_comparison(title + " (peer prints every field)", "records", ours, peer)
            lean = run_peer(f"nfdump -o fmt:%pkt ({name})", [nfdump, "-r", str(path), "-q", "-o", "fmt:%pkt"], total)
            print_comparison(title + " (peer prints one field)", "records", ours, lean)
        if args.profile_records:
            (directory / "profile").mkdir()
            measure_in_subprocess(
                "nfcapd", "bench_nfdump", "prepare", str(directory / "profile"), str(args.profile_records), "no"
            )
            small = directory / "profile" / "nfcapd.uncompressed"
            ours_out, peer_out = directory / "ours.csv", directory / "peer.csv"
            ours = measure_in_subprocess("flowscope profile", "bench_nfdump", "profile_flowscope", str(small),
                                         str(ours_out))  # fmt: skip
            peer = measure_in_subprocess("nfdump | ft-profiler model", "bench_nfdump", "profile_ftprofiler_shape",
                                         str(small), str(peer_out))  # fmt: skip
            ours.units = peer.units
            print_comparison("profile job: nfcapd file -> profile CSV", "records", ours, peer)
            same = sorted(ours_out.read_text().splitlines()) == sorted(peer_out.read_text().splitlines())
            print(f"  profiles identical (as row sets): {same}")


if __name__ == "__main__":
    main()
