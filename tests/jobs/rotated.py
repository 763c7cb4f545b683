"""Rotated capture directories for the scale-out tests: hand-made packets at chosen times, cut into files, and
the one-meter reference each split must equal."""

from __future__ import annotations

import itertools
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
from tests.capture.frame_builders import ether, icmp, ipv4, ipv6, tcp, udp

from flowscope.capture.options import MeterOptions
from flowscope.capture.source import CaptureSource
from flowscope.jobs.stitch import RunState, Stitcher, meter_run

START_S = 1_700_000_000
ORDER = ["time_flow_start", "src_addr", "dst_addr", "src_port", "dst_port", "proto", "vlan_id", "time_flow_end"]


def write_pcap(path: Path, packets: Sequence[tuple[float, bytes]]) -> None:
    """A classic microsecond pcap of (seconds after START_S, frame) pairs, in the order given."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for seconds, frame in packets:
        micros = round(seconds * 1_000_000)
        out.append(struct.pack("<IIII", START_S + micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)))
        out.append(frame)
    path.write_bytes(b"".join(out))


def rotate(packets: Sequence[tuple[float, bytes]], cuts: Sequence[float], folder: Path) -> list[Path]:
    """Packets (in capture order) cut into files at the given times, named as tcpdump -C numbers them."""
    folder.mkdir(parents=True, exist_ok=True)
    edges = [float("-inf"), *cuts, float("inf")]
    files = []
    for number, (low, high) in enumerate(itertools.pairwise(edges)):
        path = folder / f"cap.pcap{number or ''}"
        write_pcap(path, [(t, frame) for t, frame in packets if low <= t < high])
        files.append(path)
    return files


def split_capture(capture: Path, folder: Path, packets_per_file: int) -> list[Path]:
    """``editcap -c``: a real capture cut into rotated pieces."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["editcap", "-c", str(packets_per_file), str(capture), str(folder / "piece")], check=True)
    return sorted(folder.iterdir())


def one_meter(files: Sequence[Path], options: MeterOptions) -> pa.Table:
    return canonical(list(CaptureSource(files, options)))


def stitched(
    files: Sequence[Path], options: MeterOptions, cuts: Sequence[int], *, opens_stream: bool = True
) -> tuple[pa.Table, Stitcher]:
    """``files`` metered as runs cut before the given file indexes, each state through Arrow, then stitched
    (``opens_stream``: run 0 keeps no head, as ``read --workers`` meters it)."""
    edges = [0, *cuts, len(files)]
    stitcher = Stitcher(options)
    tables: list[pa.Table] = []
    for index, (low, high) in enumerate(itertools.pairwise(edges)):
        partial = meter_run(files[low:high], options, index=index, opens_stream=opens_stream and index == 0)
        tables += partial.flows
        tables += stitcher.add(RunState.from_arrow(partial.state.to_arrow()))
    tables += stitcher.finish()
    return canonical(tables), stitcher


def canonical(tables: list[pa.Table]) -> pa.Table:
    table = pa.concat_tables(tables)
    return table.sort_by([(name, "ascending") for name in ORDER])


def mixed_packets() -> list[tuple[float, bytes]]:
    """Flows chosen around the cut times 10, 20, 40 and 60 s (with idle 10 s, active 30 s)."""
    a, b = "10.0.0.1", "10.0.0.2"
    packets: list[tuple[float, bytes]] = []

    def add(t: float, payload: bytes, proto: int, src: str = a, dst: str = b, **extra: int) -> None:
        packets.append((t, ether(ipv4(payload, proto, src, dst, **extra))))

    for step in range(60):  # a long flow: every 1.5 s for 90 s, over every cut and three active periods
        if step % 3:
            add(0.5 + step * 1.5, tcp(1000, 80, 0x10), 6, a, b)
        else:
            add(0.6 + step * 1.5, tcp(80, 1000), 6, b, a)
    for t in (8.0, 9.5, 11.0, 12.0):  # continues over the cut at 10 s within active
        add(t, udp(2000, 53), 17)
    for t in (5.0, 15.0, 16.0):  # an idle gap of exactly idle across the cut at 10 s
        add(t, udp(2001, 53), 17)
    for t in (19.0, 29.5, 38.0, 47.0, 50.5):  # sparse: joins over 20 s, active split inside the run after 40 s
        add(t, tcp(3000, 443, 0x02 if t == 19.0 else 0x10), 6)
    for t in (9.9, 10.0, 10.1):  # echo request and replies around the cut
        add(t, icmp(8 if t != 10.0 else 0, 0, b"ping"), 1, a if t != 10.0 else b, b if t != 10.0 else a)
    for t in (39.0, 41.0):  # fragments: first and later one in the same run
        add(t, udp(4000, 4001, bytes(64))[:24], 17, frag_offset=0, more_fragments=True, ident=9)
        add(t + 0.2, bytes(48), 17, frag_offset=3, ident=9)
    for t in (55.0, 58.0, 61.0, 64.0, 91.0, 92.0):  # ends open after the last cut, idle gap, again
        add(t, tcp(5000, 22, 0x18), 6, "10.0.0.3", "10.0.0.4")
    for step in range(40):  # many short flows everywhere (high churn)
        add(step * 2.3, udp(10000 + step, 53), 17, f"10.1.{step}.1", "10.0.0.53")
    packets.append((33.0, ether(ipv6(udp(6000, 6001), 17, "2001:db8::1", "2001:db8::2"), 0x86DD)))
    packets.append((44.0, ether(ipv6(udp(6001, 6000), 17, "2001:db8::2", "2001:db8::1"), 0x86DD)))
    packets.sort(key=lambda packet: packet[0])
    return packets
