"""The collector: a receive process per socket, one decode loop, an output thread, health, workers.

Receiving and decoding never share a GIL: each listener's socket is read by its own process
(``receive.receive_forever``, started by ``_start_receiver``: recvmmsg, a queue of 8 MiB in memory then a
spool file, batches forwarded over a pipe as one bytes object each). The decode loop gathers what arrived
(bigger batches decode faster per datagram), decodes, hands the tables to the output (``pipeline.Stream``: a
thread that writes them to the ``--to`` destinations and flushes those on a timer; Parquet encoding releases
the GIL, so it overlaps decoding on a second core) and accounts health. A burst the decoder cannot keep up
with waits in the receive process's queue; only beyond that does the kernel socket buffer fill, and its
drops are counted and reported, never silent.

SIGINT/SIGTERM: the receive processes drain their sockets without waiting and forward the rest; the
decode loop decodes everything, the output flushes, templates and health are saved, and the process
exits 0. ``--workers N`` runs N such collectors on SO_REUSEPORT sockets (the kernel spreads exporters
over them by address and port).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import site
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import pyarrow as pa

import flowscope
from flowscope.collect.datagrams import Datagrams, Decoded, unpack
from flowscope.collect.dispatch import decode_netflow
from flowscope.collect.health import HEALTH_DIR, Health, ListenerHealth, load_snapshots, merge_snapshots, save_health
from flowscope.collect.metrics import MetricsServer
from flowscope.collect.packed import merge_packed, packed_count
from flowscope.collect.receive import (
    QUEUE_BYTES,
    SPOOL_BYTES,
    Listen,
    SpoolCounters,
    granted_buffer,
    kernel_drops,
    open_socket,
    widen_pipe,
)
from flowscope.collect.sampling import SamplingConfig
from flowscope.collect.sflow import decode_sflow
from flowscope.collect.state import NetflowState
from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError
from flowscope.lake.layout import Lake
from flowscope.lake.writer import LakeLimits
from flowscope.memory import bound_freed_memory, return_freed_memory, without_pandas
from flowscope.pipeline import Stream, tag
from flowscope.readers.options import ReadOptions
from flowscope.schema import INTERFACE_COUNTERS
from flowscope.sinks.registry import DestinationContext, open_destinations
from flowscope.stopping import ProcessGroup, on_stop_signal
from flowscope.transforms.anonymize import read_key
from flowscope.transforms.enrich import EnrichConfig

if TYPE_CHECKING:
    from flowscope.kafka.raw import RawProducer

log = logging.getLogger("flowscope.collect")

DECODE_BATCH = 1024
"""Datagrams gathered for one decode (a forwarded message may add up to ``receive.FORWARD_BYTES``): about 25 k
flows, 5 MiB of Arrow rows. A backlog waits as datagrams (70 bytes per flow) rather than as rows (200 bytes)."""
OUTPUT_QUEUE_BYTES = 4 << 20
"""Decoded tables waiting for the output's writer thread: beyond this, decoding waits (``pipeline.Stream``)."""
OUTPUT_BUFFER_BYTES = 8 << 20
"""Rows the lake holds per table until it writes a file (about 42 k flows), unless ``--flush`` comes first.
A 1 M-flow burst makes 23 files of 2.6 MiB of Parquet (compaction merges them), where 16 MiB made 11 for 16 MiB
more peak memory (bench_collect.py); below 8 k flows/s the ``--flush`` age (5 s) still cuts files first."""
GATHER_SECONDS = 0.05  # how long the decode loop waits to fill a batch
DECODE_NICENESS = 5  # the decoder yields the CPU to the receive processes
HOUSEKEEPING_SECONDS = 1.0
RELEASE_SECONDS = 10.0
"""How often the collector hands freed heap pages back (malloc and mimalloc keep them). In a 10-minute steady
run (benchmarks/soak_collect.py steady) the lowest RSS of each half-minute rose from 271 to 441 MiB without it;
with it the peak per 2.5 minutes was 540, 532, 545, 455 MiB: no trend (docs/RELIABILITY.md)."""
LOG_EVERY_SECONDS = 10.0


