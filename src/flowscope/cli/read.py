"""``flowscope read``: any supported input file(s) -> the lake or an output file."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

import click

from flowscope.cli.common import CliState, pass_state, progress_bar
from flowscope.cli.options import csv_options, export_options, meter_options, read_options_from, selection_options
from flowscope.collect.options import EXPORTS_FORMAT
from flowscope.csvflows.options import lake_limits
from flowscope.errors import FlowscopeError
from flowscope.lake import LakeWriter
from flowscope.pipeline import Sink, run
from flowscope.readers import registry
from flowscope.sinks.files import FileSink


def open_sink(state: CliState, output: str | None, limits: dict[str, Any]) -> Sink:
    """``-o FILE`` writes that file (format from its extension); otherwise append to the lake."""
    return FileSink(output) if output else LakeWriter(state.lake, **limits)


@click.command(
    epilog="""\b
Examples:
  flowscope read capture.pcap                     meter a capture into the lake
  flowscope read flows.csv.gz -o flows.parquet    convert a flow CSV to Parquet
  flowscope read exports.pcap --as-exports        decode recorded NetFlow/IPFIX datagrams
"""
)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--format", "input_format", help="Input format (default: detected from the content).")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write here (.parquet/.csv/.jsonl) instead of the lake."
)
@selection_options
@meter_options
@csv_options
@export_options
@pass_state
def read(
    state: CliState, inputs: tuple[str, ...], input_format: str | None, output: str | None, **flags: Any
) -> None:
    """Read flow inputs (captures, flow CSVs, nfdump files, recorded exports) into the lake."""
    paths = [Path(p) for p in inputs]
    for path in paths:
        if str(path) != "-" and not path.exists():
            raise FlowscopeError(f"{path}: no such file or directory")
    options = read_options_from(flags)
    if flags["as_exports"]:
        input_format = input_format or EXPORTS_FORMAT
    fixed = registry.get(input_format) if input_format else None
    if str(paths[0]) == "-":
        groups = [(fixed or registry.detect(paths[0], head=sys.stdin.buffer.peek(registry.SNIFF_BYTES)), paths)]
    else:
        groups = registry.grouped(paths, fixed)
    sources = [reader.open(group, options) for reader, group in groups]
    names = ", ".join(dict.fromkeys(reader.name for reader, _ in groups))
    sink = open_sink(state, output, lake_limits(options.csv, paths))

    def consumed() -> int:
        return sum(source.progress()[0] for source in sources)

    totals = [source.progress()[1] for source in sources]
    total = None if None in totals else sum(t for t in totals if t is not None)
    with progress_bar(state, f"reading {names}", total) as update:
        batches = itertools.chain.from_iterable(sources)
        stats = run(batches, sink, options.transforms(), on_batch=lambda _: update(completed=consumed()))
    for source in sources:
        state.report_skips(source.skips)
        for note in getattr(source, "notes", ()):
            state.info(f"note: {note}")
    target = output or f"lake {state.lake.root}"
    state.info(f"{stats.rows:,} flows from {len(paths)} input(s) ({names}) -> {target}")
