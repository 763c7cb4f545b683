"""The collector: receive threads per socket, one decode loop, lake writers, health, workers.

Receiving and decoding are split so a burst never waits for decoding: each listener's
thread only calls recvmmsg and queues the batch; the main thread decodes whatever is
queued in one go (bigger batches decode faster per datagram), writes the lake and
accounts health. If decoding falls behind, the bounded queue blocks the receive threads
and the kernel's socket buffer absorbs the burst; anything beyond that is counted by the
kernel and reported as socket drops, never silently lost.

SIGINT/SIGTERM stop the receive threads, which drain their sockets without waiting; the
decode loop then empties the queue, flushes the lake writers, saves templates and
health, and the process exits 0. ``--workers N`` runs N such processes on SO_REUSEPORT
sockets (the kernel spreads exporters over them by address and port).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from flowscope.collect.datagrams import Datagrams, Decoded
from flowscope.collect.dispatch import decode_netflow
from flowscope.collect.health import Health, ListenerHealth, load_snapshots, merge_snapshots
from flowscope.collect.metrics import MetricsServer
from flowscope.collect.receive import BatchReceiver, Listen, granted_buffer, kernel_drops, open_socket
from flowscope.collect.sampling import SamplingConfig
from flowscope.collect.sflow import decode_sflow
from flowscope.collect.state import NetflowState
from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError
from flowscope.lake import LakeWriter
from flowscope.lake.layout import Lake

log = logging.getLogger("flowscope.collect")

QUEUE_BATCHES = 1024
DECODE_BATCH = 16384  # datagrams decoded together at most
HOUSEKEEPING_SECONDS = 1.0
LOG_EVERY_SECONDS = 10.0
COUNTERS_TABLE = "interface_counters"


@dataclass(frozen=True)
class CollectorConfig:
    listens: tuple[Listen, ...]
    lake: str
    flush_seconds: float = 5.0
    receive_buffer: int = 64 << 20
    sampling_config: str | None = None
    run_id: str = ""
    """Identifies one ``flowscope collect`` run: ``flowscope exporters`` merges the workers of the latest."""


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
    spec: Listen
    sock: socket.socket
    health: ListenerHealth
    thread: threading.Thread | None = None
    receiver: BatchReceiver | None = None
    drops_at_start: int = 0


@dataclass
class Collector:
    """One collector process: ``start`` binds, ``run`` receives until ``stop`` is called, then flushes."""

    config: CollectorConfig
    name: str = "main"
    reuse_port: bool = False
    health: Health = field(default_factory=Health)

    def __post_init__(self) -> None:
        self.lake = Lake.at(self.config.lake)
        self.queue: queue.Queue[tuple[str, Datagrams]] = queue.Queue(QUEUE_BATCHES)
        self.stopping = threading.Event()
        self.listeners: list[_Listener] = []
        self.netflow_state: NetflowState | None = None
        self.flows = LakeWriter(self.lake, "flows", max_age=self.config.flush_seconds)
        self.counters = LakeWriter(
            self.lake,
            COUNTERS_TABLE,
            max_age=self.config.flush_seconds,
            time_column="time_received",
            conform_rows=False,
        )
        self.log = RateLimitedLog()
        self.health_name = f"{socket.gethostname()}-{self.name}"

    def start(self) -> None:
        """Bind every listener (errors here are the user's: port in use, bad address) and start receiving."""
        if any(spec.protocol == "netflow" for spec in self.config.listens):
            sampling = SamplingConfig.load(self.config.sampling_config)
            self.netflow_state = NetflowState.open(self.lake.root, sampling)
        for spec in self.config.listens:
            sock = open_socket(spec, receive_buffer=self.config.receive_buffer, reuse_port=self.reuse_port)
            health = ListenerHealth(address=spec.name, protocol=spec.protocol, receive_buffer=granted_buffer(sock))
            self.health.listeners[spec.name] = health
            listener = _Listener(spec, sock, health, drops_at_start=kernel_drops(sock) or 0)
            listener.receiver = BatchReceiver(sock)
            listener.thread = threading.Thread(target=self._receive, args=(listener,), name=spec.name, daemon=True)
            self.listeners.append(listener)
        for listener in self.listeners:
            listener.thread.start()
            log.info(
                "listening on %s (receive buffer %d bytes granted)", listener.spec.name, listener.health.receive_buffer
            )

    def stop(self) -> None:
        self.stopping.set()

    def _receive(self, listener: _Listener) -> None:
        """The receive loop: recvmmsg into the queue; after a stop, drain the socket without waiting."""
        receiver = listener.receiver
        protocol = listener.spec.protocol
        while True:
            stopping = self.stopping.is_set()
            try:
                batch = receiver.receive(wait=not stopping)
            except OSError as exc:
                log.error("%s: receive failed: %s", listener.spec.name, exc)
                time.sleep(0.1)
                continue
            if batch is None:
                if stopping:
                    return
                continue
            listener.health.datagrams += len(batch)
            listener.health.bytes += sum(map(len, batch.payloads))
            self.queue.put((protocol, batch))

    def run(self) -> None:
        """Decode until stopped, then drain and flush everything."""
        next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
        try:
            while True:
                if self.stopping.is_set() and not any(each.thread.is_alive() for each in self.listeners):
                    self._decode_queued(block=False)
                    if self.queue.empty():
                        break
                    continue
                self._decode_queued(block=True)
                if time.monotonic() >= next_housekeeping:
                    self._housekeeping()
                    next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
        finally:
            self.close()

    def _decode_queued(self, *, block: bool) -> None:
        try:
            first = self.queue.get(timeout=0.2) if block else self.queue.get_nowait()
        except queue.Empty:
            return
        pending: dict[str, list[Datagrams]] = {first[0]: [first[1]]}
        total = len(first[1])
        while total < DECODE_BATCH:
            try:
                protocol, batch = self.queue.get_nowait()
            except queue.Empty:
                break
            pending.setdefault(protocol, []).append(batch)
            total += len(batch)
        for protocol, batches in pending.items():
            self._decode(protocol, Datagrams.concat(batches))

    def _decode(self, protocol: str, datagrams: Datagrams) -> None:
        try:
            sflow = protocol == "sflow"
            decoded = decode_sflow(datagrams) if sflow else decode_netflow(datagrams, self.netflow_state)
        except Exception as exc:  # a decoder bug must cost one batch, counted, not the collector
            log.exception("%s decoder failed on a batch of %d datagrams", protocol, len(datagrams))
            skips = Skips(unit="datagrams")
            skips.add(f"decoder error ({type(exc).__name__})", len(datagrams), str(exc)[:200])
            decoded = Decoded(skips=skips)
        if decoded.flows.num_rows:
            self.flows.write(decoded.flows)
            self.health.rows_written["flows"] += decoded.flows.num_rows
        if decoded.counters is not None and decoded.counters.num_rows:
            self.counters.write(decoded.counters)
            self.health.rows_written[COUNTERS_TABLE] += decoded.counters.num_rows
        self.health.observe(protocol, decoded)
        if decoded.skips.counts:
            self.log.add(protocol, decoded.skips)

    def _housekeeping(self) -> None:
        self.flows.flush_if_due()
        self.counters.flush_if_due()
        for listener in self.listeners:
            drops = kernel_drops(listener.sock)
            if drops is not None:
                listener.health.kernel_drops = drops - listener.drops_at_start
        self.log.emit()
        self.save_health()

    def save_health(self) -> None:
        try:
            self.health.save(self.lake.root, self.health_name, run_id=self.config.run_id)
        except OSError as exc:
            log.warning("cannot save health snapshot: %s", exc)

    def close(self) -> None:
        """Flush both writers, persist templates and health, close sockets (idempotent)."""
        self.flows.close()
        self.counters.close()
        if self.netflow_state is not None:
            self.netflow_state.save(force=True)
        for listener in self.listeners:
            drops = kernel_drops(listener.sock)
            if drops is not None:
                listener.health.kernel_drops = drops - listener.drops_at_start
            listener.sock.close()
        self.listeners = []
        self.log.emit(force=True)
        self.save_health()


def _install_stop_handlers(stop) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop())


