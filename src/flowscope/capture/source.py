"""Packet captures as a flow source: ``flowscope read X.pcap`` decodes and meters them into flows.

All files given (and every file in a given directory, in rotation order) are one packet stream
through one flow meter, so a flow that continues in the next rotated file stays one flow.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa

from flowscope.capture.files import capture_files, is_capture, iter_packet_batches
from flowscope.capture.meter import FlowMeter, FlowRows
from flowscope.capture.options import MeterOptions
from flowscope.diagnostics import Skips
from flowscope.memory import keep_freed_memory
from flowscope.pipeline import Source
from flowscope.readers.options import ReadOptions
from flowscope.readers.registry import Reader, head_bytes, register

GATHER_FLOWS = 1 << 13  # finished flows per output table: fewer conversions (more costs peak memory, gains little)


def meter_notes(meter: FlowMeter) -> list[str]:
    """What the user should know about a metering run that is not a skipped packet."""
    return counter_notes(meter.early_expired, meter.settings.max_flows, meter.unmatched_fragments)


def counter_notes(early_expired: int, max_flows: int, unmatched_fragments: int) -> list[str]:
    """``meter_notes`` from the counters (of one meter, or summed over the workers of ``flowscope.jobs``)."""
    notes = []
    if early_expired:
        notes.append(
            f"{early_expired:,} flows exported early because the flow cache was full "
            f"({max_flows:,} flows; raise --max-flows): each continues as a new record"
        )
    if unmatched_fragments:
        notes.append(
            f"{unmatched_fragments:,} IP fragments arrived without their first fragment: "
            "metered without ports in their own flows"
        )
    return notes


class CaptureSource:
    """Decoded, metered packets of capture files, yielding finished flows batch by batch."""

    def __init__(self, paths: Sequence[Path], options: MeterOptions | None = None, *, told: Sequence[str] = ()) -> None:
        keep_freed_memory()
        self.told = list(told)
        """Notes on how the read was made (``--workers`` that found nothing to share)."""
        options = options or MeterOptions()
        self.files, self.ignored = capture_inputs(paths)
        self.named = {Path(path) for path in paths if not Path(path).is_dir()}
        self.tunnels = options.tunnels
        self.skips = Skips(unit="packets")
        self.meter = FlowMeter(options, self.skips)
        self._sizes = [path.stat().st_size for path in self.files]
        self._done = 0

    def __iter__(self) -> Iterator[pa.Table]:
        finished: list[FlowRows] = []  # gathered into tables of about GATHER_FLOWS flows
        gathered = 0
        for path, size in zip(self.files, self._sizes, strict=True):
            # Only files named directly are memory-mapped: a folder may be a capture ring that tcpdump is still
            # writing, and a file it truncates under a mapping kills the reader (see MappedChunks).
            mapped = path in self.named
            batches = iter_packet_batches([path], tunnels=self.tunnels, skips=self.skips, mapped=mapped)
            for batch in batches:
                finished.append(self.meter.add_rows(batch))
                gathered += len(finished[-1])
                if gathered >= GATHER_FLOWS:
                    yield self.meter.table(FlowRows.concat(finished))
                    finished, gathered = [], 0
            self._done += size
        if gathered:
            yield self.meter.table(FlowRows.concat(finished))
        yield from self.meter.flush()

    def progress(self) -> tuple[int, int | None]:
        return self._done, sum(self._sizes)

    @property
    def notes(self) -> list[str]:
        return self.told + meter_notes(self.meter) + ignored_note(self.ignored)


def ignored_note(ignored: list[str]) -> list[str]:
    return [f"{len(ignored)} file(s) in the given folders are not captures: {ignored[:3]}"] if ignored else []


def capture_list(paths: Sequence[Path]) -> list[Path]:
    """The capture files a read of ``paths`` takes (a capture reader's ``lists``)."""
    return capture_inputs(paths)[0]


def capture_inputs(paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """Files named directly must be captures (else the reader fails clearly); in a folder, other files
    (notes, checksums, an index) are set aside and reported."""
    files: list[Path] = []
    ignored: list[str] = []
    for path in paths:
        found = capture_files([path])
        if not Path(path).is_dir():
            files.extend(found)
            continue
        for candidate in found:
            if is_capture(head_bytes(candidate)):
                files.append(candidate)
            else:
                ignored.append(str(candidate))
    return files, ignored


def _sniff(path: Path, head: bytes) -> bool:
    return is_capture(head)


def open_source(paths: Sequence[Path], options: ReadOptions) -> Source:
    if options.workers > 1:
        from flowscope.jobs.pool import PooledCaptureSource, pooled_runs  # the scale-out stage builds on this one
        from flowscope.jobs.split import one_process_note

        runs = pooled_runs(paths, options.workers)
        if runs is not None:
            return PooledCaptureSource(paths, options.meter, runs, asked=options.workers)
        return CaptureSource(paths, options.meter, told=one_process_note(options.workers))
    return CaptureSource(paths, options.meter)


READER = register(
    Reader(
        name="pcap",
        description="packet captures (pcap, pcapng, gzip-compressed), metered into flows",
        sniff=_sniff,
        open=open_source,
        shaping=lambda options: options.meter.shaping(),
        continuous=True,
        lists=capture_list,
    )
)
