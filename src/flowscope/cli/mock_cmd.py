"""``flowscope mock``: realistic synthetic flows at a steady rate into any destination (Kafka, the lake, ...)."""

from __future__ import annotations

import click

from flowscope.cli.common import CliState, pass_state
from flowscope.cli.destinations import TO_HELP, destination_urls, open_sink, sink_notes
from flowscope.errors import FlowscopeError
from flowscope.pipeline import run


@click.command(
    epilog="""\b
Examples:
  flowscope mock --to kafka://127.0.0.1:9092/flows --rate 5000 --duration 60
  flowscope mock --to kafka://127.0.0.1:9092/flows?format=arrow --count 1000000 --rate 200000
"""
)
@click.option("--to", "to", multiple=True, metavar="URL", help=TO_HELP)
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=1000.0, show_default=True,
              help="Flows per second.")  # fmt: skip
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="Stop after this many seconds.")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many flows.")
@click.option("--exporters", type=click.IntRange(min=1), default=4, show_default=True,
              help="Mock exporters (192.0.2.1, ...) the flows are spread over.")  # fmt: skip
@click.option("--seed", type=int, default=1, show_default=True)
@pass_state
def mock(
    state: CliState,
    to: tuple[str, ...],
    rate: float,
    duration: float | None,
    count: int | None,
    exporters: int,
    seed: int,
) -> None:
    """Produce synthetic flows (the demo's traffic model) at a steady rate, until --count, --duration or Ctrl-C."""
    from flowscope.demo.mock import mock_flows

    if duration is not None and count is not None:
        raise FlowscopeError("give --duration or --count, not both")
    sink = open_sink(state, destination_urls(to, ()))
    batches = mock_flows(rate, count=count, duration=duration, exporters=exporters, seed=seed)
    try:
        stats = run(batches, sink)
    except KeyboardInterrupt:
        state.info("stopped")
        raise
    for note in sink_notes(sink):
        state.info(f"note: {note}")
    state.info(f"{stats.rows:,} flows -> {sink.name}")
