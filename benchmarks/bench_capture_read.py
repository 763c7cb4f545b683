"""Reading and decoding captures: flowscope's readers vs libpcap (tcpdump) on the same files, one core each.

    python benchmarks/bench_capture_read.py [--packets 2000000] [--flows 100000] [--keep DIR]

Writes the synthetic capture of the metering benchmark (``flowscope.demo.pcap``: TCP/UDP/ICMP mix, 10 % IPv6)
twice, with whole packets and cut at 128 bytes (tcpdump -s 128), plus a pcapng copy (editcap), then, each in
its own process pinned to one CPU:
- flowscope frames: finding every record and reading its header (``capture.files.iter_frames``);
- flowscope decode: the above plus all layers (``iter_packet_batches``: the PacketBatch the meter consumes);
- tcpdump -w /dev/null: libpcap reading every record and writing it out, nothing decoded (the floor of any
  libpcap-based tool; decoding and printing with ``tcpdump -n`` runs at about 15k packets/s, no useful peer).
Each side runs twice after the file was read once (page cache warm); the run with less CPU time counts.
Prints wall and CPU seconds, packets per CPU second, the ratio of flowscope's decode to libpcap's reading,
and peak RSS (captures are written in a child process, so no side inherits the writer's memory), and
checks that flowscope saw every packet.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import machine, run_tool

CPU = 0


def flowscope_step(capture: str, decode: str) -> None:
    """Runs in a child process: read (and decode) the capture, print packets and CPU seconds."""
    import resource

    os.sched_setaffinity(0, {CPU})
    from flowscope.capture import iter_packet_batches
    from flowscope.capture.files import iter_frames
    from flowscope.diagnostics import Skips

    skips = Skips()
    started = time.process_time()
    if decode == "yes":
        packets = sum(len(batch) for batch in iter_packet_batches([Path(capture)], skips=skips, keep_non_ip=True))
    else:
        packets = sum(len(frames) for frames in iter_frames(Path(capture), skips))
    cpu = time.process_time() - started
    print(packets, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, skips.total)


def run_flowscope(capture: Path, decode: bool) -> tuple[float, float, int, float]:
    call = f"flowscope_step({str(capture)!r}, {'yes' if decode else 'no'!r})"
    code = (
        f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
        f"from bench_capture_read import flowscope_step; {call}"
    )
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    wall = time.perf_counter() - started
    packets, cpu, peak, skipped = int(out[0]), float(out[1]), float(out[2]), int(out[3])
    if skipped:
        raise SystemExit(f"flowscope skipped {skipped} records of {capture}")
    return wall, cpu, packets, peak


def run_tcpdump(capture: Path) -> tuple[float, float, int, float]:
    """tcpdump pinned to the same CPU; CPU and peak RSS are its own."""
    run = run_tool(["taskset", "-c", str(CPU), "tcpdump", "-r", str(capture), "-w", "/dev/null"])
    return run.seconds, run.cpu_seconds, -1, run.peak_rss_mib


def warm_page_cache(path: Path) -> None:
    """Read the file once so no side pays for the disk (the machine's page cache is shared and busy).

    In a child (``cat``): reading it here would raise this process's peak RSS, which forked children inherit.
    """
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)


def best(step: Callable[[], tuple[float, float, int, float]], runs: int = 2) -> tuple[float, float, int, float]:
    """The run with the least CPU time of ``runs`` (other work on the machine only ever adds time)."""
    return min((step() for _ in range(runs)), key=lambda result: result[1])


def write_capture(path: Path, packets: int, flows: int, snaplen: int) -> None:
    code = (
        "from flowscope.demo.pcap import write_synthetic_pcap\n"
        f"write_synthetic_pcap({str(path)!r}, packets={packets}, flows={flows}, snaplen={snaplen})"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=2_000_000)
    parser.add_argument("--flows", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="Write the captures here and keep them.")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-read-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        captures = {}
        for name, snaplen in (("whole packets", 65535), ("cut at 128 bytes", 128)):
            path = work / f"capture-{snaplen}.pcap"
            if not path.exists():
                write_capture(path, args.packets, args.flows, snaplen)
            captures[f"pcap, {name}"] = path
        pcapng = work / "capture-65535.pcapng"
        if not pcapng.exists():
            subprocess.run(["editcap", "-F", "pcapng", str(captures["pcap, whole packets"]), str(pcapng)], check=True)
        captures["pcapng, whole packets"] = pcapng

        print(f"machine: {machine()}; one core per side (CPU {CPU}); {args.packets:,} packets per capture")
        for title, path in captures.items():
            size = path.stat().st_size / 2**20
            print(f"\n{title} ({size:,.0f} MiB)")
            print(f"  {'reader':<26} {'wall s':>7} {'CPU s':>7} {'packets/CPU s':>14} {'peak RSS':>10}")
            warm_page_cache(path)
            rows = {
                "flowscope frames": best(lambda path=path: run_flowscope(path, decode=False)),
                "flowscope decode": best(lambda path=path: run_flowscope(path, decode=True)),
                "tcpdump -w /dev/null": best(lambda path=path: run_tcpdump(path)),
            }
            for name, (wall, cpu, packets, peak) in rows.items():
                if packets not in (-1, args.packets):
                    raise SystemExit(f"{name} read {packets} packets, expected {args.packets}")
                rate = args.packets / cpu
                print(f"  {name:<26} {wall:7.2f} {cpu:7.2f} {rate:14,.0f} {peak:8.0f} MiB")
            ratio = rows["tcpdump -w /dev/null"][1] / rows["flowscope decode"][1]
            print(f"  flowscope decode vs tcpdump -w /dev/null: {ratio:.2f}x the packets per CPU second")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
