"""MMDB databases through ``MmdbTable.load`` (``--enrich`` ASN / country / city databases), then a lookup.

Records are decoded by maxminddb's pure-Python reader here, not its C extension: the extension (maxminddb
3.2.0, libmaxminddb inside) dies with SIGSEGV on some corrupt data sections (found by this target; the
Python reader raises ``InvalidDatabaseError`` on the same file), which would end every run at that input.
This target fuzzes flowscope's own reading of the file (metadata, search tree walk, ranges, fields); the
extension's crash is an open finding in docs/RELIABILITY.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import maxminddb
import numpy as np

from flowscope.errors import FlowscopeError
from flowscope.transforms.enrich.mmdb import MmdbTable
from fuzz.harness import Scratch, read_seeds

MAX_LEN = 1 << 16
maxminddb.open_database = partial(maxminddb.open_database, mode=maxminddb.MODE_MMAP)
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
