"""NetFlow v1/v5/v9 and IPFIX datagrams through ``decode_netflow``, with template state carried across inputs.

The collector's decoder must never raise: any exception here is a crash. The state (templates, held data,
sampling rates) lives as long as the fuzzing process, as it does in ``flowscope collect``, so mutated
templates meet later inputs' data and the held-data and template bounds are exercised.
"""

from __future__ import annotations

from collections.abc import Iterator

from flowscope.collect.dispatch import decode_netflow
from flowscope.collect.state import NetflowState
from fuzz.harness import join_datagrams, read_seeds
from fuzz.targets._datagrams import batch_of, recorded

MAX_LEN = 1 << 16
STATE = NetflowState()
TEMPLATE_THEN_DATA = (
    ("raw/goflow2/nfv9_*_template.bin", "raw/goflow2/nfv9_*_data.bin"),
    ("raw/python-netflow/PACKET_IPFIX_TEMPLATE.bin", "raw/python-netflow/PACKET_IPFIX.bin"),
    ("raw/python-netflow/PACKET_V9_TEMPLATE.bin", "raw/python-netflow/PACKETS_V9_*.bin"),
)


def seeds() -> Iterator[bytes]:
    yield from read_seeds("raw/python-netflow/*.bin", "raw/goflow2/nfv*.bin")
    for template, data in TEMPLATE_THEN_DATA:
        yield join_datagrams([*read_seeds(template), *read_seeds(data)])
    yield from recorded("netflow/**/*.pcap", "netflow/**/*.pcapng")


def one_input(data: bytes) -> None:
    decode_netflow(batch_of(data), STATE)
