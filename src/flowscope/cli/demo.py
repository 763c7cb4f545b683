"""``flowscope demo``: generate realistic traffic, store it in the lake, answer from it."""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path

import click

from flowscope.cli.common import CliState, OutputFile, pass_state, progress_bar
from flowscope.cli.destinations import TO_HELP, destination_urls, ledgers, open_sink
from flowscope.cli.output import print_table, result_console
from flowscope.demo.pcap import write_synthetic_pcap
from flowscope.demo.traffic import synthetic_flows
from flowscope.pipeline import Checkpoint, InputRecord, Sink, run
from flowscope.query import open_lake
from flowscope.query.reports.top import top_sql
from flowscope.readers import registry
from flowscope.readers.options import ReadOptions


def _generated(what: str) -> InputRecord:
    """The ledger's record of a generated input: known by what was generated, so a second demo adds nothing."""
    return InputRecord(name=f"flowscope demo: {what}", digest=what, size=0, sample=what, options="demo")


def _already_stored(state: CliState, sink: Sink, record: InputRecord, again: bool) -> bool:
    seen = None if again else next((s for s in (ledger.holds(record) for ledger in ledgers(sink)) if s), None)
    if seen is not None:
        state.info(f"the lake holds the demo's {record.digest} since {seen.committed}; not stored again (--again)")
    return seen is not None


def _store_synthetic_flows(state: CliState, sink: Sink, flows: int, days: float, again: bool) -> None:
    record = _generated(f"{flows} synthetic flows over {days:g} days")
    if _already_stored(state, sink, record, again):
        return
    started = time.perf_counter()
    with progress_bar(state, "synthetic flows -> lake", flows) as update:
        stats = run(
            itertools.chain(synthetic_flows(flows, days=days), [Checkpoint(inputs=(record,))]),
            sink,
            on_batch=lambda batch: update(advance=batch.num_rows),
        )
    elapsed = time.perf_counter() - started
    state.info(f"stored {stats.rows:,} synthetic flows over {days:g} days in {elapsed:.1f} s -> {sink.name}")


def _meter_synthetic_capture(state: CliState, sink: Sink, packets: int, keep: Path | None, again: bool) -> None:
    """Write a synthetic pcap and meter it into the lake, as ``flowscope read capture.pcap`` does."""
    record = _generated(f"metered synthetic capture of {packets} packets")
    if _already_stored(state, sink, record, again):
        return
    with tempfile.TemporaryDirectory(prefix="flowscope-demo-") as scratch:
        path = keep or Path(scratch) / "synthetic.pcap"
        recent = time.time_ns() - 3_600_000_000_000  # the last hour, so time-window reports include it
        expected = write_synthetic_pcap(path, packets=packets, flows=max(1, packets // 20), start_ns=recent)
        source = registry.get("pcap").open([path], ReadOptions())
        stats = run(itertools.chain(source, [Checkpoint(inputs=(record,))]), sink)
    state.report_skips(source.skips)
    state.info(
        f"metered a synthetic capture of {expected['packets']:,} packets into {stats.rows:,} flows"
        + (f" (kept at {keep})" if keep else "")
    )


def _report(state: CliState) -> None:
    console = result_console()
    with open_lake(state.lake) as con:
        totals = con.sql(
            "SELECT type, count(*) AS flows, sum(packets + packets_rev) AS packets, "
            "sum(bytes + bytes_rev) AS bytes, min(time_flow_start) AS first, max(time_flow_start) AS last "
            "FROM flows GROUP BY type ORDER BY type"
        ).to_arrow_table()
        print_table(totals, console, title="lake contents")
        for grouping, title in (("src", "top talkers"), ("port", "top services"), ("proto", "protocols")):
            table = con.sql(top_sql(grouping, "bytes", 10)).to_arrow_table()
            print_table(table, console, title=f"{title} by bytes")


@click.command(
    epilog="""\b
Examples:
  flowscope demo                       1 M flows over the last 2 days into ./flowlake
  flowscope --lake /tmp/demo demo --flows 5000000 --days 7
"""
)
@click.option(
    "--flows",
    type=click.IntRange(min=0),
    default=1_000_000,
    show_default=True,
    help="Synthetic flow records to generate.",
)
@click.option(
    "--days",
    type=click.FloatRange(min=0, min_open=True),
    default=2.0,
    show_default=True,
    help="Time span they cover, ending now.",
)
@click.option(
    "--packets",
    type=click.IntRange(min=0),
    default=200_000,
    show_default=True,
    help="Packets in the synthetic capture to meter.",
)
@click.option("--keep-pcap", type=OutputFile(Path, dash=False), help="Keep the synthetic capture here.")
@click.option("--to", "to", multiple=True, metavar="URL", help=TO_HELP)
@click.option("--again", is_flag=True, help="Store the demo's traffic even if the lake holds it already.")
@pass_state
def demo(
    state: CliState,
    flows: int,
    days: float,
    packets: int,
    keep_pcap: Path | None,
    to: tuple[str, ...],
    again: bool,
) -> None:
    """Fill the lake with realistic synthetic traffic end to end and print reports from it.

    Two inputs: synthetic flow records (as a collector would store them) and a synthetic packet
    capture metered into flows (as ``flowscope read capture.pcap`` does).
    """
    urls = destination_urls(to, ())
    _store_synthetic_flows(state, open_sink(state, urls, transactional=True), flows, days, again)
    _meter_synthetic_capture(state, open_sink(state, urls, transactional=True), packets, keep_pcap, again)
    if "lake" in urls:
        _report(state)
