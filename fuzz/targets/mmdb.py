"""MMDB databases through ``MmdbTable.load`` (``--enrich`` ASN / country / city databases), then a lookup."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from flowscope.errors import FlowscopeError
from flowscope.transforms.enrich.mmdb import MmdbTable
from fuzz.harness import Scratch, read_seeds

MAX_LEN = 1 << 16
_SCRATCH = Scratch("input.mmdb")
_PROBES = np.frombuffer(
    bytes(10) + b"\xff\xff" + bytes([1, 2, 3, 4]) + bytes.fromhex("20010db8000000000000000000000001"), np.uint8
).reshape(2, 16)


def seeds() -> Iterator[bytes]:
    return read_seeds("geoip/**/*.mmdb", max_bytes=MAX_LEN)


def one_input(data: bytes) -> None:
    try:
        table = MmdbTable.load(_SCRATCH.write(data))
    except FlowscopeError:
        return
    table.lookup(_PROBES)
