"""Decompression bombs in gzip captures: the stream is read in bounded chunks, so a capture expanding to far
more than memory is read (or refused) in bounded memory, and a record claiming an absurd length is counted."""

from __future__ import annotations

import gzip
import struct
import tracemalloc
from pathlib import Path

import pytest

from flowscope.capture.source import CaptureSource

PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # Ethernet, snaplen 65535
RECORD = 65535


def _read(path: Path) -> tuple[int, dict[str, int], int]:
    tracemalloc.start()
    try:
        source = CaptureSource([path])
        rows = sum(t.num_rows for t in source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return rows, dict(source.skips.counts), peak


def _bomb(path: Path, expanded: int) -> Path:
    """Full-size zero frames (no IP in them) amounting to ``expanded`` bytes, gzip-compressed about 230:1."""
    frame = struct.pack("<IIII", 1, 0, RECORD, RECORD) + bytes(RECORD)
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(PCAP_HEADER)
        for _ in range(expanded // len(frame)):
            out.write(frame)
    return path


@pytest.mark.slow
def test_a_gzip_capture_expanding_past_memory_is_read_in_bounded_chunks(tmp_path: Path) -> None:
    """96 MiB and 384 MiB of expansion (from 0.4 and 1.8 MB of gzip) peak alike: memory follows the chunk
    (``chunks.CHUNK_BYTES``) and the batch, not the expansion. Each frame is counted, none becomes a flow."""
    peaks = []
    for mib in (96, 384):
        rows, skips, peak = _read(_bomb(tmp_path / f"bomb{mib}.pcap.gz", mib << 20))
        assert rows == 0 and sum(skips.values()) == (mib << 20) // (16 + RECORD)
        peaks.append(peak)
    assert peaks[1] < 1.25 * peaks[0] and peaks[1] < 384 << 20


def test_a_record_claiming_gigabytes_is_counted_not_allocated(tmp_path: Path) -> None:
    path = tmp_path / "huge.pcap.gz"
    path.write_bytes(gzip.compress(PCAP_HEADER + struct.pack("<IIII", 1, 0, 0x7FFFFFFF, 0x7FFFFFFF) + bytes(1 << 20)))
    rows, skips, peak = _read(path)
    assert rows == 0 and skips == {"pcap record with impossible length: rest of file unreadable": 1}
    assert peak < 0x7FFFFFFF // 16
