"""The synthetic capture's address counts: benchmarks raise them for inputs with high address cardinality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flowscope.capture.files import iter_packet_batches
from flowscope.demo.pcap import write_synthetic_pcap
from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError


def distinct_sources(path: Path) -> int:
    batches = list(iter_packet_batches([path], skips=Skips()))
    addresses = np.concatenate([batch.src_addr for batch in batches])
    return int(np.unique(addresses.view("V16")).shape[0])


def test_more_clients_give_more_distinct_addresses(tmp_path: Path) -> None:
    few, many = tmp_path / "few.pcap", tmp_path / "many.pcap"
    write_synthetic_pcap(few, packets=4000, flows=1000, clients=20, servers=10)
    totals = write_synthetic_pcap(many, packets=4000, flows=1000, clients=1 << 24, servers=1 << 17)
    assert totals["packets"] == 4000
    assert distinct_sources(few) <= 2 * (20 + 10) < 1500 < distinct_sources(many)  # each as IPv4 and IPv6


@pytest.mark.parametrize(("clients", "servers"), [(1, 10), ((1 << 24) + 1, 10), (10, (1 << 17) + 1)])
def test_address_counts_out_of_range_are_refused(tmp_path: Path, clients: int, servers: int) -> None:
    with pytest.raises(FlowscopeError):
        write_synthetic_pcap(tmp_path / "x.pcap", packets=100, flows=10, clients=clients, servers=servers)
