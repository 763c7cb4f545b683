"""``flowscope watch`` and ``flowscope capture``: meter the capture files of a folder, or of a live tcpdump."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from flowscope.capture.health import CaptureHealth
from flowscope.capture.live import DEFAULT_BUFFER_KIB, LiveCapture, Rotation, default_interface
from flowscope.capture.watch import CaptureWatcher, follow
from flowscope.cli.common import CliState, pass_state
from flowscope.cli.destinations import destination_options, destination_urls, open_sink, sink_notes
from flowscope.cli.options import (
    keep_rollups_option,
    meter_from,
    meter_options,
    records_from,
    records_option,
    transform_options,
    transforms_from,
)
from flowscope.collect.metrics import MetricsServer
from flowscope.collect.server import new_run_id
from flowscope.pipeline import Stream
from flowscope.sinks.fanout import position_stores
from flowscope.stopping import stop_event

METRICS_HELP = "Serve Prometheus metrics on HOST:PORT (/metrics): rows written, capture-side drops."


def _report(state: CliState, watcher: CaptureWatcher) -> None:
    state.report_skips(watcher.skips)
    for note in [*watcher.notes(), *sink_notes(watcher.sink)]:
        state.info(f"note: {note}")
    for drops in watcher.drops.values():  # loss before the files: shown even with -q when there is any
        if drops.dropped:
            state.console.print(f"[yellow]warning:[/] capture loss: {escape(drops.describe())}")
        else:
            state.info(f"capture: {drops.describe()}")
    if not watcher.drops and watcher.files_metered:
        state.info("note: capture-side drops unknown: the files carry no statistics (only pcapng files can)")
    rows = f"{watcher.rows_written:,} {watcher.records}"
    state.info(f"{rows} from {watcher.files_metered:,} capture file(s) -> {watcher.sink.name}")


def _watcher(
    state: CliState, directory: Path, settle: float, urls: list[str], flags: dict[str, Any], workers: int = 1
) -> CaptureWatcher:
    """A watcher writing through ``run``'s streaming twin (its state and progress stay in the lake)."""
    records = records_from(flags)
    options, transforms = meter_from(flags), transforms_from(flags)
    sink = open_sink(state, urls, keep_rollups=flags["keep_rollups"], table=records)
    return CaptureWatcher(
        directory,
        state.lake,
        Stream(sink, transforms),
        options,
        settle=settle,
        records=records,
        workers=workers,
        stores=position_stores(sink),
    )


@contextmanager
def _health(state: CliState, watcher: CaptureWatcher, metrics: str | None) -> Iterator[None]:
    """The run's health record, saved in the lake after every file and at the end, and served as metrics."""
    health = CaptureHealth(watcher, new_run_id())

    def file_done(path: Path, rows: int) -> None:
        state.detail(f"{path}: {rows:,} {watcher.records} finished")
        health.save(state.lake.root)

    watcher.on_flows = file_done
    server = MetricsServer(metrics, health.merged) if metrics else None
    try:
        yield
    finally:
        if server is not None:
            server.close()
        health.save(state.lake.root)


workers_option = click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Meter the files found complete at once in N processes (a backlog catching up); the flows equal one "
    "process's.",
)


@click.command(
    epilog="""\b
Examples:
  flowscope watch /var/spool/captures             meter each finished file, keep following
  flowscope watch captures/ --once                meter what is complete now, then stop
  flowscope watch captures/ --records packets     store every packet (the 'packets' table)
  flowscope watch captures/ --workers 2           files found complete together: metered on two cores
"""
)
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--once", is_flag=True, help="Meter the files that are complete now, flush, and exit.")
@click.option("--poll", type=float, default=1.0, show_default=True, help="Seconds between directory scans.")
@click.option(
    "--settle",
    type=float,
    default=5.0,
    show_default=True,
    help="A file nobody holds open counts as complete after this many seconds without change.",
)
@workers_option
@click.option("--metrics", help=METRICS_HELP)
@destination_options
@records_option
@meter_options
@transform_options
@keep_rollups_option
@pass_state
def watch(
    state: CliState,
    directory: str,
    once: bool,
    poll: float,
    settle: float,
    workers: int,
    metrics: str | None,
    to: tuple[str, ...],
    output: tuple[str, ...],
    **flags: Any,
) -> None:
    """Follow a capture directory (per-day subfolders too): meter each capture file once it is complete.

    A file is complete when no process has it open and a newer file exists or it stopped changing.
    Each file is metered exactly once, also across restarts (state kept in the lake); Ctrl-C exports
    every open flow before exiting.
    """
    watcher = _watcher(state, Path(directory), settle, destination_urls(to, output), flags, workers)
    with _health(state, watcher, metrics):
        try:
            follow(watcher, poll=poll, once=once, stop=stop_event((signal.SIGTERM,)))
        finally:
            watcher.sink.close()
    _report(state, watcher)


@click.command(
    epilog="""\b
Examples:
  sudo flowscope capture                          capture on the default-route interface
  sudo flowscope capture -i eth0 --dir /srv/pcap --rotate 300 "not port 22"
"""
)
@click.option("-i", "--interface", help="Interface to capture on (default: the one with the default route).")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default="captures",
    show_default=True,
    help="Where tcpdump writes its files (one subfolder per UTC day).",
)
@click.option(
    "--rotate", type=click.IntRange(min=1), default=60, show_default=True, help="New file every N seconds (-G)."
)
@click.option("--rotate-mb", type=click.IntRange(min=1), help="Also start a new file every N MB (-C).")
@click.option("--files", type=click.IntRange(min=1), help="Passed to tcpdump -W (with -C: ring of N files).")
@click.option("--snaplen", type=click.IntRange(min=0), help="Bytes kept per packet (-s); metering needs only headers.")
@click.option(
    "--buffer-kib",
    type=click.IntRange(min=1),
    default=DEFAULT_BUFFER_KIB,
    show_default=True,
    help="tcpdump's kernel capture buffer in KiB (-B); too small a buffer drops packets in bursts.",
)
@workers_option
@click.option("--metrics", help=METRICS_HELP)
@click.argument("bpf", required=False)
@destination_options
@records_option
@meter_options
@transform_options
@keep_rollups_option
@pass_state
def capture(
    state: CliState,
    interface: str | None,
    directory: str,
    rotate: int,
    rotate_mb: int | None,
    files: int | None,
    snaplen: int | None,
    buffer_kib: int,
    workers: int,
    metrics: str | None,
    bpf: str | None,
    to: tuple[str, ...],
    output: tuple[str, ...],
    **flags: Any,
) -> None:
    """Capture live traffic with tcpdump (rotating files) and meter it continuously into the lake.

    Ctrl-C stops tcpdump cleanly, meters its last file and exports every open flow.
    """
    interface = interface or default_interface()
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    watcher = _watcher(state, folder, 5.0, destination_urls(to, output), flags, workers)
    live = LiveCapture(interface, folder, watcher, Rotation(rotate, rotate_mb, files, snaplen), bpf, buffer_kib)
    state.info(f"capturing on {interface} into {folder} (a file every {rotate}s); Ctrl-C to stop")
    with _health(state, watcher, metrics):
        try:
            live.run(stop=stop_event((signal.SIGTERM,)))
        finally:
            watcher.sink.close()
            _report(state, watcher)
