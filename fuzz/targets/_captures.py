"""The capture targets' shared part: seed selection by magic number, and the read."""

from __future__ import annotations

from collections.abc import Iterator

from fuzz.harness import Scratch, seed_files
from fuzz.targets._files import read_through

MAX_LEN = 1 << 16
PCAP_MAGICS = {bytes.fromhex(m) for m in ("d4c3b2a1", "a1b2c3d4", "4d3cb2a1", "a1b23c4d")}
PCAPNG_MAGIC = bytes.fromhex("0a0d0d0a")
_SCRATCH = Scratch("input.pcap")


def capture_seeds(magics: set[bytes]) -> Iterator[bytes]:
    for path in seed_files("pcap/**/*", "netflow/**/*", "sflow/**/*", "csv/**/*.pcap"):
        data = path.read_bytes()
        if data[:4] in magics:
            yield data


def read_capture(data: bytes) -> None:
    read_through("pcap", _SCRATCH.write(data))
