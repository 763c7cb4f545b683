"""GoFlow2 ``bin`` files (length-delimited FlowMessages, with or without newline separators) through the
``goflow2`` reader: framing by the chain walk, then the codec. Seeds are flowscope's own encodings (the
third-party data holds GoFlow2's .proto, not messages)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np

from flowscope.demo.traffic import synthetic_flows
from flowscope.kafka import goflow2
from fuzz.harness import Scratch
from fuzz.targets._files import read_through

MAX_LEN = 1 << 15
_SCRATCH = Scratch("input.bin")


def seeds() -> Iterator[bytes]:
    table = next(synthetic_flows(24, end=datetime(2024, 5, 1, tzinfo=UTC), hosts=8, servers=8))
    data, ends = goflow2.encode(table)
    raw = data.tobytes()
    starts = np.r_[0, ends[:-1]].tolist()
    for separator in (b"", b"\n"):
        yield b"".join(raw[a:b] + separator for a, b in zip(starts, ends.tolist(), strict=True))


def one_input(data: bytes) -> None:
    read_through("goflow2", _SCRATCH.write(data))
