"""``--to URL`` (repeatable) and ``-o FILE`` for every command that produces flows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from flowscope.cli.common import CliState, OutputFile
from flowscope.lake.ledger import Ledger
from flowscope.lake.writer import LakeLimits
from flowscope.pipeline import Sink
from flowscope.schema import FLOWS
from flowscope.sinks.fanout import FanOut
from flowscope.sinks.lake import LakeSink
from flowscope.sinks.registry import DestinationContext, find, open_destinations

F = TypeVar("F", bound=Callable[..., Any])

TO_HELP = (
    "Destination (repeatable; default: the lake): lake, lake:PATH, a file .parquet/.csv/.csv.gz/.jsonl, "
    "- or stdout[:jsonl|parquet] (standard output, CSV by default), "
    "clickhouse://HOST:9000/DB, postgresql://USER@HOST:5432/DB, elasticsearch://HOST:9200/INDEX "
    "or kafka://HOST:PORT/TOPIC[?format=goflow2|goflow|arrow&key=COLUMN|none]."
)


def destination_options(command: F) -> F:
    command = click.option(
        "-o",
        "--output",
        type=OutputFile(),
        multiple=True,
        help="Write this file (repeatable; shorthand for --to FILE; - for CSV on standard output).",
    )(command)
    return click.option("--to", "to", multiple=True, metavar="URL", help=TO_HELP)(command)


def destination_urls(to: Sequence[str], outputs: Sequence[str]) -> list[str]:
    """The destinations named (``--to``, then each ``-o``), in order; the lake when none is."""
    urls = [*to, *outputs]
    return urls or ["lake"]


def only_files(urls: Sequence[str]) -> bool:
    """Whether every destination is a file or standard output (written whole at the end, or as a pipe)."""
    return all(find(url).name in ("file", "stdout") for url in urls)


def open_sink(
    state: CliState,
    urls: Sequence[str],
    *,
    transactional: bool = False,
    limits: LakeLimits | None = None,
    keep_rollups: bool = False,
    table: str = FLOWS,
) -> Sink:
    """The destinations of ``urls``; ``table``: the catalogue table the run produces (what a file holds)."""
    context = DestinationContext(
        state.lake, limits or LakeLimits(), transactional=transactional, keep_rollups=keep_rollups, table=table
    )
    return open_destinations(urls, context)


def lake_sinks(sink: Sink) -> list[LakeSink]:
    """The lake destinations among ``sink``'s (whose ledgers decide what was read before)."""
    sinks = sink.sinks if isinstance(sink, FanOut) else [sink]
    return [s for s in sinks if isinstance(s, LakeSink)]


def ledgers(sink: Sink) -> list[Ledger]:
    return [s.ledger for s in lake_sinks(sink)]


def sink_notes(sink: Sink) -> list[str]:
    notes: Callable[[], list[str]] | None = getattr(sink, "notes", None)
    return notes() if notes is not None else []
