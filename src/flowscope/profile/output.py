"""Writing a profile as ft-profiler's CSV (optionally gzipped), and the --min-count port suppression."""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from flowscope.lake.layout import publish, staging_path
from flowscope.profile import parallel
from flowscope.profile.merge import Profile
from flowscope.sinks.files import STDOUT, check_output_file

COLUMNS = (
    "START_TIME",
    "END_TIME",
    "L3_PROTO",
    "L4_PROTO",
    "SRC_PORT",
    "DST_PORT",
    "PACKETS",
    "BYTES",
    "PACKETS_REV",
    "BYTES_REV",
)

WRITE_BATCH_ROWS = 65_536  # pyarrow's default of 1,024 rows a batch costs ~20% more CPU; ~4 MiB of text a batch
PIECE_ROWS = WRITE_BATCH_ROWS
"""Rows formatted as one piece of text on a thread (~3 MiB): pieces are formatted on all cores and written in
order. pyarrow's CSV writer formats on the calling thread only; 5.4 M rows took 1.4-2.0 s of one core. Pieces of
one write batch against 262,144 rows (2 M and 10 M nfcapd records, alternated, load ~1): 1.38 vs 1.51 and 7.56
vs 7.92 CPU s, the smaller buffers being reused."""


def suppress_rare_ports(profile: Profile, min_count: int) -> int:
    """Ports used by fewer than ``min_count`` flows (as source or destination) become 0; returns how many values."""
    if min_count <= 1 or not len(profile):
        return 0
    src = profile.src_port.astype(np.int64)
    dst = profile.dst_port.astype(np.int64)
    counts = np.bincount(src, minlength=65536) + np.bincount(dst, minlength=65536)
    counts -= np.bincount(src[src == dst], minlength=65536)  # a flow with equal ports counts once
    rare = counts < min_count
    rare[0] = False
    profile.src_port = np.where(rare[src], 0, src).astype(profile.src_port.dtype)
    profile.dst_port = np.where(rare[dst], 0, dst).astype(profile.dst_port.dtype)
    return int((rare & (counts > 0)).sum())


def to_table(profile: Profile) -> pa.Table:
    values = (
        profile.start,
        profile.end,
        np.where(profile.ipv6, 6, 4).astype(np.uint8),
        profile.proto,
        profile.src_port,
        profile.dst_port,
        profile.packets,
        profile.bytes,
        profile.packets_rev,
        profile.bytes_rev,
    )
    return pa.table(dict(zip(COLUMNS, values, strict=True)))


def write_profile(profile: Profile, path: Path, *, compress: bool) -> Path:
    """Write atomically; with ``compress`` the file is gzipped and gets '.gz' appended (as ft-profiler does).
    ``-`` writes to standard output (gzipped with ``compress``), as every flowscope ``-o`` does."""
    if str(path) == STDOUT:
        _write_csv(profile, sys.stdout.buffer, compress=compress)
        sys.stdout.buffer.flush()
        return path
    if compress and path.suffix != ".gz":
        path = path.with_name(path.name + ".gz")
    check_output_file(path)  # a missing directory is an error, not created: see there
    tmp = staging_path(path)
    with open(tmp, "wb") as raw:
        _write_csv(profile, raw, compress=compress)
    publish(tmp, path)
    return path


def _write_csv(profile: Profile, raw: BinaryIO, *, compress: bool) -> None:
    options = pacsv.WriteOptions(include_header=False, batch_size=WRITE_BATCH_ROWS)
    stream = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) if compress else raw
    stream.write((",".join(COLUMNS) + "\n").encode())
    for text in _csv_pieces(to_table(profile), options):
        stream.write(text)
    if compress:
        stream.close()


def _csv_pieces(table: pa.Table, options: pacsv.WriteOptions) -> Iterator[pa.Buffer]:
    """The rows as CSV text, piece after piece (the same bytes as one ``write_csv`` of the whole table)."""

    def text(offset: int) -> pa.Buffer:
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table.slice(offset, PIECE_ROWS), sink, options)
        return sink.getvalue()

    return parallel.ordered(text, range(0, table.num_rows, PIECE_ROWS))
