"""Collector soak and burst: every datagram accounted for, memory flat, SIGTERM flushes and exits 0 (issue 16).

    python benchmarks/soak_collect.py burst  [--seconds 60]  [--rate 200000] [--queue-memory 64]
    python benchmarks/soak_collect.py steady [--seconds 600] [--rate 2500]

Replays an IPFIX stream (``flowscope.collect.encoder``: 16-field IPv4 template, 24 records per datagram, the
template every 100 datagrams) over loopback into one ``flowscope collect`` at a fixed offered rate for a fixed
time. The stream is one round of datagrams sent again and again with its sequence numbers moved on (patched
in place, vectorised), so an hour of it costs no more memory than a round. After the load, once the collector
has taken every datagram off its socket, a few closing datagrams are sent slowly: a datagram lost at the very
end of the load then shows as a sequence gap too. Then SIGTERM.

Checked (``Run.problems``):

- the collector exits 0 after SIGTERM;
- datagrams: sent = read from the socket + kernel drops (the collector's health snapshot; a full receive
  queue, ``--queue-memory``, pauses receiving, so its drops are the kernel's);
- flows: sent = stored in the lake (``count(*)``) + the IPFIX sequence gap (missing - late), and stored =
  the rows the collector says it wrote (nothing left unflushed at SIGTERM);
- memory: the process tree's RSS (sum of VmRSS, sampled every second) stays below the bound given
  (``--rss-bound``, MiB; the test passes the idle RSS + the queue + a margin).

The burst rate is twice the highest sustained no-loss rate measured in BENCHMARKS.md (100 k datagrams/s for an
8 M-flow IPFIX stream, ``bench_collect.py``), so the collector is overloaded by design: what is checked is that
the overload is counted, not that it is absorbed. The steady rate is one the collector keeps up with.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench_collect import RECORDS_PER_DATAGRAM, SEND_BATCH, descendants, flowscope_health, free_port
from common import machine
from flowscope.collect.encoder import IPV4_TEMPLATE, encode, synthetic_columns
from flowscope.collect.receive import IoVec, MMsgHdr, libc

ROUND_DATAGRAMS = 4_800
"""Datagrams per round (115,200 flows, about 5 MB): the round is resent with moved-on sequence numbers."""
CLOSING_DATAGRAMS = 8
IPFIX_SEQUENCE_AT = 8  # version, length, export time, then the sequence number (RFC 7011 3.1)
BURST_RATE = 200_000
STEADY_RATE = 2_500


class RoundSender:
    """One round of IPFIX datagrams in a single buffer, sent with sendmmsg(2); each round moves the sequence on."""

    def __init__(self, port: int) -> None:
        payloads = encode(
            10,
            IPV4_TEMPLATE,
            synthetic_columns(ROUND_DATAGRAMS * RECORDS_PER_DATAGRAM),
            records_per_datagram=RECORDS_PER_DATAGRAM,
        )
        lengths = np.array([len(p) for p in payloads], np.int64)
        self.offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        self.buffer = np.frombuffer(bytearray(b"".join(payloads)), np.uint8)
        at = self.offsets[:, None] + IPFIX_SEQUENCE_AT + np.arange(4)
        self.sequence_at = at
        self.first_sequence = self.buffer[at].copy().view(">u4").ravel().astype(np.int64)
        self.round_records = ROUND_DATAGRAMS * RECORDS_PER_DATAGRAM
        self.iovecs = (IoVec * len(payloads))()
        self.messages = (MMsgHdr * len(payloads))()
        base = self.buffer.ctypes.data
        for i, (offset, length) in enumerate(zip(self.offsets.tolist(), lengths.tolist(), strict=True)):
            self.iovecs[i].iov_base = base + offset
            self.iovecs[i].iov_len = length
            self.messages[i].msg_hdr.msg_iov = ctypes.pointer(self.iovecs[i])
            self.messages[i].msg_hdr.msg_iovlen = 1
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.sock.connect(("127.0.0.1", port))
        self.datagrams = 0
        """Datagrams sent so far; the next one is datagram ``datagrams % ROUND_DATAGRAMS`` of round ``//``."""

    def _start_round(self, number: int) -> None:
        sequence = (self.first_sequence + number * self.round_records) % (1 << 32)
        self.buffer[self.sequence_at] = sequence.astype(">u4").view(np.uint8).reshape(-1, 4)

    def send(self, rate: float, seconds: float, batch: int = SEND_BATCH) -> float:
        """Send at ``rate`` datagrams/s for ``seconds``; returns the rate achieved."""
        size = ctypes.sizeof(MMsgHdr)
        base = ctypes.addressof(self.messages)
        first, started = self.datagrams, time.perf_counter()
        end = started + seconds
        while True:
            now = time.perf_counter()
            if now >= end:
                break
            due = started + (self.datagrams - first) / rate
            if due - now > 0.001:  # sleep rather than spin, leaving the CPU to the collector
                time.sleep(due - now - 0.0005)
            while time.perf_counter() < due:
                pass
            index = self.datagrams % ROUND_DATAGRAMS
            if index == 0:
                self._start_round(self.datagrams // ROUND_DATAGRAMS)
            count = libc.sendmmsg(self.sock.fileno(), base + index * size, min(batch, ROUND_DATAGRAMS - index), 0)
            if count < 0:
                error = ctypes.get_errno()
                if error in (11, 105):  # EAGAIN / ENOBUFS: the local send queue is full, try again
                    continue
                raise OSError(error, os.strerror(error))
            self.datagrams += count
        return (self.datagrams - first) / (time.perf_counter() - started)

    @property
    def flows(self) -> int:
        return self.datagrams * RECORDS_PER_DATAGRAM


class RssSampler(threading.Thread):
    """The process tree's RSS (sum of VmRSS below ``pid``, MiB) once a second, until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.halt = pid, threading.Event()
        self.samples: list[tuple[float, float]] = []

    def run(self) -> None:
        started = time.monotonic()
        while not self.halt.wait(1.0):
            self.samples.append((time.monotonic() - started, tree_rss_mib(self.pid)))

    def stop(self) -> None:
        self.halt.set()
        self.join()


def tree_rss_mib(pid: int) -> float:
    total = 0
    for process in [pid, *descendants(pid)]:
        try:
            match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{process}/status").read_text(), re.M)
        except OSError:
            continue
        total += int(match.group(1)) if match else 0
    return total / 1024


def wait_for(predicate, timeout: float, step: float = 0.2) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def socket_counts(lake: Path) -> tuple[int, int]:
    """(datagrams the collector took from its socket, kernel drops) from its latest health snapshot."""
    listener = next(iter(flowscope_health(lake).get("listeners", {}).values()), {})
    return listener.get("datagrams", 0), listener.get("kernel_drops", 0)


def scrape(port: int, metric: str) -> float | None:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(metric)]
    return sum(values) if values else None


def lake_flows(lake: Path) -> int:
    from flowscope.query import open_lake

    with open_lake(lake) as con:
        return int(con.execute("SELECT count(*) FROM flows").fetchone()[0])


@dataclass
class Run:
    kind: str
    offered: float
    achieved: float = 0.0
    seconds: float = 0.0
    exit_code: int | None = None
    sent_datagrams: int = 0
    sent_flows: int = 0
    read_datagrams: int = 0
    kernel_drops: int = 0
    metric_drops: float | None = None
    sequence_lost: int = 0
    stored: int = 0
    rows_written: int = 0
    idle_rss: float = 0.0
    rss: list[tuple[float, float]] = field(default_factory=list)
    rss_bound: float | None = None
    drain_seconds: float = 0.0
    stderr: str = ""

    @property
    def peak_rss(self) -> float:
        return max((r for _, r in self.rss), default=0.0)

    def rss_by_quarter(self) -> list[float]:
        """Peak RSS in each quarter of the run (flat memory: the last quarter's is not above the second's)."""
        if not self.rss:
            return []
        span = self.rss[-1][0] or 1.0
        return [max((r for t, r in self.rss if q * span / 4 <= t <= (q + 1) * span / 4), default=0.0) for q in range(4)]

    def problems(self) -> list[str]:
        found = []
        if self.exit_code != 0:
            found.append(f"exit code {self.exit_code} after SIGTERM: {self.stderr[-2000:]}")
        if self.sent_datagrams != self.read_datagrams + self.kernel_drops:
            found.append(
                f"datagrams: sent {self.sent_datagrams} != read {self.read_datagrams}"
                f" + kernel drops {self.kernel_drops}"
            )
        if self.sent_flows != self.stored + self.sequence_lost:
            found.append(f"flows: sent {self.sent_flows} != stored {self.stored} + sequence gap {self.sequence_lost}")
        if self.stored != self.rows_written:
            found.append(f"stored {self.stored} != rows the collector wrote {self.rows_written}")
        if self.rss_bound is not None and self.peak_rss > self.rss_bound:
            found.append(f"peak RSS {self.peak_rss:.0f} MiB above the bound {self.rss_bound:.0f} MiB")
        return found

    def report(self) -> str:
        quarters = " / ".join(f"{q:.0f}" for q in self.rss_by_quarter())
        return (
            f"{self.kind}: offered {self.offered:,.0f} datagrams/s for {self.seconds:.0f} s,"
            f" achieved {self.achieved:,.0f}"
            f"\n  sent {self.sent_datagrams:,} datagrams = {self.sent_flows:,} flows"
            f"\n  collector read {self.read_datagrams:,} datagrams, kernel drops {self.kernel_drops:,}"
            f" (metrics endpoint: {self.metric_drops if self.metric_drops is None else f'{self.metric_drops:,.0f}'})"
            f"\n  stored {self.stored:,} flows (rows written {self.rows_written:,}), IPFIX sequence gap"
            f" {self.sequence_lost:,} flows; all read {self.drain_seconds:.1f} s after the load ended"
            f"\n  RSS (process tree, MiB): idle {self.idle_rss:.0f}, peak {self.peak_rss:.0f},"
            f" peak per quarter {quarters}"
            + (f", bound {self.rss_bound:.0f}" if self.rss_bound is not None else "")
            + f"\n  exit code after SIGTERM: {self.exit_code}"
            + f"\n  accounting: {'; '.join(self.problems()) or 'every datagram accounted for'}"
        )


def run(
    kind: str,
    rate: float,
    seconds: float,
    workdir: Path,
    *,
    queue_mib: int = 64,
    receive_buffer: int = 8 << 20,
    flush: float = 5.0,
    rss_margin_mib: float | None = 768.0,
) -> Run:
    """One collector under ``rate`` datagrams/s for ``seconds``, then SIGTERM; the figures and checks.

    ``rss_margin_mib``: the RSS bound is the idle RSS + the queue + this (the decode batches and the rows the
    output holds until its flush, up to a million); None: no bound.
    """
    lake, port, metrics = workdir / "lake", free_port(), free_port()
    command = [sys.executable, "-m", "flowscope", "-q", "--lake", str(lake), "collect"]
    command += ["--listen", f"netflow://127.0.0.1:{port}", "--metrics", f"127.0.0.1:{metrics}"]
    command += ["--queue-memory", str(queue_mib), "--receive-buffer", str(receive_buffer), "--flush", str(flush)]
    result = Run(kind, rate)
    stderr = open(workdir / "collect.err", "w+")  # noqa: SIM115 (read back after the process ends)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        if not wait_for(lambda: flowscope_health(lake) and scrape(metrics, "flowscope_collector") is not None, 120):
            raise RuntimeError("the collector did not start within 120 s")
        sender = RoundSender(port)
        result.idle_rss = tree_rss_mib(process.pid)
        if rss_margin_mib is not None:
            result.rss_bound = result.idle_rss + queue_mib + rss_margin_mib
        sampler = RssSampler(process.pid)
        sampler.start()
        result.achieved = sender.send(rate, seconds)
        result.seconds = seconds
        ended = time.monotonic()

        def all_read() -> bool:
            read, drops = socket_counts(lake)
            return read + drops >= sender.datagrams

        wait_for(all_read, 600)
        result.drain_seconds = time.monotonic() - ended
        for _ in range(CLOSING_DATAGRAMS):  # slowly: a tail lost in the burst now shows as a sequence gap
            sender.send(1000.0, 0.002, batch=1)
        wait_for(all_read, 60)
        result.metric_drops = scrape(metrics, "flowscope_collector_socket_drops_total")
        sampler.stop()
        result.rss = sampler.samples
        process.send_signal(signal.SIGTERM)
        result.exit_code = process.wait(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stderr.seek(0)
        result.stderr = stderr.read()
        stderr.close()
    health = flowscope_health(lake)
    listener = next(iter(health.get("listeners", {}).values()), {})
    result.sent_datagrams, result.sent_flows = sender.datagrams, sender.flows
    result.read_datagrams, result.kernel_drops = listener.get("datagrams", 0), listener.get("kernel_drops", 0)
    result.rows_written = health.get("rows_written", {}).get("flows", 0)
    result.sequence_lost = sum(
        max(0, s["missing"] - s["late"]) for e in health.get("exporters", []) for s in e["streams"]
    )
    result.stored = lake_flows(lake)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("burst", "steady"))
    parser.add_argument("--seconds", type=float, help="default: 60 (burst), 600 (steady)")
    parser.add_argument("--rate", type=float, help=f"datagrams/s; default {BURST_RATE} (burst), {STEADY_RATE} (steady)")
    parser.add_argument("--queue-memory", type=int, default=64, help="the collector's --queue-memory (MiB)")
    parser.add_argument("--receive-buffer", type=int, default=8 << 20)
    parser.add_argument("--keep", action="store_true", help="keep the lake (its path is printed)")
    args = parser.parse_args()
    seconds = args.seconds or (60.0 if args.kind == "burst" else 600.0)
    rate = args.rate or (BURST_RATE if args.kind == "burst" else STEADY_RATE)
    workdir = Path(tempfile.mkdtemp(prefix=f"soak-{args.kind}-"))
    print(f"machine: {machine()}; work directory {workdir}", flush=True)
    result = run(args.kind, rate, seconds, workdir, queue_mib=args.queue_memory, receive_buffer=args.receive_buffer)
    print(result.report())
    print(json.dumps({"rss_samples_mib": [round(r) for _, r in result.rss]}))
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(1 if result.problems() else 0)


if __name__ == "__main__":
    main()
