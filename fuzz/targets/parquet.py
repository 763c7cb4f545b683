"""Parquet files through the ``parquet`` reader: pyarrow's footer, page and encoding decoding, then the casts
to the catalogue. Seeds are flowscope's own flows written with each compression and encoding flowscope or
other tools use (the third-party data holds no Parquet flows)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from flowscope import addresses
from flowscope.demo.traffic import synthetic_flows
from flowscope.schema import conform
from fuzz.harness import Scratch
from fuzz.targets._files import read_through

MAX_LEN = 1 << 16
_SCRATCH = Scratch("input.parquet")


def seeds() -> Iterator[bytes]:
    flows = conform(
        next(synthetic_flows(16, end=datetime(2024, 5, 1, tzinfo=UTC), hosts=8, servers=8)), keep_extra=False
    )
    narrow = flows.select(["time_received", "src_addr", "dst_addr", "bytes", "packets", "proto"])
    as_text = narrow.set_column(1, "src_addr", addresses.format_text(narrow["src_addr"]))
    for table, compression, dictionary in (
        (flows, "none", False),
        (narrow, "snappy", True),
        (as_text, "zstd", True),
        (
            narrow.cast(pa.schema([f.with_type(pa.int32()) if f.name == "packets" else f for f in narrow.schema])),
            "gzip",
            False,
        ),
    ):
        out = io.BytesIO()
        pq.write_table(table, out, compression=compression, use_dictionary=dictionary, row_group_size=8)
        yield out.getvalue()


def one_input(data: bytes) -> None:
    read_through("parquet", _SCRATCH.write(data))
