"""``flowscope collect`` (the UDP collector), ``flowscope exporters`` (health) and ``flowscope templates``."""

from __future__ import annotations

import json
import logging
import time

import click
import pyarrow as pa
from rich.table import Table

from flowscope.addresses import format_one
from flowscope.cli.common import CliState, pass_state
from flowscope.cli.destinations import TO_HELP, destination_urls
from flowscope.cli.options import anonymize_from, enrich_from, keep_rollups_option, transform_options
from flowscope.cli.output import print_table, result_console
from flowscope.collect.health import HEALTH_DIR
from flowscope.collect.receive import QUEUE_BYTES, SPOOL_BYTES, Listen
from flowscope.collect.server import CollectorConfig, lake_health, new_run_id, run_collector, run_workers
from flowscope.collect.state import NetflowState
from flowscope.errors import FlowscopeError
from flowscope.transforms.enrich import Enricher


class ListenParam(click.ParamType):
    name = "PROTO://HOST:PORT"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> Listen:
        if isinstance(value, Listen):
            return value
        try:
            return Listen.parse(str(value))
        except FlowscopeError as exc:
            self.fail(str(exc), param, ctx)


@click.command(
    epilog="""\b
netflow:// takes NetFlow v1/v5/v9 and IPFIX on one port (told apart by version); sflow:// takes sFlow v5.
Flows go to the lake table "flows", sFlow counter samples to "interface_counters". Health (sequence
loss, decode errors, socket drops) is saved in LAKE/_collector/ for `flowscope exporters`.
Examples:
  flowscope collect --listen netflow://0.0.0.0:2055 --listen sflow://0.0.0.0:6343
  flowscope --lake /data/lake collect --listen netflow://[::]:2055 --metrics 127.0.0.1:9433 --workers 2
"""
)
@click.option("--listen", "listens", type=ListenParam(), multiple=True, required=True, help="Repeatable.")
@click.option(
    "--flush",
    "flush_seconds",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds a flow may wait in memory before it is written to the lake.",
)
@click.option("--metrics", help="Serve Prometheus metrics on HOST:PORT (/metrics).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Collector processes sharing each port (SO_REUSEPORT).",
)
@click.option(
    "--receive-buffer",
    type=click.IntRange(min=65536),
    default=64 << 20,
    show_default=True,
    help="Socket receive buffer to ask for, in bytes (the granted size is logged and exported).",
)
@click.option(
    "--queue-memory",
    "queue_mib",
    type=click.IntRange(min=1),
    default=QUEUE_BYTES >> 20,
    show_default=True,
    help="MiB of datagrams each listener may hold in memory while decoding catches up with a burst.",
)
@click.option(
    "--queue-spool",
    "spool_mib",
    type=click.IntRange(min=0),
    default=SPOOL_BYTES >> 20,
    show_default=True,
    help="MiB of datagrams each listener may hold beyond --queue-memory in a spool file (deleted, in "
    "LAKE/_collector: the page cache, written to disk under memory pressure); 0: none.",
)
@click.option(
    "--sampling-config",
    type=click.Path(dir_okay=False, exists=True),
    help="TOML file with per-exporter sampling defaults/overrides (see docs/COLLECTOR.md).",
)
@click.option("--to", "to", multiple=True, metavar="URL", help=TO_HELP)
@transform_options
@keep_rollups_option
@click.option(
    "--raw-to",
    metavar="kafka://HOST:PORT/TOPIC",
    help="Publish the datagrams undecoded, keyed by exporter, for `flowscope consume --raw` (decode them here "
    "too only with --to).",
)
@pass_state
def collect(
    state: CliState,
    listens: tuple[Listen, ...],
    to: tuple[str, ...],
    flush_seconds: float,
    metrics: str | None,
    workers: int,
    receive_buffer: int,
    queue_mib: int,
    spool_mib: int,
    sampling_config: str | None,
    enrich: str | None,
    anonymize: str | None,
    keep_rollups: bool,
    raw_to: str | None,
) -> None:
    """Receive NetFlow/IPFIX/sFlow over UDP into the lake until SIGINT/SIGTERM."""
    if raw_to is not None and not raw_to.startswith("kafka://"):
        raise FlowscopeError(f"--raw-to {raw_to}: raw datagrams go to kafka://HOST:PORT/TOPIC")
    if len({(spec.host, spec.port) for spec in listens}) != len(listens):
        raise FlowscopeError("two --listen options share one address and port")
    anonymize_from({"anonymize": anonymize})  # a bad key fails here, before any collector starts
    enrichment = enrich_from({"enrich": enrich})  # as does a bad configuration,
    if workers > 1 and enrichment is not None:  # and a bad database: one error rather than one per worker
        Enricher(enrichment)
    level = logging.WARNING if state.verbosity < 0 else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(message)s")
    config = CollectorConfig(
        listens=listens,
        lake=str(state.lake.root),
        destinations=tuple(destination_urls(to, ())) if to or raw_to is None else (),
        raw_to=raw_to,
        flush_seconds=flush_seconds,
        receive_buffer=receive_buffer,
        queue_memory=queue_mib << 20,
        queue_spool=spool_mib << 20,
        sampling_config=sampling_config,
        enrich=enrich,
        anonymize=anonymize,
        keep_rollups=keep_rollups,
        run_id=new_run_id(),
    )
    if workers == 1:
        collector = run_collector(config, metrics)
        state.info(f"stopped; rows written: {_counts(collector.health.rows_written)}")
        return
    failed = run_workers(config, workers, metrics)
    if failed:
        raise FlowscopeError(f"{failed} of {workers} collector workers failed (see the log above)")
    state.info("stopped")