@dataclass(frozen=True)
class CollectorConfig:
    listens: tuple[Listen, ...]
    lake: str
    destinations: tuple[str, ...] = ("lake",)
    """Where flows and interface counters go (``--to``): destination URLs, the lake by default."""
    flush_seconds: float = 5.0
    receive_buffer: int = 64 << 20
    queue_memory: int = QUEUE_BYTES
    """Bytes of datagrams each receive process may hold in memory while decoding catches up (burst absorption)."""
    queue_spool: int = SPOOL_BYTES
    """Bytes of datagrams each receive process may hold beyond that in a spool file in ``LAKE/_collector``."""
    sampling_config: str | None = None
    enrich: str | None = None
    """``--enrich FILE.toml``: each collector process loads the databases itself (and reloads changed ones)."""
    anonymize: str | None = None
    """``--anonymize KEYFILE``: every address anonymised (after enrichment)."""
    run_id: str = ""
    """Identifies one ``flowscope collect`` run: ``flowscope exporters`` merges the workers of the latest."""
    raw_to: str | None = None
    """``--raw-to kafka://...``: publish the datagrams undecoded (decoded too only when ``destinations``)."""
    keep_rollups: bool = False
    """``--rollups``: the lake destination keeps the roll-ups current (one worker of ``--workers`` N does)."""


class RateLimitedLog:
    """Logs each skip reason at most once per ``every`` seconds, with the count since the last line."""

    def __init__(self, every: float = LOG_EVERY_SECONDS) -> None:
        self.every = every
        self.pending: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self.last: dict[str, float] = {}

    def add(self, protocol: str, skips: Skips) -> None:
        for reason, count in skips.counts.items():
            key = f"{protocol}: {reason}"
            self.pending[key] += count
            if reason in skips.examples:
                self.examples[key] = skips.examples[reason]
        self.emit()

    def emit(self, *, force: bool = False) -> None:
        now = time.monotonic()
        for key, count in list(self.pending.items()):
            if force or now - self.last.get(key, -self.every) >= self.every:
                example = self.examples.pop(key, None)
                log.warning("%d skipped, %s%s", count, key, f" (e.g. {example})" if example else "")
                self.last[key] = now
                del self.pending[key]


@dataclass
class _Listener:
    """One bound socket, the process that reads it, the pipe its datagrams arrive on and the one that stops it."""

    spec: Listen
    sock: socket.socket
    health: ListenerHealth
    process: subprocess.Popen[bytes]
    conn: Connection
    stop_fd: int
    spooled: SpoolCounters
    drops_at_start: int = 0
    done: bool = False
    stopping: bool = False

    def stop(self) -> None:
        """Ask the receive process to drain its socket, forward the rest and end (``receive.StopPipe``)."""
        if not self.stopping:
            self.stopping = True
            with contextlib.suppress(OSError):
                os.write(self.stop_fd, b"s")

    def account(self) -> None:
        """Copy the socket's drop counter and the receive process's spool counters into the health."""
        drops = kernel_drops(self.sock)
        if drops is not None:
            self.health.kernel_drops = drops - self.drops_at_start
        self.health.spooled_datagrams, self.health.spooled_bytes = self.spooled.read()


