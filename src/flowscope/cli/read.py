"""``flowscope read``: any supported input file(s) -> the lake, files, or any other destination."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from flowscope.capture.packet_records import PACKETS_FORMAT
from flowscope.cli.common import CliState, pass_state, progress_bar
from flowscope.cli.destinations import (
    destination_options,
    destination_urls,
    lake_sinks,
    ledgers,
    only_files,
    open_sink,
    sink_notes,
)
from flowscope.cli.options import (
    csv_options,
    export_options,
    meter_options,
    read_options_from,
    records_from,
    records_option,
    selection_options,
    transform_options,
)
from flowscope.collect.options import EXPORTS_FORMAT
from flowscope.errors import FlowscopeError
from flowscope.lake.writer import LakeLimits
from flowscope.pipeline import abort, run
from flowscope.readers.inputs import Inputs, open_inputs
from flowscope.readers.text_options import lake_limits
from flowscope.reduce.whole import WholeReduction
from flowscope.schema import PACKETS
from flowscope.sinks.files import file_path
from flowscope.sinks.registry import find


@click.command(
    epilog="""\b
Examples:
  flowscope read capture.pcap                     meter a capture into the lake
  flowscope read flows.csv.gz -o flows.parquet    convert a flow CSV to Parquet
  flowscope read exports.pcap --as-exports        decode recorded NetFlow/IPFIX datagrams
  flowscope read capture.pcap --records packets   one row per IP packet (the 'packets' table)
  flowscope read /data/nfcapd --to lake --to day.parquet   two destinations at once
  flowscope read flows.csv --reduce pairs --reduce-whole -o pairs.parquet   one row per pair
  flowscope read /srv/pcap --workers 2            meter a capture folder on two cores (same flows)
  flowscope read big.pcap --workers 2             one large pcap file too, cut into two spans

An input the lake already holds (same content, same options) is skipped; --again reads it anyway.
"""
)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--format", "input_format", help="Input format (default: detected from the content).")
@destination_options
@click.option("--again", is_flag=True, help="Read inputs the lake already holds again (they are stored twice).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help=(
        "Captures: meter a folder's files, or one large classic pcap file, in N processes (one per core); "
        "the flows equal one process's."
    ),
)
@selection_options
@records_option
@meter_options
@csv_options
@click.option(
    "--reduce-whole",
    is_flag=True,
    help="With --reduce and -o: one row per key over all inputs (as GROUP BY), written when they end, memory "
    "bounded by spilling beside the output. Without it each batch is reduced on its own.",
)
@export_options
@transform_options
@pass_state
def read(
    state: CliState,
    inputs: tuple[str, ...],
    input_format: str | None,
    to: tuple[str, ...],
    output: tuple[str, ...],
    again: bool,
    reduce_whole: bool,
    **flags: Any,
) -> None:
    """Read flow inputs (captures, flow CSVs, nfdump files, recorded exports) into the lake or other destinations.

    Each input file is committed with a record of it in the lake's ingest ledger: a read that fails part-way
    keeps the files it completed, and reading them again adds nothing.
    """
    if input_format == PACKETS_FORMAT:  # --format packets is --records packets
        flags["records"] = PACKETS
    records = records_from(flags)
    options = read_options_from(flags)
    stream = inputs == ("-",)
    urls = destination_urls(to, output)
    if reduce_whole and (options.reduce is None or not only_files(urls)):
        raise click.UsageError(
            "--reduce-whole goes with --reduce and file or standard output destinations (-o): the lake and "
            "databases take each batch's reduction, and their views combine them"
        )
    # before the sink opens: a bad database is an error with nothing written
    transforms = options.transforms(per_batch_reduce=not reduce_whole)
    if flags["as_exports"]:
        input_format = input_format or EXPORTS_FORMAT
    if records == PACKETS:
        if input_format not in (None, PACKETS_FORMAT):
            raise FlowscopeError(f"--records {records} reads captures; it does not go with --format or --as-exports")
        input_format = PACKETS_FORMAT
    if stream:
        state.reading_stdin("flows (CSV or JSON lines)")
    limits = LakeLimits(**lake_limits(options.text, inputs))
    sink = open_sink(state, urls, transactional=not stream, limits=limits, table=records)
    try:
        plan = open_inputs(inputs, options, input_format=input_format, ledgers=ledgers(sink), again=again)
    except BaseException as exc:
        abort(sink, exc)
        raise
    reduced: WholeReduction | None = None
    if reduce_whole:
        assert options.reduce is not None
        reduced = sink = WholeReduction(sink, options.reduce, transforms, _spill_directory(urls), _guess(plan))
        transforms = []
    with progress_bar(state, f"reading {plan.names}", plan.progress()[1]) as update:
        stats = run(plan, sink, transforms, on_batch=lambda _: update(completed=plan.progress()[0]))
    for source in plan.sources:
        state.report_skips(source.skips)
    plan.save_health([lake.lake.root for lake in lake_sinks(sink)])
    for note in [*plan.notes(), *sink_notes(sink)]:
        state.info(f"note: {note}")
    others = "".join(
        f", {rows:,} {table} rows" for table, rows in stats.rows_by_table.items() if table != records and rows
    )
    read_count = sum(len(unit.files) or 1 for unit in plan.units)
    main = f"{stats.rows_by_table.get(records, 0):,} {records}"
    into = "" if reduced is None else f", reduced by {reduced.reduction.name} to {reduced.rows_out:,} rows"
    state.info(f"{main}{others} from {read_count} input(s) ({plan.names or 'none new'}){into} -> {sink.name}")


def _spill_directory(urls: list[str]) -> Path:
    """Where a whole reduction spills beyond its memory budget: beside the first output file (where the user
    chose to put data), else the system's temporary directory (standard output)."""
    files = [file_path(url) for url in urls if find(url).name == "file"]
    return files[0].resolve().parent if files else Path(tempfile.gettempdir())


def _guess(plan: Inputs) -> Callable[[int], int]:
    """The input's rows guessed from the rows read so far and the share of the input's bytes they took."""

    def rows(so_far: int) -> int:
        done, total = plan.progress()
        return so_far * total // done if total and done else 2 * so_far

    return rows
