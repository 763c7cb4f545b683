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

MIN_SPAN_BYTES = 64 << 20
"""A span per this many bytes at most: below it a worker's fork, head and stitch cost more than it saves."""
GUESS_BYTES = 1 << 20
"""Bytes searched past a cut for a record start (a cut with none in them is dropped: its span joins the one
before)."""


def run_edges(total: float, count: int, later_cost: float) -> np.ndarray:
    """Where ``count`` runs of about equal cost end, in bytes of ``total``: a byte of run 0 costs 1, one of a
    later run ``later_cost`` (every run but the first keeps a head), so run 0 gets more."""
    first = total / (1 + (count - 1) / later_cost)  # run 0's bytes; the later runs share the rest equally
    return np.concatenate([[first], first + np.arange(1, count) * (total - first) / max(count - 1, 1)])


def split_file(
    path: Path, workers: int, *, later_cost: float = 1.0, min_bytes: int | None = None
) -> list[pcap.Span] | None:
    """``path`` cut into at most ``workers`` spans of at least about ``min_bytes`` (``MIN_SPAN_BYTES``), each
    starting at a guessed record start (to be verified while metering); None when the file is no plain
    classic pcap file or too small for two spans."""
    size = path.stat().st_size
    count = min(workers, size // max(MIN_SPAN_BYTES if min_bytes is None else min_bytes, 1))
    if count < 2:
        return None
    with open(path, "rb") as file:
        head = file.read(pcap.FILE_HEADER + pcap.RECORD_HEADER)
        if len(head) < pcap.FILE_HEADER + pcap.RECORD_HEADER or not pcap.sniff(head):
            return None
        header = pcap.parse_header(head, str(path))
        first_second = int(np.frombuffer(head[pcap.FILE_HEADER :], header.byteorder + "u4")[0])
        starts = [pcap.FILE_HEADER]
        for cut in run_edges(size, count, later_cost)[:-1].astype(np.int64).tolist():
            window = np.frombuffer(os.pread(file.fileno(), GUESS_BYTES, cut), np.uint8)
            found = pcap.guess_record_start(window, header, first_second)
            if found is not None and cut + found > starts[-1]:
                starts.append(cut + found)
    if len(starts) < 2:
        return None
    return [pcap.Span(path, start, stop) for start, stop in zip(starts, [*starts[1:], None], strict=True)]