def _start_receiver(
    sock: socket.socket, memory: int, spool: int, spool_dir: Path
) -> tuple[subprocess.Popen[bytes], Connection, int, SpoolCounters]:
    """A receive process for ``sock`` (``receive.main``): the process, the pipe it forwards on, its stop pipe,
    the counters of what it spooled.

    A fresh interpreter that imports ``receive.py`` alone (standard library only): 15 MiB at idle. Forked from
    the collector, it shared, and was counted with, the collector's 60 MiB of imports; multiprocessing's
    spawn also starts its resource tracker, one more 12 MiB process.
    """
    data_read, data_write = os.pipe()
    stop_read, stop_write = os.pipe()
    package_root = Path(flowscope.__file__).resolve().parent.parent
    env = dict(os.environ)
    if package_root not in {Path(p).resolve() for p in site.getsitepackages()}:  # a source tree on sys.path only
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package_root), os.environ.get("PYTHONPATH")]))
    spooled, counters_fd = SpoolCounters.create()
    fds = (sock.fileno(), data_write, stop_read, counters_fd)
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from flowscope.collect.receive import main; main(sys.argv[1:])"]
            + [str(fd) for fd in fds]
            + [str(memory), str(spool), str(spool_dir)],
            pass_fds=fds,
            env=env,
        )
    except BaseException:
        for fd in (data_read, data_write, stop_read, stop_write, counters_fd):
            os.close(fd)
        raise
    for fd in (data_write, stop_read, counters_fd):
        os.close(fd)
    conn = Connection(data_read, writable=False)
    widen_pipe(conn)
    return process, conn, stop_write, spooled