def _age(ns: int) -> str:
    if not ns:
        return ""
    seconds = max(0, time.time() - ns / 1e9)
    return (
        f"{seconds:.0f}s ago"
        if seconds < 120
        else f"{seconds / 60:.0f}m ago"
        if seconds < 7200
        else (f"{seconds / 3600:.1f}h ago")
    )


def _counts(mapping: dict[str, int]) -> str:
    return ", ".join(f"{count:,} {unit}" for unit, count in sorted(mapping.items()) if count) or "0"


def _exporter_table(items: list[dict]) -> Table:
    """One row per exporter; the address never shrinks, the other columns wrap instead."""
    table = Table(title="exporters", header_style="bold")
    table.add_column("exporter", no_wrap=True, min_width=15)
    table.add_column("protocol")
    for name in ("datagrams", "flows"):
        table.add_column(name, justify="right")
    for name in ("lost", "late", "restarts", "decode errors", "sampling", "last seen"):
        table.add_column(name)
    for item in items:
        table.add_row(
            item["exporter"],
            item["protocol"],
            f"{item['datagrams']:,}",
            f"{item['flows']:,}",
            _counts(item["lost"]),
            _counts(item["late"]),
            f"{item['resets']:,}",
            _counts(item["errors"]),
            _sampling_text(item.get("sampling", [])),
            _age(item["last_seen_ns"]),
        )
    return table


def _sampling_text(entries: list[dict]) -> str:
    """Each rate applied and where it came from, with its flows: ``1:1000 options (12,345), unknown (23)``."""
    return ", ".join(
        f"{'1:' + format(e['rate'], ',') + ' ' if e['rate'] else ''}{e['source']} ({e['flows']:,})" for e in entries
    )


@click.command(
    epilog="""\b
Loss is counted from sequence numbers: NetFlow v5 and IPFIX number flows, NetFlow v9 and sFlow
number datagrams, sFlow also numbers samples per data source. Late = arrived out of order.
Sampling: the rates applied to the exporter's flows and where each came from: the record
(or its header, or the sFlow sample) itself, options data, the --sampling-config default or
override, or nowhere (unknown: scaled() counts such flows once).
Shows the latest collector run that wrote to the lake (all its workers).
"""
)
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_state
def exporters(state: CliState, output_format: str) -> None:
    """Health per exporter: datagrams, flows, sequence loss, decode errors; socket drops per listener; drops
    before the capture files of `watch` and `capture`."""
    merged = lake_health(state.lake)
    if output_format == "json":
        click.echo(json.dumps(merged, indent=1, sort_keys=True))
        return
    if not merged["exporters"] and not merged["listeners"] and not merged["captures"]:
        raise FlowscopeError(
            f"no collector health in {state.lake.root / HEALTH_DIR} "
            "(run `flowscope collect`, or `flowscope read CAPTURE --as-exports` into this lake, first)"
        )
    console = result_console()
    if merged["exporters"]:
        console.print(_exporter_table(merged["exporters"]))
    listeners = [
        {
            "listener": name,
            "datagrams": item["datagrams"],
            "socket drops": item["kernel_drops"],
            "spooled": item.get("spooled_datagrams", 0),
            "receive buffer": item["receive_buffer"],
            "processes": item["processes"],
        }
        for name, item in sorted(merged["listeners"].items())
    ]
    if listeners:
        print_table(pa.Table.from_pylist(listeners), console, title="listeners")
    captures = [
        {
            "capture": name,
            "kernel drops": item.get("kernel_drops"),
            "interface drops": item.get("interface_drops"),
            "received": item.get("received"),
            "captured": item.get("captured"),
        }
        for name, item in sorted(merged["captures"].items())
    ]
    if captures:  # loss before the capture files (watch, capture): unknown counters stay empty
        print_table(pa.Table.from_pylist(captures), console, title="captures")
    templates = merged.get("templates", {})
    if templates.get("known") or templates.get("held_sets"):
        state.console.print(
            f"templates known: {templates.get('known', 0)}; data sets waiting for a template: "
            f"{templates.get('held_sets', 0)} (`flowscope templates` lists them)"
        )
    for reason, count in sorted(merged["skips"].items(), key=lambda kv: -kv[1]):
        state.console.print(f"[yellow]skipped:[/] {count:,} {reason}")


@click.command()
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_state
def templates(state: CliState, output_format: str) -> None:
    """NetFlow v9 / IPFIX templates the collector knows, per exporter and observation domain."""
    table = NetflowState.open(state.lake.root).templates.table()
    if output_format == "json":
        rows = table.to_pylist()
        for row in rows:
            row["exporter"] = None if row["exporter"] is None else format_one(row["exporter"])
        click.echo(json.dumps(rows, indent=1))
        return
    if table.num_rows == 0:
        state.info(f"no templates known in {state.lake.root} yet")
        return
    print_table(table, result_console(), title="templates", identifiers=("domain", "template_id"))
