"""Replay benchmark: the highest rate flowscope's collector and nfcapd take a recorded export stream without loss.

    python benchmarks/bench_collect.py [--flows 1000000] [--rates 25000,50000,...,0] [--buffer 16777216]

Generates a NetFlow v9 and an IPFIX stream (``flowscope.collect.encoder``: 16-field IPv4 template, 24 records
per datagram, the template every 100 datagrams), then, for each protocol and each collector, replays the
whole stream over loopback at each offered rate (datagrams/s; 0 = as fast as the sender can) into a fresh
collector process: ``flowscope collect`` (one worker) and ``nfcapd``, both granted the same socket buffer
(flowscope asks for no more than net.core.rmem_max unless ``--force-buffer``). Loss = flows sent - flows
stored (flowscope: rows in the lake; nfcapd: ``nfdump -I``). A collector's no-loss rate is the highest rate
the sender achieved in a loss-free trial before the first loss (on a busy machine the sender does not always
reach the offered rate). The sender uses sendmmsg(2) in batches of 32,
paced against the clock; the achieved rate is printed next to the offered one. Peak RSS is each collector
process tree's own (the sum of each process's VmHWM, sampled until it exits), the largest over its trials.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import machine
from flowscope.collect.receive import IoVec, MMsgHdr, libc

SEND_BATCH = 32
RECORDS_PER_DATAGRAM = 24
QUIET_SECONDS = 2.0


libc.sendmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
libc.sendmmsg.restype = ctypes.c_int


class Sender:
    """A whole stream prepared for sendmmsg(2): one mmsghdr per datagram, built once."""

    def __init__(self, payloads: list[bytes]) -> None:
        self.payloads = payloads
        self.buffers = [ctypes.create_string_buffer(p, len(p)) for p in payloads]
        self.iovecs = (IoVec * len(payloads))()
        self.messages = (MMsgHdr * len(payloads))()
        for i, buffer in enumerate(self.buffers):
            self.iovecs[i].iov_base = ctypes.addressof(buffer)
            self.iovecs[i].iov_len = len(payloads[i])
            self.messages[i].msg_hdr.msg_iov = ctypes.pointer(self.iovecs[i])
            self.messages[i].msg_hdr.msg_iovlen = 1

    def send(self, port: int, rate: float) -> float:
        """Send every datagram to 127.0.0.1:port at ``rate`` datagrams/s (0: unpaced); returns seconds taken."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        sock.connect(("127.0.0.1", port))
        size = ctypes.sizeof(MMsgHdr)
        base = ctypes.addressof(self.messages)
        total = len(self.payloads)
        sent = 0
        started = time.perf_counter()
        while sent < total:
            if rate:
                due = started + sent / rate
                ahead = due - time.perf_counter()
                if ahead > 0.001:  # sleep rather than spin, leaving the CPU to the collector
                    time.sleep(ahead - 0.0005)
                while time.perf_counter() < due:
                    pass
            count = libc.sendmmsg(sock.fileno(), base + sent * size, min(SEND_BATCH, total - sent), 0)
            if count < 0:
                error = ctypes.get_errno()
                if error in (11, 105):  # EAGAIN / ENOBUFS: the local send queue is full, try again
                    continue
                raise OSError(error, os.strerror(error))
            sent += count
        elapsed = time.perf_counter() - started
        sock.close()
        return elapsed


@dataclass
class Trial:
    peer: str
    version: int
    offered: float
    achieved: float
    received: int
    sent: int
    peak_rss_mib: float
    granted_buffer: str
    stored_after: float | None = None
    """Seconds from the first datagram sent until the last flow was stored (flowscope only)."""
    kernel_drops: int | None = None
    """Datagrams the kernel dropped on the collector's socket (flowscope reports it)."""
    peaks: str = ""
    """Each process's peak RSS in MiB, in pid order (flowscope: the collector, then its receive process)."""

    @property
    def loss(self) -> int:
        return self.sent - self.received


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """All processes below ``pid`` (from /proc/PID/task/*/children)."""
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            for child in children.read_text().split():
                found += [int(child), *descendants(int(child))]
        except OSError:
            continue
    return found


