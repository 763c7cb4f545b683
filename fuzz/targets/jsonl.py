"""JSON lines of flows through the ``jsonl`` reader (family from the keys) and each forced family.

The first byte picks the reader. Seeds are flowscope's own JSON lines of synthetic flows and GoFlow2-shaped
lines (the third-party data holds no GoFlow2 JSON output).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime

from flowscope.demo.traffic import synthetic_flows
from flowscope.display import textual
from flowscope.sinks.files import write_jsonl
from fuzz.harness import Scratch
from fuzz.targets._files import read_through

READERS = ("jsonl", "flowscope-json", "goflow2-json")
GOFLOW2_LINE = (
    b'{"type":"IPFIX","time_received_ns":1714521600123456789,"sequence_num":7,"sampling_rate":100,'
    b'"sampler_address":"192.0.2.1","time_flow_start_ns":1714521590000000000,"bytes":1500,"packets":3,'
    b'"src_addr":"2001:db8::1","dst_addr":"10.0.0.1","etype":"IPv6","proto":"TCP","src_port":443,'
    b'"dst_port":51000,"src_mac":"00:11:22:33:44:55","bgp_communities":[65000],"as_path":[]}\n'
)
MAX_LEN = 1 << 15
_SCRATCH = Scratch("input.jsonl")


def seeds() -> Iterator[bytes]:
    table = next(synthetic_flows(8, end=datetime(2024, 5, 1, tzinfo=UTC), hosts=8, servers=8))
    own = io.BytesIO()
    write_jsonl(textual(table), own)
    for choice in range(len(READERS)):
        yield bytes([choice]) + own.getvalue()
        yield bytes([choice]) + GOFLOW2_LINE * 3


def one_input(data: bytes) -> None:
    if data:
        read_through(READERS[data[0] % len(READERS)], _SCRATCH.write(data[1:]))