@dataclass
class Collector:
    """One collector process: ``start`` binds, ``run`` decodes until ``stop`` is called, then flushes."""

    config: CollectorConfig
    name: str = "main"
    reuse_port: bool = False
    health: Health = field(default_factory=Health)

    def __post_init__(self) -> None:
        self.lake = Lake.at(self.config.lake)
        self.stopping = threading.Event()
        self.listeners: list[_Listener] = []
        self._next_release = time.monotonic() + RELEASE_SECONDS
        self.netflow_state: NetflowState | None = None
        self.output: Stream | None = None
        self.raw: RawProducer | None = None
        self.log = RateLimitedLog()
        self.health_name = f"{socket.gethostname()}-{self.name}"
        self.spool_dir = self.lake.root / HEALTH_DIR

    def start(self) -> None:
        """Bind every listener (errors here are the user's: port in use, bad address) and start receiving.

        Receive processes are started before this process starts any thread of its own.
        """
        transforms = ReadOptions(
            enrich=None if self.config.enrich is None else EnrichConfig.load(self.config.enrich),
            anonymize=None if self.config.anonymize is None else read_key(self.config.anonymize),
        ).transforms()
        if any(spec.protocol == "netflow" for spec in self.config.listens):
            sampling = SamplingConfig.load(self.config.sampling_config)
            self.netflow_state = NetflowState.open(self.lake.root, sampling)
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        try:
            for spec in self.config.listens:
                sock = open_socket(spec, receive_buffer=self.config.receive_buffer, reuse_port=self.reuse_port)
                health = ListenerHealth(address=spec.name, protocol=spec.protocol, receive_buffer=granted_buffer(sock))
                self.health.listeners[spec.name] = health
                process, conn, stop_fd, spooled = _start_receiver(
                    sock, self.config.queue_memory, self.config.queue_spool, self.spool_dir
                )
                listener = _Listener(spec, sock, health, process, conn, stop_fd, spooled, kernel_drops(sock) or 0)
                self.listeners.append(listener)
        except BaseException:
            self.close()
            raise
        # Receiving is the latency-critical part: when the machine is busy, the receive processes (started
        # above, at the old priority) should get the CPU before decoding, which can catch up later.
        os.nice(DECODE_NICENESS)
        bound_freed_memory()
        pa.array(np.zeros(1))  # pyarrow's first conversion tries to import pandas: done before traffic
        age = self.config.flush_seconds
        destination_context = DestinationContext(
            self.lake, LakeLimits(max_age=age, max_bytes=OUTPUT_BUFFER_BYTES), keep_rollups=self.config.keep_rollups
        )
        if self.config.destinations:
            sink = open_destinations(self.config.destinations, destination_context)
            self.output = Stream(sink, transforms, flush_seconds=age, queue_bytes=OUTPUT_QUEUE_BYTES)
        if self.config.raw_to is not None:
            from flowscope.kafka.raw import RawProducer
            from flowscope.kafka.url import parse

            self.raw = RawProducer(parse(self.config.raw_to))
        for listener in self.listeners:
            log.info(
                "listening on %s (receive buffer %d bytes granted)", listener.spec.name, listener.health.receive_buffer
            )

    def stop(self) -> None:
        """Ask for a clean stop (safe in a signal handler): receivers drain, then everything is flushed."""
        self.stopping.set()

    def run(self) -> None:
        """Decode until stopped and every receive process has forwarded its last datagram, then flush."""
        next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
        stop_sent = False
        try:
            while not all(listener.done for listener in self.listeners):
                if self.stopping.is_set() and not stop_sent:
                    for listener in self.listeners:
                        listener.stop()
                    stop_sent = True
                self._decode_arrived()
                if time.monotonic() >= next_housekeeping:
                    self._housekeeping()
                    next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
        finally:
            self.close()

    def _receive_ready(self, timeout: float) -> dict[str, list[bytes]]:
        """Packed batches from every receive process that has one ready, per protocol."""
        open_conns = {listener.conn: listener for listener in self.listeners if not listener.done}
        arrived: dict[str, list[bytes]] = {}
        # wait() returns some of the objects it was given (Connections here); its stub widens them
        for conn in cast(list[Connection], wait(list(open_conns), timeout)):
            listener = open_conns[conn]
            try:
                packed = conn.recv_bytes()
            except (EOFError, OSError):
                packed = b""
                if not listener.stopping:
                    log.error("%s: receive process ended unexpectedly", listener.spec.name)
            if not packed:
                listener.done = True
                continue
            arrived.setdefault(listener.spec.protocol, []).append(packed)
            listener.health.datagrams += packed_count(packed)
            listener.health.bytes += len(packed)
        return arrived

    def _decode_arrived(self) -> None:
        """Gather for a moment (per-batch costs dominate small batches; a few ms of latency are free), decode."""
        pending = self._receive_ready(0.2)
        gather_until = time.monotonic() + GATHER_SECONDS
        while sum(packed_count(p) for batches in pending.values() for p in batches) < DECODE_BATCH:
            left = gather_until - time.monotonic()
            more = self._receive_ready(max(0.0, left)) if left > 0 else {}
            if not more:
                break
            for protocol, batches in more.items():
                pending.setdefault(protocol, []).extend(batches)
        for protocol, batches in pending.items():
            datagrams = unpack(merge_packed(batches))
            if self.raw is not None:
                self.raw.send(protocol, datagrams)
            if self.output is not None:
                self._decode(protocol, datagrams)

    def _decode(self, protocol: str, datagrams: Datagrams) -> None:
        try:
            if protocol == "sflow":
                decoded = decode_sflow(datagrams)
            else:
                assert self.netflow_state is not None, "start() opens it when a listener is netflow"
                decoded = decode_netflow(datagrams, self.netflow_state)
        except Exception as exc:  # a decoder bug must cost one batch, counted, not the collector
            log.exception("%s decoder failed on a batch of %d datagrams", protocol, len(datagrams))
            skips = Skips(unit="datagrams")
            skips.add(f"decoder error ({type(exc).__name__})", len(datagrams), str(exc)[:200])
            decoded = Decoded(skips=skips)
        assert self.output is not None, "start() opens the output"
        if decoded.flows.num_rows:
            self.output.write(decoded.flows)
            self.health.rows_written["flows"] += decoded.flows.num_rows
        if decoded.counters is not None and decoded.counters.num_rows:
            self.output.write(tag(decoded.counters, INTERFACE_COUNTERS))
            self.health.rows_written[INTERFACE_COUNTERS] += decoded.counters.num_rows
        self.health.observe(protocol, decoded)
        if decoded.skips.counts:
            self.log.add(protocol, decoded.skips)

    def _housekeeping(self) -> None:
        if self.raw is not None:
            self.raw.sink.serve()
        for listener in self.listeners:
            listener.account()
        self.log.emit()
        self.save_health()
        if time.monotonic() >= self._next_release:
            return_freed_memory(arrow=True)
            self._next_release = time.monotonic() + RELEASE_SECONDS

    def save_health(self) -> None:
        try:
            save_health(
                self.lake.root, self.health, self.health_name, run_id=self.config.run_id, state=self.netflow_state
            )
        except OSError as exc:
            log.warning("cannot save health snapshot: %s", exc)

    def close(self) -> None:
        """Stop receivers, flush the output, persist templates and health, close sockets (idempotent)."""
        for listener in self.listeners:
            listener.stop()
            try:
                listener.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                listener.process.kill()
                listener.process.wait()
            listener.account()
            listener.sock.close()
            listener.conn.close()
            os.close(listener.stop_fd)
        self.listeners = []
        if self.output is not None:
            self.output.close()
        if self.raw is not None:
            self.raw.close()
            self.raw = None
        if self.netflow_state is not None:
            self.netflow_state.save(force=True)
        self.log.emit(force=True)
        self.save_health()


