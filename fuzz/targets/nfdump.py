"""nfdump 1.7 files (uncompressed, LZO, LZ4, BZ2) through the ``nfdump`` reader: container, blocks, V3 records."""

from __future__ import annotations

from collections.abc import Iterator

from fuzz.harness import Scratch, read_seeds
from fuzz.targets._files import read_through

MAX_LEN = 1 << 15
_SCRATCH = Scratch("input.nfcapd")


def seeds() -> Iterator[bytes]:
    return read_seeds("nfcapd/*.nfcapd")


def one_input(data: bytes) -> None:
    read_through("nfdump", _SCRATCH.write(data))
