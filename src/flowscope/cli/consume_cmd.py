"""``flowscope consume kafka://HOST:PORT/TOPIC --group G``: exactly once into the lake or PostgreSQL."""

from __future__ import annotations

import logging
import time

import click

from flowscope.cli.common import CliState, pass_state
from flowscope.cli.destinations import TO_HELP, destination_urls, open_sink
from flowscope.cli.options import keep_rollups_option
from flowscope.errors import FlowscopeError
from flowscope.kafka.formats import FORMATS
from flowscope.kafka.source import KafkaSource
from flowscope.kafka.url import is_kafka, parse
from flowscope.sinks.fanout import position_stores
from flowscope.stopping import stop_event


@click.command(
    epilog="""\b
The lake and PostgreSQL get every message exactly once: each flush records the partitions' positions
with the data (the lake's ledger, PostgreSQL's transaction), and (re)assigned partitions resume there.
Other destinations get at least once.
Examples:
  flowscope consume kafka://127.0.0.1:9092/flows --group flowscope --from-beginning
  flowscope consume kafka://broker:9092/flows?format=arrow --group g --to lake --to flows.parquet
"""
)
@click.argument("url")
@click.option("--group", required=True, help="Consumer group id.")
@click.option("--to", "to", multiple=True, metavar="URL", help=TO_HELP)
@click.option("--from-beginning", is_flag=True, help="Partitions without a recorded position start at the beginning.")
@click.option(
    "--format", "fmt", type=click.Choice(sorted(FORMATS)), help="Message format (default: the URL's, goflow2)."
)
@click.option(
    "--flush",
    "flush_seconds",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between flushes (a flush commits the data with its positions).",
)
@click.option("--raw", is_flag=True, help="The topic holds raw datagrams from `collect --raw-to`: decode them here.")
@click.option("--exit-idle", type=click.FloatRange(min=0.1), help="Stop when nothing arrived for this many seconds.")
@click.option("--status", "status_seconds", type=click.FloatRange(min=1), help="Log lag per partition this often.")
@click.option("--metrics", help="Serve Prometheus metrics (messages, flows, skips, positions, lag) on HOST:PORT.")
@keep_rollups_option
@pass_state
def consume(
    state: CliState,
    url: str,
    group: str,
    to: tuple[str, ...],
    from_beginning: bool,
    fmt: str | None,
    flush_seconds: float,
    raw: bool,
    exit_idle: float | None,
    status_seconds: float | None,
    metrics: str | None,
    keep_rollups: bool,
) -> None:
    """Consume flows from a Kafka topic as a member of a consumer group, until SIGINT/SIGTERM."""
    from flowscope.collect.metrics import MetricsServer
    from flowscope.kafka.consume import consume as run
    from flowscope.kafka.metrics import render, snapshot
    from flowscope.kafka.raw import RawDecoder

    if not is_kafka(url):
        raise FlowscopeError(f"{url}: consume reads kafka://HOST:PORT/TOPIC")
    source_url = parse(url)
    if fmt is not None:
        source_url = parse(f"{source_url.text}?format={fmt}")
    level = logging.WARNING if state.verbosity < 0 else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(message)s")
    sink = open_sink(state, destination_urls(to, None), transactional=True, keep_rollups=keep_rollups)
    stores = position_stores(sink)
    stop = stop_event()
    last_status = [0.0]
    latest: dict = {}
    server = MetricsServer(metrics, lambda: latest, render) if metrics else None

    def status(source: KafkaSource) -> None:
        """After each flush: refresh the metrics snapshot, log the lag every --status seconds."""
        if server is None and status_seconds is None:
            return
        latest.update(snapshot(source))
        if status_seconds is None or time.monotonic() - last_status[0] < status_seconds:
            return
        last_status[0] = time.monotonic()
        logging.getLogger("flowscope.consume").info(
            "lag: %s", ", ".join(f"{key} {lag:,}" for key, lag in latest["lag"].items()) or "no partition read yet"
        )

    try:
        stats, source = run(
            source_url,
            group,
            sink,
            stores=stores,  # where each (re)assigned partition resumes
            from_beginning=from_beginning,
            flush_seconds=flush_seconds,
            exit_idle=exit_idle,
            stop=stop,
            on_flush=status,
            raw=RawDecoder(str(state.lake.root)) if raw else None,
        )
    finally:
        if server is not None:
            server.close()
    state.report_skips(source.skips)
    state.info(f"{stats.flows:,} flows from {stats.messages:,} messages of {source_url.text} -> {sink.name}")
