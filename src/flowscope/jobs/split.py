"""One large classic pcap file cut into byte spans, one run each (``read BIG.pcap --workers N``).

A pcap record can only be found by following lengths from the file's start, so a span's first record is a
guess: the first position past the cut where a chain of record headers looks right (``pcap.guess_record_start``,
the chain walk's lane test followed over eight records). A guess is never trusted: the run before a span reads
on until its own walk passes the span's start, and the span's results count only if that walk lands exactly
on it (``jobs/pool.Workers`` holds a span's flows until then). A false guess (payload bytes that look like
records, a cut inside one huge record) costs time, not correctness: the spans after it are dropped and the
rest of the file is metered in one run from where the true walk landed.

Only plain classic pcap files are cut: gzip streams cannot be entered in the middle, and pcapng blocks carry
section and interface state that a span would lack; both, and files too small to pay, stay one run.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from flowscope.capture import pcap

MIN_SPAN_RECORDS = 200_000
"""A span per this many records at most (counted from the mean record length of the file's first MiB). The
cost of metering goes by records, not bytes, and so does what a span saves against its worker's fork, head and
stitch. Modelled from CPU seconds for an idle 2-core machine (start-up, then the longer worker or half of all
the parallel work, then the serial tail; BENCHMARKS.md, pcap section, measured loaded): two workers on 120 k
records each (whole packets, 130 MiB) and on 200 k each (96-byte packets, 37 MiB) take as long as one process;
on 240 k each (whole, 260 MiB) 0.7-0.8x of it, on 350 k each (96-byte, 65 MiB) 0.65-0.8x."""
GUESS_BYTES = 1 << 20
"""Bytes searched past a cut for a record start (a cut with none in them is dropped: its span joins the one
before)."""


def run_edges(total: float, count: int, later_cost: float) -> np.ndarray:
    """Where ``count`` runs of about equal cost end, in bytes of ``total``: a byte of run 0 costs 1, one of a
    later run ``later_cost`` (every run but the first keeps a head), so run 0 gets more."""
    first = total / (1 + (count - 1) / later_cost)  # run 0's bytes; the later runs share the rest equally
    return np.concatenate([[first], first + np.arange(1, count) * (total - first) / max(count - 1, 1)])


def one_process_note(workers: int) -> list[str]:
    """Why ``read FILE --workers N`` ran in one process: said, since the user asked for N (a small file's run
    looked the same as a split one's)."""
    return [
        f"--workers {workers}: metered in one process (one file is cut into spans only when it is a plain classic "
        f"pcap file of at least {2 * MIN_SPAN_RECORDS:,} records; pcapng and gzip files never are)"
    ]


def split_file(
    path: Path, workers: int, *, later_cost: float = 1.0, min_bytes: int | None = None
) -> list[pcap.Span] | None:
    """``path`` cut into at most ``workers`` spans of at least about ``min_bytes`` (default: ``MIN_SPAN_RECORDS``
    records), each starting at a guessed record start (to be verified while metering); None when the file is no
    plain classic pcap file or too small for two spans."""
    size = path.stat().st_size
    if workers < 2 or size < 2 * (min_bytes or 0):
        return None
    with open(path, "rb") as file:
        head = np.frombuffer(os.pread(file.fileno(), GUESS_BYTES, 0), np.uint8)
        if head.shape[0] < pcap.FILE_HEADER + pcap.RECORD_HEADER or not pcap.sniff(head[:4].tobytes()):
            return None
        header = pcap.parse_header(head[: pcap.FILE_HEADER].tobytes(), str(path))
        if min_bytes is None:
            min_bytes = int(MIN_SPAN_RECORDS * pcap.mean_record(head, header))
        count = min(workers, size // max(min_bytes, 1))
        if count < 2:
            return None
        first_second = int(np.frombuffer(head[pcap.FILE_HEADER : pcap.FILE_HEADER + 4], header.byteorder + "u4")[0])
        starts = [pcap.FILE_HEADER]
        for cut in run_edges(size, count, later_cost)[:-1].astype(np.int64).tolist():
            window = np.frombuffer(os.pread(file.fileno(), GUESS_BYTES, cut), np.uint8)
            found = pcap.guess_record_start(window, header, first_second)
            if found is not None and cut + found > starts[-1]:
                starts.append(cut + found)
    if len(starts) < 2:
        return None
    return [pcap.Span(path, start, stop) for start, stop in zip(starts, [*starts[1:], None], strict=True)]
