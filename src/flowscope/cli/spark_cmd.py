"""``flowscope spark meter``: rotated capture directories metered on Apache Spark (optional extra)."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import click

from flowscope.cli.common import CliState, pass_state, progress_bar
from flowscope.cli.destinations import destination_options, destination_urls, ledgers, open_sink, sink_notes
from flowscope.cli.options import anonymize_from, enrich_from, meter_from, meter_options, transform_options
from flowscope.errors import FlowscopeError
from flowscope.jobs.spark_session import require_spark, spark_session
from flowscope.readers.options import ReadOptions
from flowscope.stopping import stop_event

APP = "flowscope spark meter"


@click.group()
def spark() -> None:
    """Jobs on Apache Spark (pip install 'flowscope[spark]'; docs/SCALING.md)."""


@spark.command(
    epilog="""\b
Examples:
  flowscope spark meter /data/captures --master local[2]
  flowscope spark meter /data/captures --to lake:/shared/lake --master yarn
  flowscope spark meter /data/captures --stream --checkpoint /shared/ckpt --to lake:/shared/lake
  spark-submit --master yarn "$(python -c 'import flowscope.jobs.spark_meter as j; print(j.__file__)')" \
      /data/captures --to lake:/shared/lake

The result equals 'flowscope read DIR' flow for flow. Executors must see INPUT_DIR at the same path.
"""
)
@click.argument("input_dir", type=click.Path(exists=True, file_okay=False))
@destination_options
@click.option("--stream", is_flag=True, help="Follow the directory, metering each completed file once.")
@click.option("--checkpoint", type=click.Path(file_okay=False), help="Stream state (Spark's and the open flows).")
@click.option("--once", is_flag=True, help="Stream: meter the files there now, export every open flow, stop.")
@click.option(
    "--poll", type=click.FloatRange(min=0.1), default=2.0, show_default=True, help="Stream: seconds between scans."
)
@click.option(
    "--master",
    help="Spark master: local[N], yarn, k8s://URL, spark://HOST:PORT (default: spark-submit's, else local[*]).",
)
@click.option(
    "--runs", type=click.IntRange(min=1), help="Batch: runs of files metered in parallel (default: 2 per core)."
)
@click.option("--again", is_flag=True, help="Batch: meter files the lake already holds again.")
@meter_options
@transform_options
@pass_state
def meter(
    state: CliState,
    input_dir: str,
    to: tuple[str, ...],
    output: tuple[str, ...],
    stream: bool,
    checkpoint: str | None,
    once: bool,
    poll: float,
    master: str | None,
    runs: int | None,
    again: bool,
    **flags: Any,
) -> None:
    """Meter the capture files of INPUT_DIR (per-day subfolders too) on Spark, as 'flowscope read' would.

    Batch (default): every file now, recorded in the lake's ingest ledger (a rerun adds nothing).
    --stream: Structured Streaming follows the directory and meters each completed file exactly once
    (files tcpdump moved on from, or published by renaming a hidden file; dot-files are ignored).
    """
    require_spark()
    directory = Path(input_dir)
    urls = destination_urls(to, output)
    if stream:
        if checkpoint is None:
            raise FlowscopeError("--stream needs --checkpoint DIR (where the stream remembers the files it metered)")
        _stream(state, directory, Path(checkpoint), urls, master, once, poll, flags)
        return
    if checkpoint or once:
        raise FlowscopeError("--checkpoint and --once belong to --stream")
    _batch(state, directory, urls, master, runs, again, flags)


def _batch(
    state: CliState,
    directory: Path,
    urls: list[str],
    master: str | None,
    runs: int | None,
    again: bool,
    flags: dict[str, Any],
) -> None:
    from flowscope.jobs.spark_meter import SparkCaptureSource, meter_batch

    options = ReadOptions(meter=meter_from(flags), enrich=enrich_from(flags), anonymize=anonymize_from(flags))
    options.transforms()  # a bad --enrich file fails here, before Spark starts and the sink opens
    sink = open_sink(state, urls, transactional=True)
    starting: list[float] = []

    def start() -> Any:
        began = time.perf_counter()
        started = spark_session(APP, master)
        starting.append(time.perf_counter() - began)
        return started

    session = functools.cache(start)
    started = time.perf_counter()
    with progress_bar(state, "metering on Spark", None) as update:
        stats, plan = meter_batch(
            session, directory, sink, options, ledgers(sink), again=again, runs=runs, on_batch=lambda _: update()
        )
    total = time.perf_counter() - started
    for source in plan.sources:
        if isinstance(source, SparkCaptureSource):
            spent = source.metering.seconds
            rest = total - sum(spent.values()) - sum(starting)
            state.detail(
                f"{len(source.files)} files in {len(source.runs)} runs: {total:.2f} s: Spark session start "
                f"{sum(starting):.2f} s, metering on the executors {spent['executors']:.2f} s, stitching on the "
                f"driver {spent['stitching']:.2f} s, fetching and writing the flows {rest:.2f} s"
            )
    for source in plan.sources:
        state.report_skips(source.skips)
    for note in [*plan.notes(), *sink_notes(sink)]:
        state.info(f"note: {note}")
    files = sum(len(unit.files) for unit in plan.units)
    state.info(f"{stats.rows:,} flows from {files} capture file(s) -> {sink.name}")


def _stream(
    state: CliState,
    directory: Path,
    checkpoint: Path,
    urls: list[str],
    master: str | None,
    once: bool,
    poll: float,
    flags: dict[str, Any],
) -> None:
    from flowscope.jobs.spark_stream import CaptureStream, follow

    options = ReadOptions(meter=meter_from(flags), enrich=enrich_from(flags), anonymize=anonymize_from(flags))
    transforms = options.transforms()
    stop = stop_event()  # Ctrl-C or SIGTERM: the query stops, then pending files and open flows are metered
    session = spark_session(APP, master)
    sink = open_sink(state, urls, transactional=True)  # published only with the stream's position (the lake)
    try:
        stream = CaptureStream(session, directory, checkpoint, sink, options.meter, transforms)
        follow(stream, checkpoint, once=once, poll=poll, stop=stop)
    except BaseException:
        sink.abort()
        raise
    sink.close()
    state.report_skips(stream.skips)
    for note in [*stream.notes(), *sink_notes(sink)]:
        state.info(f"note: {note}")
    state.info(f"{stream.flows_written:,} flows from {stream.files_metered} capture file(s) -> {sink.name}")
