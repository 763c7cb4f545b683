"""Kafka message values through each format's decoder (``goflow2``, GoFlow v1 ``goflow``, ``arrow``).

The first byte picks the format, the rest is split into message values. A consumer must never die on a
message: any exception is a crash. Seeds are flowscope's own encodings of synthetic flows (the third-party
data holds GoFlow2's .proto, not messages).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from flowscope.demo.traffic import synthetic_flows
from flowscope.diagnostics import Skips
from flowscope.kafka.formats import FORMATS, to_messages
from fuzz.harness import join_datagrams, split_datagrams

MAX_LEN = 1 << 15
NAMES = tuple(FORMATS)


def seeds() -> Iterator[bytes]:
    table = next(synthetic_flows(12, end=datetime(2024, 5, 1, tzinfo=UTC), hosts=8, servers=8))
    for choice, name in enumerate(NAMES):
        yield bytes([choice]) + join_datagrams(to_messages(table, FORMATS[name], None, per_message=4).values)


def one_input(data: bytes) -> None:
    if data:
        FORMATS[NAMES[data[0] % len(NAMES)]].decode(split_datagrams(data[1:]), Skips())