def run_collector(config: CollectorConfig, metrics: str | None = None) -> Collector:
    """Run one collector process in the foreground until SIGINT/SIGTERM."""
    collector = Collector(config)
    collector.start()
    server = MetricsServer(metrics, lambda: merge_snapshots([collector.health.snapshot()])) if metrics else None
    _install_stop_handlers(collector.stop)
    try:
        collector.run()
    finally:
        if server is not None:
            server.close()
    return collector


def _worker(config: CollectorConfig, index: int) -> None:
    logging.basicConfig(level=logging.INFO, format=f"w{index}: %(message)s")
    collector = Collector(config, name=f"w{index}", reuse_port=True)
    _install_stop_handlers(collector.stop)
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
        context.Process(target=_worker, args=(config, index), name=f"collector-w{index}") for index in range(workers)
    ]
    for process in processes:
        process.start()
    stopping = threading.Event()

    def stop() -> None:
        stopping.set()
        for process in processes:
            if process.is_alive() and process.pid:
                os.kill(process.pid, signal.SIGTERM)

    _install_stop_handlers(stop)
    lake_root = Lake.at(config.lake).root
    names = {f"{socket.gethostname()}-w{i}" for i in range(workers)}

    def snapshot() -> dict:
        return merge_snapshots([s for s in load_snapshots(lake_root) if s.get("name") in names])

    server = MetricsServer(metrics, snapshot) if metrics else None
    try:
        while any(process.is_alive() for process in processes):
            for process in processes:
                process.join(timeout=0.5)
            if not stopping.is_set() and any(p.exitcode not in (None, 0) for p in processes):
                log.error("a collector worker failed; stopping the others")
                stop()
    finally:
        if server is not None:
            server.close()
    return sum(1 for process in processes if process.exitcode != 0)


def new_run_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"


def lake_health(lake: Lake) -> dict:
    """The merged health of the latest collector run that wrote to ``lake`` (all its workers)."""
    snapshots = load_snapshots(Path(lake.root))
    if not snapshots:
        return merge_snapshots([])
    latest = max(snapshots, key=lambda s: s.get("started_ns", 0)).get("run_id")
    return merge_snapshots([s for s in snapshots if s.get("run_id") == latest])
