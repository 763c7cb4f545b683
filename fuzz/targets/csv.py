"""Flow CSVs through each CSV reader: the first byte picks ``csv`` (sniffed dialect) or a forced dialect."""

from __future__ import annotations

from collections.abc import Iterator

from fuzz.harness import Scratch, read_seeds
from fuzz.targets._files import read_through

MAX_LEN = 1 << 15
READERS = ("csv", "cic-csv", "nfdump-csv", "ftprofiler-csv")
_SCRATCH = Scratch("input.csv")


def seeds() -> Iterator[bytes]:
    for data in read_seeds("csv/**/*.csv", "profile/**/*.csv", "nfcapd/*.expected.csv"):
        for choice in range(len(READERS)):
            yield bytes([choice]) + data[:MAX_LEN]


def one_input(data: bytes) -> None:
    if data:
        read_through(READERS[data[0] % len(READERS)], _SCRATCH.write(data[1:]))
