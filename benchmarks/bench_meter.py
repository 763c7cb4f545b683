"""Metering a capture into flows: flowscope vs nfpcapd (and NFStream when installed), one core each.

    python benchmarks/bench_meter.py [--packets 2000000] [--flows 100000] [--keep DIR]

Writes a synthetic capture (``flowscope.demo.pcap``: realistic TCP/UDP/ICMP mix, 10 % IPv6, whole packets),
then, each in its own process pinned to CPU 0, meters it with active 300 s / idle 60 s:
- flowscope: the ``flowscope read CAPTURE -o flows.parquet`` path (reader + meter + Parquet sink);
- nfpcapd: ``nfpcapd -r CAPTURE -w DIR -e 300,60`` (nfdump's own pcap meter, writes nfcapd files);
- NFStream (``pip install nfstream``): ``NFStreamer(..., n_meters=1, n_dissections=0).to_pandas()``.
flowscope's step runs as installed, without pandas (``common.as_installed``; the peers need it, flowscope does not).
Prints wall and CPU seconds (CPU, children included, is robust on a shared machine), packets per CPU second,
the ratio to nfpcapd, peak RSS, the flow cache's bytes per active flow, and checks that all sides count the
same packets and IP-layer bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Measurement, as_installed, machine, measure_in_subprocess, run_tool

ACTIVE, IDLE = 300, 60
CPU = 0


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (NFStream meters in a child process)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def meter_with_flowscope(capture: str, output: str) -> tuple[float, int]:
    """The ``flowscope read`` data path, timed; prints the totals as a JSON line for the parent."""
    os.sched_setaffinity(0, {CPU})
    as_installed()
    import pyarrow as pa
    import pyarrow.parquet as pq

    from flowscope.capture.meter import BYTES_PER_FLOW
    from flowscope.capture.options import MeterOptions
    from flowscope.pipeline import run
    from flowscope.readers import registry
    from flowscope.readers.options import ReadOptions
    from flowscope.sinks.files import FileSink

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    started, cpu = time.perf_counter(), cpu_seconds()
    reader = registry.detect(Path(capture))
    source = reader.open([Path(capture)], ReadOptions(meter=MeterOptions(active=ACTIVE, idle=IDLE)))
    run(source, FileSink(output))
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    flows = pq.read_table(output, columns=["packets", "packets_rev", "bytes", "bytes_rev"])
    meter = source.meter
    print(
        json.dumps(
            {
                "flows": flows.num_rows,
                "packets": int(pa.compute.sum(flows["packets"]).as_py() + pa.compute.sum(flows["packets_rev"]).as_py()),
                "bytes": int(pa.compute.sum(flows["bytes"]).as_py() + pa.compute.sum(flows["bytes_rev"]).as_py()),
                "peak_active_flows": meter.peak_flows,
                "bytes_per_flow": BYTES_PER_FLOW,
                "skipped": source.skips.total,
                "cpu": cpu,
            }
        )
    )
    return seconds, meter.packets


def meter_with_nfstream(capture: str, output: str) -> tuple[float, int]:
    os.sched_setaffinity(0, {CPU})
    from nfstream import NFStreamer

    started, cpu = time.perf_counter(), cpu_seconds()
    streamer = NFStreamer(
        source=capture,
        idle_timeout=IDLE,
        active_timeout=ACTIVE,
        accounting_mode=1,  # IP-layer bytes, as flowscope's and nfpcapd's default
        n_dissections=0,
        n_meters=1,
        statistical_analysis=False,
    )
    frame = streamer.to_pandas()
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    frame[["bidirectional_packets", "bidirectional_bytes"]].to_parquet(output)
    packets = int(frame["bidirectional_packets"].sum())
    octets = int(frame["bidirectional_bytes"].sum())
    print(json.dumps({"flows": len(frame), "packets": packets, "bytes": octets, "cpu": cpu}))
    return seconds, packets


def run_nfpcapd(capture: Path, directory: Path) -> tuple[Measurement, dict[str, int]]:
    """nfpcapd in its own process (pinned); peak RSS from wait4, totals from ``nfdump -I``."""
    shutil.rmtree(directory, ignore_errors=True)  # a kept work folder from an earlier run
    directory.mkdir()
    command = ["taskset", "-c", str(CPU), "nfpcapd", "-r", str(capture), "-w", str(directory), "-e", f"{ACTIVE},{IDLE}"]
    run = run_tool(command)
    info = subprocess.run(["nfdump", "-R", str(directory), "-I"], capture_output=True, text=True, check=True).stdout
    totals: dict = {k.lower(): int(v) for k, v in re.findall(r"^(Flows|Packets|Bytes): (\d+)", info, re.M)}
    totals["cpu"] = run.cpu_seconds
    return Measurement("nfpcapd", run.seconds, totals["packets"], run.peak_rss_mib), totals


def measure_python_side(name: str, function: str, capture: Path, output: Path) -> tuple[Measurement, dict]:
    """Like ``common.measure_in_subprocess`` but also collects the JSON totals line the step prints."""
    code = (
        "import json, resource, sys\n"
        f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
        f"from bench_meter import {function} as step\n"
        f"seconds, units = step({str(capture)!r}, {str(output)!r})\n"
        "print(json.dumps([seconds, units, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    lines = out.strip().splitlines()
    seconds, units, peak = json.loads(lines[-1])
    return Measurement(name, seconds, units, peak), json.loads(lines[-2])


def nfstream_available() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import nfstream"], capture_output=True)
    return probe.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=2_000_000)
    parser.add_argument("--flows", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=600.0, help="Seconds of traffic in the capture.")
    parser.add_argument(
        "--snaplen", type=int, default=65535, help="Bytes captured per packet (NFStream drops cut IPv6 packets)."
    )
    parser.add_argument("--keep", type=Path, help="Write the capture and outputs here and keep them.")
    args = parser.parse_args()
    if shutil.which("nfpcapd") is None:
        raise SystemExit("nfpcapd is not installed (scripts/system-deps.sh installs nfdump)")

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-meter-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        capture = work / "mix.pcap"
        shape = [str(args.packets), str(args.flows), str(args.duration), str(args.snaplen)]
        written = measure_in_subprocess("write capture", "bench_meter", "write_capture", str(capture), *shape)
        print(f"machine: {machine()}; one core per side (CPU {CPU}); active {ACTIVE}s idle {IDLE}s")
        size = capture.stat().st_size
        print(f"capture: {args.packets:,} packets, {args.flows:,} flows, snaplen {args.snaplen}, "
              f"{size / 2**20:,.0f} MiB (written in {written.seconds:.1f}s)")  # fmt: skip

        results: list[tuple[Measurement, dict]] = []
        tiny = work / "tiny.pcap"
        measure_in_subprocess("write tiny capture", "bench_meter", "write_capture", str(tiny), "1000", "50", "60", "96")
        _, startup = measure_python_side("start-up", "meter_with_flowscope", tiny, work / "tiny.parquet")
        results.append(measure_python_side("flowscope", "meter_with_flowscope", capture, work / "flowscope.parquet"))
        nfpcapd, nfpcapd_totals = run_nfpcapd(capture, work / "nfpcapd")
        results.append((nfpcapd, nfpcapd_totals))
        if nfstream_available():
            results.append(measure_python_side("NFStream", "meter_with_nfstream", capture, work / "nfstream.parquet"))
        else:
            print("NFStream: not installed (pip install nfstream), skipped")

        print(f"\n  {'meter':<10} {'wall s':>7} {'CPU s':>7} {'packets/CPU s':>14} {'vs nfpcapd':>10} "
              f"{'peak RSS':>10} {'flows':>9} {'packets':>10} {'IP bytes':>14}")  # fmt: skip
        nfpcapd_rate = nfpcapd.units / nfpcapd_totals["cpu"]
        for measurement, totals in results:
            rate = measurement.units / totals["cpu"]
            print(
                f"  {measurement.name:<10} {measurement.seconds:7.2f} {totals['cpu']:7.2f} {rate:14,.0f} "
                f"{rate / nfpcapd_rate:9.2f}x {measurement.peak_rss_mib:7.0f} MiB "
                f"{totals['flows']:9,} {totals['packets']:10,} {totals['bytes']:14,}"
            )
        ours = results[0][1]
        steady = args.packets / (ours["cpu"] - startup["cpu"])
        print(f"\n  flowscope start-up (same path on a 1,000-packet capture): {startup['cpu']:.2f} CPU s; without it "
              f"{steady:,.0f} packets/CPU s = {steady / nfpcapd_rate:.2f}x nfpcapd")  # fmt: skip
        print(f"\n  flowscope flow cache: {ours['bytes_per_flow']} bytes per active flow, "
              f"peak {ours['peak_active_flows']:,} active flows "
              f"({ours['bytes_per_flow'] * ours['peak_active_flows'] / 2**20:.1f} MiB)")  # fmt: skip
        for measurement, totals in results[1:]:
            equal = (totals["packets"], totals["bytes"]) == (ours["packets"], ours["bytes"])
            print(f"  totals equal to {measurement.name}'s: {'yes' if equal else 'NO'}")
            if not equal and measurement.name == "nfpcapd":
                raise SystemExit(1)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def write_capture(path: str, packets: str, flows: str, duration: str, snaplen: str) -> tuple[float, int]:
    from flowscope.demo.pcap import write_synthetic_pcap

    started = time.perf_counter()
    write_synthetic_pcap(path, packets=int(packets), flows=int(flows), duration=float(duration), snaplen=int(snaplen))
    return time.perf_counter() - started, int(packets)


if __name__ == "__main__":
    main()
