"""sFlow v5 datagrams through ``decode_sflow`` (flow and counter samples, sampled headers); it must never raise."""

from __future__ import annotations

from collections.abc import Iterator

from flowscope.collect.sflow import decode_sflow
from fuzz.harness import read_seeds
from fuzz.targets._datagrams import batch_of, recorded

MAX_LEN = 1 << 16


def seeds() -> Iterator[bytes]:
    yield from read_seeds("raw/goflow2/sflow_*.bin")
    yield from recorded("sflow/**/*.pcap", "pcap/tcpdump/*sflow*")


def one_input(data: bytes) -> None:
    decode_sflow(batch_of(data))
