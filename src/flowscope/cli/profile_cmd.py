"""``flowscope profile``: any flow input (or the lake) -> an ft-profiler compatible anonymous traffic profile."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import pyarrow as pa

from flowscope.cli.common import CliState, OutputFile, TimeParam, one_file, pass_state
from flowscope.cli.options import selection_from, selection_options
from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError
from flowscope.nfdump.reader import NfdumpSource
from flowscope.profile import nfdump, report
from flowscope.profile.build import Batch, Settings, build
from flowscope.profile.output import suppress_rare_ports, write_profile
from flowscope.profile.records import PROFILE_COLUMNS, TableBatch
from flowscope.readers import registry
from flowscope.readers.options import ReadOptions
from flowscope.schema import FLOW_SCHEMA, conform
from flowscope.sinks.files import STDOUT

_LAKE_COLUMNS = ", ".join(PROFILE_COLUMNS)
_LAKE_BATCH = 262_144


def _input_batches(
    inputs: Sequence[str], input_format: str | None, options: ReadOptions, skips: Skips
) -> Iterator[Batch]:
    """Batches of all inputs in the order given; consecutive inputs of one format are opened together."""
    paths = [Path(p) for p in inputs]
    for path in paths:
        if not path.exists():
            raise FlowscopeError(f"{path}: no such file or directory")
    fixed = registry.get(input_format) if input_format else None
    for reader, group in registry.grouped(paths, fixed):
        source = reader.open(group, options)
        undecoded = nfdump.batches(source) if isinstance(source, NfdumpSource) else None
        if undecoded is not None:
            yield from undecoded
        else:
            for batch in source:
                yield TableBatch(_profile_columns(batch), exact_start=reader.name == "nfdump")
        skips.merge(source.skips)


def _profile_columns(batch: pa.Table | pa.RecordBatch) -> pa.Table:
    """Just the columns a profile is made of, in flow-schema types (conformed only when a source left some out)."""
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    schema = table.schema
    if not all(
        schema.get_field_index(n) >= 0 and schema.field(n).type == FLOW_SCHEMA.field(n).type for n in PROFILE_COLUMNS
    ):
        table = conform(table)
    return table.select(PROFILE_COLUMNS)


def _lake_batches(
    state: CliState, since: datetime | None, until: datetime | None, where: str | None
) -> Iterator[Batch]:
    # here, not at the top: ``flowscope.query`` imports DuckDB (60 ms of start-up), which file input never uses
    from flowscope.query import open_lake, views_named
    from flowscope.query.filters import time_predicates

    predicates = time_predicates(since, until)
    if where:
        predicates.append(f"({where})")
    sql = f"SELECT {_LAKE_COLUMNS} FROM flows"
    if predicates:
        sql += " WHERE " + " AND ".join(predicates)
    # the lake keeps no arrival order; export order (by end time) is what collectors write
    sql += " ORDER BY time_flow_end, time_flow_start"
    state.detail(sql)
    with open_lake(state.lake, views=views_named(sql)) as con:  # --filter may name one
        for batch in con.sql(sql).to_arrow_reader(_LAKE_BATCH):
            yield TableBatch(_profile_columns(pa.Table.from_batches([batch])), exact_start=True)


@click.command(
    "profile",
    epilog="""\b
Output columns (ft-profiler's): START_TIME,END_TIME,L3_PROTO,L4_PROTO,SRC_PORT,DST_PORT,
PACKETS,BYTES,PACKETS_REV,BYTES_REV; times in ms relative to the first record read.
Examples:
  flowscope profile /data/nfcapd/2024/05/01 --format nfdump --exporter 10.0.0.1 --in-if 3 -o day.csv
  flowscope profile flows.csv -o profile.csv -g --report --plot profile.png
  flowscope profile --from-lake --since 2024-05-01 --until 2024-05-02 --filter "proto = 17" -o udp.csv
""",
)
@click.argument("inputs", nargs=-1, type=click.Path())
@click.option(
    "-o",
    "--output",
    required=True,
    type=OutputFile(),
    multiple=True,
    callback=one_file,
    help="Profile CSV to write (- for standard output).",
)
@click.option("-g", "--gzip", "compress", is_flag=True, help="Gzip the output ('.gz' is appended).")
@click.option("-a", "--active", default=300, show_default=True, type=click.IntRange(min=1), help="Active timeout, s.")
@click.option(
    "-i", "--inactive", default=30, show_default=True, type=click.IntRange(min=1), help="Inactive timeout, s."
)
@click.option(
    "-m", "--memory", default=2048, show_default=True, type=click.IntRange(min=1), help="Flow cache limit, MiB."
)
@click.option("--format", "input_format", help="Input format (default: detected per input).")
@selection_options
@click.option("--from-lake", is_flag=True, help="Read flows from the lake (the one --lake names) instead of INPUTS.")
@click.option("--since", type=TimeParam(), help="With --from-lake: flows starting at or after.")
@click.option("--until", type=TimeParam(), help="With --from-lake: flows starting before.")
@click.option("--filter", "where", help='With --from-lake: SQL filter on flows, e.g. "proto = 6".')
@click.option(
    "--min-count", default=1, show_default=True, type=click.IntRange(min=1), help="Zero ports seen in fewer flows."
)
@click.option("--report", "show_report", is_flag=True, help="Print the profile's character.")
@click.option("--plot", type=OutputFile(dash=False), help="Draw the profile's distributions to this PNG.")
@pass_state
def profile(
    state: CliState,
    inputs: tuple[str, ...],
    output: str,
    compress: bool,
    active: int,
    inactive: int,
    memory: int,
    input_format: str | None,
    from_lake: bool,
    since: datetime | None,
    until: datetime | None,
    where: str | None,
    min_count: int,
    show_report: bool,
    plot: str | None,
    **flags: Any,
) -> None:
    """Merge flow records into biflows the way ft-profiler does and write an anonymous traffic profile."""
    if from_lake == bool(inputs):
        raise FlowscopeError("give INPUT files/directories or --from-lake (one of them)")
    if not from_lake and (since or until or where):
        raise FlowscopeError("--since/--until/--filter apply to --from-lake input")
    skips = Skips("records")
    # readers that can skip the columns a profile does not use do
    options = ReadOptions(selection=selection_from(flags), columns=PROFILE_COLUMNS)
    batches = (
        _lake_batches(state, since, until, where) if from_lake else _input_batches(inputs, input_format, options, skips)
    )
    result = build(batches, Settings(active, inactive, memory), skips)
    state.report_skips(skips)
    suppressed = suppress_rare_ports(result, min_count)
    if suppressed:
        state.info(f"{suppressed:,} port values seen in fewer than {min_count} flows set to 0")
    written = write_profile(result, Path(output), compress=compress)
    on_stdout = output == STDOUT
    state.info(f"{len(result):,} biflows -> {'standard output' if on_stdout else written}")
    if show_report or plot:
        summary = report.summarize(result)
        if show_report:  # on stderr when the profile is on stdout: a reader of the CSV gets only the CSV
            click.echo(report.render_text(summary), err=on_stdout)
        if plot:
            report.plot(summary, Path(plot))