def tree_peaks_mib(root: int, peaks: dict[int, float]) -> None:
    """Each process's peak RSS (VmHWM) below ``root``, into ``peaks`` by pid (the ``timeout`` wrapper itself is
    not counted; VmHWM only grows, so the last reading of a process is its peak)."""
    for pid in descendants(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        if match:
            peaks[pid] = max(peaks.get(pid, 0.0), int(match.group(1)) / 1024)


def stop_and_measure(process: subprocess.Popen, signum: int, peaks: dict[int, float], timeout: float = 120) -> float:
    """Signal a collector, wait for it to finish, and return its peak RSS: the sum of its processes' VmHWM,
    sampled until it exits, each process's also in ``peaks`` (collector first)."""
    tree_peaks_mib(process.pid, peaks)
    process.send_signal(signum)
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        tree_peaks_mib(process.pid, peaks)
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            break
        time.sleep(0.05)
    return sum(peaks.values())


def flowscope_health(lake: Path) -> dict:
    files = sorted((lake / "_collector").glob("health-*.json"))
    return json.loads(files[0].read_text()) if files else {}


def run_flowscope(sender: Sender, version: int, rate: float, buffer: int, workdir: Path) -> Trial:
    lake = workdir / "lake"
    port = free_port()
    process = subprocess.Popen(
        [
            "timeout",
            "-s",
            "INT",
            "600",
            sys.executable,
            "-m",
            "flowscope",
            "-q",
            "--lake",
            str(lake),
            "collect",
            "--listen",
            f"netflow://127.0.0.1:{port}",
            "--receive-buffer",
            str(buffer),
            "--flush",
            "5",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not flowscope_health(lake) and time.monotonic() < deadline:  # bound and housekeeping once
        time.sleep(0.1)
    started = time.monotonic()
    seconds = sender.send(port, rate)
    last, since = -1, time.monotonic()
    while time.monotonic() - since < QUIET_SECONDS:  # decoding catches up: wait until the count stops moving
        flows = flowscope_health(lake).get("rows_written", {}).get("flows", 0)
        if flows != last:
            last, since = flows, time.monotonic()
        time.sleep(0.1)
    stored_after = since - started  # health is saved once a second: within about a second
    peaks: dict[int, float] = {}
    peak = stop_and_measure(process, signal.SIGINT, peaks)
    health = flowscope_health(lake)
    received = health.get("rows_written", {}).get("flows", 0)
    listener = next(iter(health.get("listeners", {}).values()), {})
    shutil.rmtree(lake, ignore_errors=True)
    return Trial(
        "flowscope",
        version,
        rate,
        len(sender.payloads) / seconds,
        received,
        0,
        peak,
        str(listener.get("receive_buffer", "?")),
        stored_after,
        listener.get("kernel_drops"),
        " + ".join(f"{mib:.0f}" for _, mib in sorted(peaks.items())),
    )


def run_nfcapd(sender: Sender, version: int, rate: float, buffer: int, workdir: Path) -> Trial:
    store = workdir / "nfcapd"
    store.mkdir()
    port = free_port()
    log = workdir / "nfcapd.log"
    with open(log, "w") as handle:
        process = subprocess.Popen(
            [
                "timeout",
                "600",
                "nfcapd",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "-B",
                str(buffer),
                "-w",
                str(store),
                "-t",
                "3600",
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    time.sleep(1.0)
    seconds = sender.send(port, rate)
    time.sleep(QUIET_SECONDS)
    peak = stop_and_measure(process, signal.SIGTERM, {})
    totals = subprocess.run(["nfdump", "-R", str(store), "-I"], capture_output=True, text=True).stdout
    match = re.search(r"^Flows: (\d+)$", totals, re.M)
    granted = re.search(r"SO_RCVBUF to (\d+) bytes", log.read_text())
    shutil.rmtree(store, ignore_errors=True)
    return Trial(
        "nfcapd",
        version,
        rate,
        len(sender.payloads) / seconds,
        int(match.group(1)) if match else 0,
        0,
        peak,
        granted.group(1) if granted else "?",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument(
        "--rates",
        default="25000,50000,60000,70000,80000,90000,100000,125000,150000,200000,0",
        help="offered datagrams/s, ascending; 0 = unpaced (as fast as the sender goes)",
    )
    parser.add_argument("--buffer", type=int, default=16 << 20, help="socket receive buffer both collectors ask for")
    parser.add_argument(
        "--force-buffer",
        action="store_true",
        help="let flowscope exceed net.core.rmem_max (SO_RCVBUFFORCE, as root) as it does by default; otherwise "
        "it asks for no more than rmem_max, so both collectors get the same buffer",
    )
    parser.add_argument("--versions", default="9,10")
    parser.add_argument(
        "--recent",
        action="store_true",
        help="flows that started in the last finished hour (not in 2023): within the roll-ups' retention, so "
        "the collector's roll-up keeper computes their hour when it stops (one 1 m and one 5 m partition of "
        "about 1 M groups: random AS numbers and ports)",
    )
    args = parser.parse_args()
    if shutil.which("nfcapd") is None or shutil.which("nfdump") is None:
        sys.exit("nfcapd/nfdump are not installed (scripts/system-deps.sh installs them)")
    from flowscope.collect.encoder import IPV4_TEMPLATE, encode, synthetic_columns

    rates = [float(r) for r in args.rates.split(",")]
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    flowscope_buffer = args.buffer if args.force_buffer else min(args.buffer, rmem_max)
    start = {"start_ms": (int(time.time()) // 3600 - 1) * 3_600_000} if args.recent else {}
    columns = synthetic_columns(args.flows, **start)
    print(
        f"machine: {machine()}; {args.flows:,} flows per stream, {RECORDS_PER_DATAGRAM} per datagram, "
        f"receive buffer asked: nfcapd {args.buffer:,} bytes, flowscope {flowscope_buffer:,} bytes "
        f"(net.core.rmem_max {rmem_max:,}; Linux grants twice the size asked)"
    )
    summary = []
    for version in (int(v) for v in args.versions.split(",")):
        payloads = encode(version, IPV4_TEMPLATE, columns, records_per_datagram=RECORDS_PER_DATAGRAM)
        sender = Sender(payloads)
        name = {9: "NetFlow v9", 10: "IPFIX"}[version]
        print(f"\n{name}: {len(payloads):,} datagrams")
        best: dict[str, Trial | None] = {}
        peaks: dict[str, float] = {}
        for peer, run in (("flowscope", run_flowscope), ("nfcapd", run_nfcapd)):
            best[peer] = None
            for rate in rates:
                with tempfile.TemporaryDirectory(prefix="bench-collect-") as workdir:
                    buffer = flowscope_buffer if peer == "flowscope" else args.buffer
                    trial = run(sender, version, rate, buffer, Path(workdir))
                trial.sent = args.flows
                peaks[peer] = max(peaks.get(peer, 0.0), trial.peak_rss_mib)
                offered = f"{rate:,.0f}" if rate else "unpaced"
                print(
                    f"  {peer:<9} offered {offered:>9} dgrams/s  achieved {trial.achieved:>9,.0f}  "
                    f"stored {trial.received:>9,} flows  loss {trial.loss:>8,} ({100 * trial.loss / trial.sent:5.1f} %)"
                    f"  peak RSS {trial.peak_rss_mib:7.1f} MiB"
                    + (f" ({trial.peaks})" if trial.peaks else "")
                    + f"  buffer granted {trial.granted_buffer}"
                    + (
                        f"  all stored after {trial.stored_after:.1f} s"
                        f" (~{trial.received / trial.stored_after:,.0f} flows/s)"
                        if trial.stored_after
                        else ""
                    )
                    + (f"  kernel drops {trial.kernel_drops:,} datagrams" if trial.kernel_drops is not None else ""),
                    flush=True,
                )
                if trial.loss:
                    break
                if best[peer] is None or trial.achieved > best[peer].achieved:
                    best[peer] = trial
        summary.append((name, best, peaks))
    print("\nhighest no-loss rate (achieved datagrams/s and flows/s):")
    for name, best, peaks in summary:
        rates_found = {}
        for peer in ("flowscope", "nfcapd"):
            trial = best[peer]
            rates_found[peer] = trial.achieved if trial else 0.0
            text = (
                f"{trial.achieved:,.0f} dgrams/s = {trial.achieved * RECORDS_PER_DATAGRAM:,.0f} flows/s"
                if trial
                else "none"
            )
            print(f"  {name:<10} {peer:<9} {text}  (peak RSS {peaks[peer]:.1f} MiB)")
        if rates_found["nfcapd"]:
            print(f"  {name:<10} ratio flowscope / nfcapd: {rates_found['flowscope'] / rates_found['nfcapd']:.2f}x")


if __name__ == "__main__":
    main()
