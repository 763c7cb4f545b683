"""Decode-only rate of NetFlow v9 and IPFIX: flowscope's decoder vs tshark's dissector on the same datagrams.

    python benchmarks/bench_decode.py [--flows 1000000] [--peer-flows 200000]

Generates synthetic exports (``flowscope.collect.encoder``: a common 16-field IPv4 template, 24 records
per datagram, the template every 100 datagrams), stores them as length-prefixed payloads and as a pcap,
then measures, each in its own process: flowscope decoding all datagrams to flow tables (batches of 4096
datagrams, one core, after a warm-up of four batches: the steady state of a running collector) and
tshark dissecting the pcap's first ``--peer-flows`` flows (``-T fields``, a per-record field so every
record is decoded; CPU time and peak RSS are tshark's own). Times are CPU seconds (user + system) of the
decoding process, so the rates are per core and stay comparable when other work shares the machine.
Prints rates, the ratio and peak RSS.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Measurement, machine, measure_in_subprocess, print_comparison, timed

BATCH_DATAGRAMS = 4096
RECORDS_PER_DATAGRAM = 24
PORT = 2055


def write_streams(directory: Path, flows: int) -> dict[int, Path]:
    """One length-prefixed payload file per version (9 and 10); returns version -> path."""
    from flowscope.collect.encoder import IPV4_TEMPLATE, encode, synthetic_columns

    columns = synthetic_columns(flows)
    paths = {}
    for version in (9, 10):
        payloads = encode(version, IPV4_TEMPLATE, columns, records_per_datagram=RECORDS_PER_DATAGRAM)
        path = directory / f"v{version}.bin"
        with open(path, "wb") as handle:
            for payload in payloads:
                handle.write(struct.pack(">H", len(payload)) + payload)
        paths[version] = path
    return paths


def read_stream(path: str) -> list[bytes]:
    data = Path(path).read_bytes()
    payloads, offset = [], 0
    while offset < len(data):
        (size,) = struct.unpack_from(">H", data, offset)
        payloads.append(data[offset + 2 : offset + 2 + size])
        offset += 2 + size
    return payloads


def write_pcap(payloads: list[bytes], path: Path) -> None:
    """Ethernet/IPv4/UDP frames from 192.0.2.1 to port 2055, one per datagram (classic pcap, microseconds)."""
    with open(path, "wb") as handle:
        handle.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for index, payload in enumerate(payloads):
            udp = struct.pack(">HHHH", 40000, PORT, 8 + len(payload), 0)
            ip = struct.pack(
                ">BBHHHBBH4s4s",
                0x45,
                0,
                28 + len(payload),
                0,
                0,
                64,
                17,
                0,
                bytes([192, 0, 2, 1]),
                bytes([192, 0, 2, 2]),
            )
            frame = bytes(12) + b"\x08\x00" + ip + udp + payload
            handle.write(struct.pack("<IIII", 1_700_000_000 + index // 1000, index % 1000, len(frame), len(frame)))
            handle.write(frame)


def flowscope_step(path: str) -> tuple[float, int]:
    """Decode every datagram of a stream file; returns (seconds, flows)."""
    import numpy as np
    import pyarrow as pa

    from flowscope import addresses
    from flowscope.collect.datagrams import Datagrams
    from flowscope.collect.dispatch import decode_netflow
    from flowscope.collect.state import NetflowState

    pa.set_cpu_count(1)
    payloads = read_stream(path)
    exporter = np.frombuffer(addresses.parse_one("192.0.2.1"), np.uint8)
    exporters = np.tile(exporter, (BATCH_DATAGRAMS, 1))
    received = np.zeros(BATCH_DATAGRAMS, np.int64)

    def decode_all(state: NetflowState, limit: int | None = None) -> int:
        total = 0
        for start in range(0, min(len(payloads), limit or len(payloads)), BATCH_DATAGRAMS):
            chunk = payloads[start : start + BATCH_DATAGRAMS]
            decoded = decode_netflow(Datagrams(chunk, exporters[: len(chunk)], received[: len(chunk)]), state)
            total += decoded.flows.num_rows
        return total

    decode_all(NetflowState(), 4 * BATCH_DATAGRAMS)  # warm up (first-use costs of numpy/Arrow kernels)
    started = time.process_time()
    flows = decode_all(NetflowState())
    return time.process_time() - started, flows


def generate_step(directory: str, flows: str) -> tuple[float, int]:
    """Write the streams and pcaps (in a child process, so the measuring parent stays small)."""
    paths = write_streams(Path(directory), int(flows))
    return timed(lambda: len(paths))


def tshark_step(pcap: str) -> tuple[float, int]:
    """tshark dissecting a pcap of exports, one output line per packet with every record's source port."""
    tshark = shutil.which("tshark") or "/usr/bin/tshark"
    command = [tshark, "-n", "-r", pcap, "-d", f"udp.port=={PORT},cflow", "-T", "fields", "-e", "cflow.srcport"]

    def run() -> int:
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        return sum(len(line.split(",")) for line in out.splitlines() if line)

    return timed(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--peer-flows", type=int, default=200_000, help="flows tshark dissects (it is slow)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"machine: {machine()}; {args.flows:,} flows per version, {RECORDS_PER_DATAGRAM} records/datagram")
    print("times are CPU seconds of the decoding process, so rates are per core even on a shared machine")
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        directory = Path(tmp)
        streams = write_streams(directory, args.flows)
        for version, name in ((9, "NetFlow v9"), (10, "IPFIX")):
            ours = measure_in_subprocess(
                f"flowscope decode ({name})", "bench_decode", "flowscope_step", str(streams[version])
            )
            peer_datagrams = read_stream(str(streams[version]))[: -(-args.peer_flows // RECORDS_PER_DATAGRAM)]
            pcap = directory / f"v{version}.pcap"
            write_pcap(peer_datagrams, pcap)
            if shutil.which("tshark") or Path("/usr/bin/tshark").exists():
                peer = measure_in_subprocess(
                    f"tshark dissect ({name})", "bench_decode", "tshark_step", str(pcap), external=True
                )
            else:
                print("tshark not installed: peer skipped", file=sys.stderr)
                peer = Measurement("tshark (not installed)", 0.0, 0, 0.0)
            print_comparison(f"{name} decode-only", "flows", ours, peer)


if __name__ == "__main__":
    main()
