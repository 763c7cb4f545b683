"""``flowscope consume kafka://HOST:PORT/TOPIC --group G``: exactly once into the lake or PostgreSQL."""

from __future__ import annotations

import logging

import click

from flowscope.cli.common import CliState, pass_state
from flowscope.cli.destinations import TO_HELP, destination_urls
from flowscope.cli.options import anonymize_from, enrich_from, keep_rollups_option, transform_options
from flowscope.errors import FlowscopeError
from flowscope.kafka.formats import FORMATS
from flowscope.kafka.url import is_kafka, parse
from flowscope.stopping import stop_event


@click.command(
    epilog="""\b
The lake and PostgreSQL get every message exactly once: each flush records the partitions' positions
with the data (the lake's ledger, PostgreSQL's transaction), and (re)assigned partitions resume there.
Other destinations get at least once. --workers N runs N consumers in the group (one process each).
Examples:
  flowscope consume kafka://127.0.0.1:9092/flows --group flowscope --from-beginning
  flowscope consume kafka://broker:9092/flows?format=arrow --group g --to lake --to flows.parquet
  flowscope consume kafka://broker:9092/raw --raw --group decoders --workers 4 --enrich enrich.toml
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
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Consumer processes in the group, each with its own partitions, destinations and flushes.",
)
@transform_options
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
    workers: int,
    enrich: str | None,
    anonymize: str | None,
    keep_rollups: bool,
) -> None:
    """Consume flows from a Kafka topic as a member of a consumer group, until SIGINT/SIGTERM."""
    from flowscope.collect.metrics import MetricsServer
    from flowscope.collect.server import new_run_id
    from flowscope.kafka.metrics import render
    from flowscope.kafka.workers import ConsumeConfig, run_consumer, run_workers

    if not is_kafka(url):
        raise FlowscopeError(f"{url}: consume reads kafka://HOST:PORT/TOPIC")
    source_url = parse(url)
    if fmt is not None:
        source_url = parse(f"{source_url.text}?format={fmt}")
    anonymize_from({"anonymize": anonymize})  # a bad key or configuration fails here, once, before any consumer
    enrich_from({"enrich": enrich})
    level = logging.WARNING if state.verbosity < 0 else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(message)s")
    config = ConsumeConfig(
        url=source_url.text,
        group=group,
        lake=str(state.lake.root),
        destinations=tuple(destination_urls(to, ())),
        from_beginning=from_beginning,
        flush_seconds=flush_seconds,
        exit_idle=exit_idle,
        raw=raw,
        status_seconds=status_seconds,
        enrich=enrich,
        anonymize=anonymize,
        run_id=new_run_id(),
        keep_rollups=keep_rollups,
    )
    if workers > 1:
        summary = run_workers(config, workers, metrics)
    else:
        latest: dict = {}
        server = MetricsServer(metrics, lambda: latest, render) if metrics else None
        try:
            summary = run_consumer(config, stop_event(), latest.update if server is not None else None)
        finally:
            if server is not None:
                server.close()
    state.report_skips(summary.skips)
    workers_note = f" ({workers} workers)" if workers > 1 else ""
    state.info(
        f"{summary.flows:,} flows from {summary.messages:,} messages of {source_url.text} -> "
        f"{summary.destination}{workers_note}"
    )
