"""Packet records (``read --records packets``), whole process from the command line: flowscope vs tshark and tcpdump.

    python benchmarks/bench_packets.py [--packets 250000] [--rounds 3] [--inputs realistic,hostile] [--keep DIR]

The captures are the metering benchmark's (``bench_meter.write_capture``): *realistic* (whole packets, 20 packets
per biflow) and *hostile* (cut at 96 bytes, four packets per flow, a fresh client nearly every flow). Per capture,
round-robin for ``--rounds`` rounds after an unmeasured one, each command runs as a user runs it (a fresh process):
- ``flowscope read C --records packets -o packets.parquet``, ``... -o packets.csv`` and ``... --lake DIR``;
- ``flowscope read C -o flows.parquet``: metering the same capture, the speed class packet records must keep;
- ``tshark -n -r C -T fields -E header=y -E separator=, -e ...`` > a CSV of the same fields (pcapstream's row:
  time, addresses, ports, protocol, TTL, IP version, length, TCP sequence/ack/flags, fragment markers), IP
  reassembly off as in our rows;
- ``tcpdump -nn -r C`` > text (one line per packet: its usual decode, the fastest text peer).
Prints median wall and CPU seconds (wait4), packets per wall second, ratios to each peer and the largest peak RSS,
and checks that the Parquet file and tshark's CSV hold the same number of packets.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench_meter import HOSTILE_PACKETS_PER_FLOW, HOSTILE_SNAPLEN, fresh
from common import Runs, flowscope_command, machine, measure_in_subprocess, print_runs, run_rounds

TSHARK_FIELDS = [
    "frame.time_epoch", "ip.version", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.proto", "ipv6.nxt",
    "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "ip.ttl", "ipv6.hlim", "ip.len", "ipv6.plen",
    "tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "ip.flags.mf", "ip.frag_offset",
]  # fmt: skip


def _to_file(command: list[str], output: Path) -> list[str]:
    """``command > output`` without a shell of its own in the measurement: ``sh`` execs the tool, so wait4's
    figures are the tool's alone."""
    return ["sh", "-c", 'exec "$@" > "$0"', str(output), *command]


def commands(capture: Path, work: Path) -> dict[str, Callable[[], list[str]]]:
    def ours(*destination: str) -> Callable[[], list[str]]:
        def command() -> list[str]:
            fresh(work / destination[-1])
            return flowscope_command("read", str(capture), "--records", "packets", *destination, "-q")

        return command

    def tshark() -> list[str]:
        fields = [arg for field in TSHARK_FIELDS for arg in ("-e", field)]
        options = ["-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"]
        command = ["tshark", "-n", "-r", str(capture), *options, "-T", "fields", "-E", "header=y", "-E", "separator=,"]
        return _to_file([*command, *fields], fresh(work / "tshark.csv"))

    def tcpdump() -> list[str]:
        return _to_file(["tcpdump", "-nn", "-r", str(capture)], fresh(work / "tcpdump.txt"))

    def meter() -> list[str]:
        return flowscope_command("read", str(capture), "-o", str(fresh(work / "flows.parquet")), "-q")

    return {
        "flowscope -> Parquet": ours("-o", str(work / "packets.parquet")),
        "flowscope -> CSV": ours("-o", str(work / "packets.csv")),
        "flowscope -> lake": ours("--lake", str(work / "lake")),
        "(metering -> Parquet)": meter,
        "tshark -T fields > CSV": tshark,
        "tcpdump -nn > text": tcpdump,
    }


def report(title: str, packets: int, results: dict[str, Runs], work: Path) -> None:
    import pyarrow.parquet as pq

    print_runs(title, results, packets, "packets", ["tshark -T fields > CSV", "tcpdump -nn > text"])
    ours = pq.ParquetFile(work / "packets.parquet").metadata.num_rows
    with open(work / "tshark.csv", "rb") as handle:
        theirs = sum(1 for _ in handle) - 1  # the header line
    print(f"  rows: flowscope {ours:,}, tshark {theirs:,}")
    if ours != theirs:
        raise SystemExit("flowscope and tshark hold different numbers of packets")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # The text peers decode a few thousand packets per second here: a million would take an hour of rounds.
    parser.add_argument("--packets", type=int, default=250_000)
    parser.add_argument("--flows", type=int, default=12_500, help="Flows of the realistic capture.")
    parser.add_argument("--duration", type=float, default=600.0, help="Seconds of traffic in each capture.")
    parser.add_argument("--rounds", type=int, default=3, help="Runs of every command (the median counts).")
    parser.add_argument("--inputs", default="realistic,hostile", help="Which captures to read.")
    parser.add_argument("--keep", type=Path, help="Write the captures and outputs here and keep them.")
    args = parser.parse_args()
    for tool in ("tshark", "tcpdump"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is not installed (scripts/system-deps.sh installs it)")

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-packets-"))
    work.mkdir(parents=True, exist_ok=True)
    hostile_flows = args.packets // HOSTILE_PACKETS_PER_FLOW
    shapes = {
        "realistic": (args.flows, 65535, 65_000, 4_000),
        "hostile": (hostile_flows, HOSTILE_SNAPLEN, min(1 << 24, hostile_flows * 4), 100_000),
    }
    print(f"machine: {machine()}; whole processes, unpinned; median of {args.rounds} after a warm-up round")
    try:
        for name in args.inputs.split(","):
            flows, snaplen, clients, servers = shapes[name]
            capture = work / f"{name}-{args.packets}-{snaplen}.pcap"
            if not capture.exists():
                shape = [str(args.packets), str(flows), str(args.duration), str(snaplen), str(clients), str(servers)]
                measure_in_subprocess("write capture", "bench_meter", "write_capture", str(capture), *shape)
            size = capture.stat().st_size / 2**20
            title = f"{name}: {args.packets:,} packets, {flows:,} flows, snaplen {snaplen}, {size:,.0f} MiB"
            outputs = work / f"{name}-{snaplen}"
            outputs.mkdir(exist_ok=True)
            report(title, args.packets, run_rounds(commands(capture, outputs), args.rounds), outputs)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
