"""Decompression bombs in nfdump files: a small block that expands past ``MAX_BLOCK_BYTES`` is a counted skip,
found without ever holding the expansion (each codec is checked under tracemalloc)."""

from __future__ import annotations

import bz2
import tracemalloc
from pathlib import Path

import lz4.block
import pytest
from lzallright import LZOCompressor

from flowscope.nfdump import container
from flowscope.nfdump.options import RecordSelection
from flowscope.nfdump.reader import NfdumpSource

EXPANDED = 40 << 20
"""What each bomb decompresses to: 2.5 times the largest block flowscope accepts (16 MiB)."""

COMPRESSORS = {
    container.LZO_COMPRESSED: lambda data: LZOCompressor().compress(data),
    container.BZ2_COMPRESSED: lambda data: bz2.compress(data, 1),
    container.LZ4_COMPRESSED: lambda data: lz4.block.compress(data, store_size=False),
}


def nfdump_file(path: Path, compression: int, stored: bytes, records: int) -> Path:
    """A layout-2 nfdump file (no appendix) holding one data block of ``stored`` bytes."""
    header = container.FILE_HEADER.pack(
        container.MAGIC, container.LAYOUT_VERSION_2, 0, 0, compression, 0, 0, 0, 0, 0, 1
    )
    block = container.BLOCK_HEADER.pack(records, len(stored), container.DATA_BLOCK_TYPE_3, 0)
    path.write_bytes(header + block + stored)
    return path


@pytest.mark.parametrize("compression", sorted(COMPRESSORS), ids=lambda c: container.COMPRESSION_NAMES[c])
def test_a_block_expanding_past_the_bound_is_skipped_in_bounded_memory(tmp_path: Path, compression: int) -> None:
    stored = COMPRESSORS[compression](bytes(EXPANDED))
    assert len(stored) < EXPANDED // 100  # a bomb: small on disk
    path = nfdump_file(tmp_path / "bomb.nfcapd", compression, stored, records=1000)
    tracemalloc.start()
    try:
        source = NfdumpSource([path], RecordSelection())
        tables = list(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(t.num_rows for t in tables) == 0
    assert dict(source.skips.counts) == {"corrupt compressed block": 1000}
    # BZ2's output buffer grows up to twice the bound; never the 40 MiB expansion (nor lzallright's doubling of it)
    assert peak < 2 * container.MAX_BLOCK_BYTES + (4 << 20) < EXPANDED


def test_a_cut_bz2_block_is_a_counted_skip(tmp_path: Path) -> None:
    stored = bz2.compress(bytes(1000))[:-10]
    path = nfdump_file(tmp_path / "cut.nfcapd", container.BZ2_COMPRESSED, stored, 3)
    source = NfdumpSource([path], RecordSelection())
    assert sum(t.num_rows for t in source) == 0
    assert dict(source.skips.counts) == {"corrupt compressed block": 3}
    assert "cut short" in source.skips.examples["corrupt compressed block"]
