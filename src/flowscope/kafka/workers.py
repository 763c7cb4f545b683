"""``flowscope consume``'s runtime: one consumer (``run_consumer``) or N processes in one group (``run_workers``).

A worker is a whole consumer: its own Kafka client and group membership, its own destinations (a lake
writer, a PostgreSQL connection, ...), flushes and positions. Workers never coordinate with each other:
the group gives each its partitions, and a partition that moves between them resumes where the lake's
ledger or PostgreSQL's position table says its data ends (``kafka.consume``), so adding, removing or
killing a worker loses and duplicates nothing in those stores. Processes, not threads: decoding and
Parquet encoding are CPU work, and one GIL would serialise them (the collector's ``--workers`` reasons
the same way). The parent only forwards stop signals, serves the merged metrics and adds up the
workers' summaries; a worker that fails stops the others, as in the collector.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection

from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError
from flowscope.lake.layout import Lake
from flowscope.lake.writer import LakeLimits
from flowscope.stopping import ProcessGroup, stop_event

log = logging.getLogger("flowscope.consume")


@dataclass(frozen=True)
class ConsumeConfig:
    """Everything a consumer process needs (picklable: a worker is started with ``spawn``)."""

    url: str
    """``kafka://HOST:PORT/TOPIC[?format=...]``."""
    group: str
    lake: str
    destinations: tuple[str, ...] = ("lake",)
    from_beginning: bool = False
    flush_seconds: float = 5.0
    exit_idle: float | None = None
    raw: bool = False
    """The topic holds raw datagrams (``collect --raw-to``): decode them, keep templates and exporter health."""
    status_seconds: float | None = None
    enrich: str | None = None
    anonymize: str | None = None
    run_id: str = ""
    """One ``consume`` run (all its workers): ``flowscope exporters`` shows the latest run's health."""
    keep_rollups: bool = False
    """``--rollups``: the lake destination keeps the roll-ups current (worker 0 of ``--workers N`` does)."""


@dataclass
class Summary:
    """What one consumer (or all workers, added up) did."""

    messages: int = 0
    flows: int = 0
    destination: str = ""
    skips: Skips = field(default_factory=lambda: Skips(unit="messages"))

    def add(self, other: Summary) -> None:
        self.messages += other.messages
        self.flows += other.flows
        self.destination = self.destination or other.destination
        self.skips.merge(other.skips)


def run_consumer(
    config: ConsumeConfig,
    stop: threading.Event,
    publish: Callable[[dict], None] | None = None,
    health_name: str = "consume",
) -> Summary:
    """Consume until ``stop`` (or ``exit_idle``); ``publish`` receives a metrics snapshot after every flush."""
    from flowscope.kafka.consume import consume
    from flowscope.kafka.metrics import snapshot
    from flowscope.kafka.raw import RawDecoder
    from flowscope.kafka.source import KafkaSource
    from flowscope.kafka.url import parse
    from flowscope.readers.options import ReadOptions
    from flowscope.sinks.fanout import position_stores
    from flowscope.sinks.registry import DestinationContext, open_destinations
    from flowscope.transforms.anonymize import read_key
    from flowscope.transforms.enrich import EnrichConfig

    lake = Lake.at(config.lake)
    transforms = ReadOptions(
        enrich=None if config.enrich is None else EnrichConfig.load(config.enrich),
        anonymize=None if config.anonymize is None else read_key(config.anonymize),
    ).transforms()
    context = DestinationContext(lake, LakeLimits(), transactional=True, keep_rollups=config.keep_rollups)
    sink = open_destinations(config.destinations, context)
    last_status = [0.0]

    def after_flush(source: KafkaSource) -> None:
        """Refresh the metrics snapshot, log the lag every ``status_seconds``."""
        if publish is None and config.status_seconds is None:
            return
        latest = snapshot(source)
        if publish is not None:
            publish(latest)
        if config.status_seconds is None or time.monotonic() - last_status[0] < config.status_seconds:
            return
        last_status[0] = time.monotonic()
        lags = ", ".join(f"{key} {lag:,}" for key, lag in latest["lag"].items())
        log.info("lag: %s", lags or "no partition read yet")

    raw = RawDecoder(str(lake.root), health_name, config.run_id) if config.raw else None
    stats, source = consume(
        parse(config.url),
        config.group,
        sink,
        stores=position_stores(sink),  # where each (re)assigned partition resumes
        transforms=transforms,
        from_beginning=config.from_beginning,
        flush_seconds=config.flush_seconds,
        exit_idle=config.exit_idle,
        stop=stop,
        on_flush=after_flush,
        raw=raw,
    )
    return Summary(stats.messages, stats.flows, sink.name, source.skips)


def _worker(config: ConsumeConfig, index: int, results: Connection, snapshots: multiprocessing.Queue | None) -> None:
    """One worker process: a consumer that sends its summary (or its one-line error) to the parent."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s w{index} %(message)s")
    stop = stop_event()
    publish = None if snapshots is None else (lambda latest: snapshots.put((index, latest)))
    try:
        summary = run_consumer(config, stop, publish, health_name=f"consume-w{index}")
    except FlowscopeError as exc:
        results.send(("error", str(exc)))
        raise SystemExit(2) from None
    except Exception as exc:
        results.send(("error", f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None
    results.send(("ok", summary))


def run_workers(config: ConsumeConfig, workers: int, metrics: str | None = None) -> Summary:
    """``workers`` consumer processes in ``config.group``; their summaries added up, a failure raised."""
    from flowscope.collect.metrics import MetricsServer
    from flowscope.kafka.metrics import merge, render

    context = multiprocessing.get_context("spawn")
    snapshots = context.Queue() if metrics else None
    pipes = [context.Pipe(duplex=False) for _ in range(workers)]
    processes = [
        context.Process(
            target=_worker,
            args=(replace(config, keep_rollups=config.keep_rollups and index == 0), index, pipes[index][1], snapshots),
            name=f"consume-w{index}",
        )
        for index in range(workers)
    ]
    group = ProcessGroup(processes, "consumer")
    group.start()
    for _, sender in pipes:
        sender.close()
    latest: dict[int, dict] = {}
    server = MetricsServer(metrics, lambda: merge(list(latest.values())), render) if metrics else None
    outcomes: dict[int, tuple[str, object]] = {}
    try:
        while group.alive():
            for index, (receiver, _) in enumerate(pipes):
                if index not in outcomes and receiver.poll():
                    outcomes[index] = receiver.recv()
            while snapshots is not None:
                try:
                    index, snapshot = snapshots.get_nowait()
                except queue.Empty:
                    break
                latest[index] = snapshot
            group.stop_on_failure()
            group.wait(timeout=0.2)
    finally:
        if server is not None:
            server.close()
    for index, (receiver, _) in enumerate(pipes):
        if index not in outcomes and receiver.poll():
            outcomes[index] = receiver.recv()
    total = Summary()
    errors = []
    for index, process in enumerate(processes):
        kind, value = outcomes.get(index, ("error", f"exited with status {process.exitcode}"))
        if kind == "ok" and isinstance(value, Summary):
            total.add(value)
        else:
            errors.append(f"worker {index}: {value}")
    if errors:
        raise FlowscopeError(f"{len(errors)} of {workers} consumer workers failed ({'; '.join(errors)})")
    return total
