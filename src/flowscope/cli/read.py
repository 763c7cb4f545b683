"""``flowscope read``: any supported input file(s) -> the lake, files, or any other destination."""

from __future__ import annotations

from typing import Any

import click

from flowscope.capture.packet_records import PACKETS_FORMAT
from flowscope.cli.common import CliState, pass_state, progress_bar
from flowscope.cli.destinations import (
    destination_options,
    destination_urls,
    lake_sinks,
    ledgers,
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
from flowscope.readers.inputs import open_inputs
from flowscope.readers.text_options import lake_limits
from flowscope.schema import PACKETS


@click.command(
    epilog="""\b
Examples:
  flowscope read capture.pcap                     meter a capture into the lake
  flowscope read flows.csv.gz -o flows.parquet    convert a flow CSV to Parquet
  flowscope read exports.pcap --as-exports        decode recorded NetFlow/IPFIX datagrams
  flowscope read capture.pcap --records packets   one row per IP packet (the 'packets' table)
  flowscope read /data/nfcapd --to lake --to day.parquet   two destinations at once
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
    transforms = options.transforms()  # before the sink opens: a bad database is an error with nothing written
    if flags["as_exports"]:
        input_format = input_format or EXPORTS_FORMAT
    if records == PACKETS:
        if input_format not in (None, PACKETS_FORMAT):
            raise FlowscopeError(f"--records {records} reads captures; it does not go with --format or --as-exports")
        input_format = PACKETS_FORMAT
    stream = inputs == ("-",)
    if stream:
        state.reading_stdin("flows (CSV or JSON lines)")
    limits = LakeLimits(**lake_limits(options.text, inputs))
    sink = open_sink(state, destination_urls(to, output), transactional=not stream, limits=limits, table=records)
    try:
        plan = open_inputs(inputs, options, input_format=input_format, ledgers=ledgers(sink), again=again)
    except BaseException as exc:
        abort(sink, exc)
        raise
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
    state.info(f"{main}{others} from {read_count} input(s) ({plan.names or 'none new'}) -> {sink.name}")