def run_collector(config: CollectorConfig, metrics: str | None = None) -> Collector:
    """Run one collector process in the foreground until SIGINT/SIGTERM (without pandas: ``without_pandas``)."""
    with without_pandas():
        collector = Collector(config)
        collector.start()
        server = MetricsServer(metrics, lambda: merge_snapshots([collector.health.snapshot()])) if metrics else None
        on_stop_signal(collector.stop)
        try:
            collector.run()
        finally:
            if server is not None:
                server.close()
    return collector


def _worker(config: CollectorConfig, index: int) -> None:
    logging.basicConfig(level=logging.INFO, format=f"w{index}: %(message)s")
    collector = Collector(config, name=f"w{index}", reuse_port=True)
    on_stop_signal(collector.stop)
    with without_pandas():
        try:
            collector.start()
        except FlowscopeError as exc:
            log.error("%s", exc)
            collector.close()
            raise SystemExit(2) from None
        collector.run()


def run_workers(config: CollectorConfig, workers: int, metrics: str | None = None) -> int:
    """Run ``workers`` collector processes on shared SO_REUSEPORT sockets; returns how many failed."""
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_worker,
            args=(replace(config, keep_rollups=config.keep_rollups and index == 0), index),
            name=f"collector-w{index}",
        )
        for index in range(workers)
    ]
    group = ProcessGroup(processes, "collector")
    group.start()
    lake_root = Lake.at(config.lake).root
    names = {f"{socket.gethostname()}-w{i}" for i in range(workers)}

    def snapshot() -> dict:
        return merge_snapshots([s for s in load_snapshots(lake_root) if s.get("name") in names])

    server = MetricsServer(metrics, snapshot) if metrics else None
    try:
        while group.alive():
            group.wait(timeout=0.5)
            group.stop_on_failure()
    finally:
        if server is not None:
            server.close()
    return group.failures()


def new_run_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"


def lake_health(lake: Lake) -> dict:
    """The merged health of the latest collector run that wrote to ``lake`` (all its workers), with the
    capture-side loss of the last ``watch``/``capture`` run of each folder (their own records)."""
    snapshots = load_snapshots(Path(lake.root))
    captures = [s for s in snapshots if s.get("kind") == "capture"]
    collectors = [s for s in snapshots if s.get("kind") != "capture"]
    if not collectors:
        return merge_snapshots(captures)
    latest = max(collectors, key=lambda s: s.get("started_ns", 0)).get("run_id")
    return merge_snapshots([s for s in collectors if s.get("run_id") == latest] + captures)
