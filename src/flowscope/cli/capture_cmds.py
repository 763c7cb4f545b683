"""``flowscope watch`` and ``flowscope capture``: meter the capture files of a folder, or of a live tcpdump."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import click

from flowscope.capture.live import LiveCapture, Rotation, default_interface
from flowscope.capture.watch import CaptureWatcher, follow
from flowscope.cli.common import CliState, pass_state
from flowscope.cli.destinations import destination_options, destination_urls, open_sink, sink_notes
from flowscope.cli.options import meter_from, meter_options, transform_options, transforms_from
from flowscope.pipeline import Stream
from flowscope.sinks.fanout import position_stores
from flowscope.stopping import stop_event


def _report(state: CliState, watcher: CaptureWatcher) -> None:
    state.report_skips(watcher.skips)
    for note in [*watcher.notes(), *sink_notes(watcher.sink)]:
        state.info(f"note: {note}")
    state.info(f"{watcher.flows_written:,} flows from {watcher.files_metered:,} capture file(s) -> {watcher.sink.name}")


def _watcher(state: CliState, directory: Path, settle: float, urls: list[str], flags: dict[str, Any]) -> CaptureWatcher:
    """A watcher writing through ``run``'s streaming twin (its state and progress stay in the lake)."""
    options, transforms = meter_from(flags), transforms_from(flags)
    sink = open_sink(state, urls)
    return CaptureWatcher(
        directory,
        state.lake,
        Stream(sink, transforms),
        options,
        settle=settle,
        on_flows=lambda path, flows: state.detail(f"{path}: {flows:,} flows finished"),
        stores=position_stores(sink),
    )


@click.command(
    epilog="""\b
Examples:
  flowscope watch /var/spool/captures             meter each finished file, keep following
  flowscope watch captures/ --once                meter what is complete now, then stop
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
@destination_options
@meter_options
@transform_options
@pass_state
def watch(
    state: CliState,
    directory: str,
    once: bool,
    poll: float,
    settle: float,
    to: tuple[str, ...],
    output: str | None,
    **flags: Any,
) -> None:
    """Follow a capture directory (per-day subfolders too): meter each capture file once it is complete.

    A file is complete when no process has it open and a newer file exists or it stopped changing.
    Each file is metered exactly once, also across restarts (state kept in the lake); Ctrl-C exports
    every open flow before exiting.
    """
    watcher = _watcher(state, Path(directory), settle, destination_urls(to, output), flags)
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
@click.argument("bpf", required=False)
@destination_options
@meter_options
@transform_options
@pass_state
def capture(
    state: CliState,
    interface: str | None,
    directory: str,
    rotate: int,
    rotate_mb: int | None,
    files: int | None,
    snaplen: int | None,
    bpf: str | None,
    to: tuple[str, ...],
    output: str | None,
    **flags: Any,
) -> None:
    """Capture live traffic with tcpdump (rotating files) and meter it continuously into the lake.

    Ctrl-C stops tcpdump cleanly, meters its last file and exports every open flow.
    """
    interface = interface or default_interface()
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    watcher = _watcher(state, folder, 5.0, destination_urls(to, output), flags)
    live = LiveCapture(interface, folder, watcher, Rotation(rotate, rotate_mb, files, snaplen), bpf)
    state.info(f"capturing on {interface} into {folder} (a file every {rotate}s); Ctrl-C to stop")
    try:
        live.run(stop=stop_event((signal.SIGTERM,)))
    finally:
        watcher.sink.close()
        _report(state, watcher)
