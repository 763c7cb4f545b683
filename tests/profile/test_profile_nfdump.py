"""The profile's own nfdump extraction (straight from the records' bytes) against the flow-table path."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.conftest import shared_data

from flowscope.diagnostics import Skips
from flowscope.nfdump.options import RecordSelection
from flowscope.nfdump.reader import NfdumpSource
from flowscope.profile import nfdump
from flowscope.profile import records as extract

FILES = ["google_ssl_lz4", "google_ssl_uncompressed", "ipfix_mixed", "ipfix_mixed_lzo", "nfv5_mixed", "nfv5_mixed_lz4"]
SELECTIONS: list[dict[str, Any]] = [{}, {"drop_arp": True}, {"max_records": 7}, {"max_records": 3, "drop_arp": True}]
FIELDS = ("start", "duration", "key", "swap", "ipv6", "proto", "port_a", "port_b", "packets", "bytes")
FIELDS += ("packets_rev", "bytes_rev")


def through_tables(paths: list[Path], selection: dict[str, Any]) -> tuple[extract.Records, Skips]:
    source = NfdumpSource(paths, RecordSelection(**selection), columns=extract.PROFILE_COLUMNS)
    skips = Skips()
    parts = [extract.from_batch(table, skips, exact_start=True) for table in source]
    skips.merge(source.skips)
    return extract.concat([p for p in parts if p is not None]), skips


def direct(paths: list[Path], selection: dict[str, Any]) -> tuple[extract.Records, Skips]:
    source = NfdumpSource(paths, RecordSelection(**selection), columns=extract.PROFILE_COLUMNS)
    batches = nfdump.batches(source)
    assert batches is not None
    skips = Skips()
    parts = [batch.records(skips) for batch in batches]
    skips.merge(source.skips)
    return extract.concat([p for p in parts if p is not None]), skips


def assert_same(paths: list[Path], selection: dict[str, Any]) -> extract.Records:
    expected, expected_skips = through_tables(paths, selection)
    got, skips = direct(paths, selection)
    for name in FIELDS:
        assert np.array_equal(getattr(got, name), getattr(expected, name)), name
    assert skips.counts == expected_skips.counts
    return got


@pytest.mark.parametrize("selection", SELECTIONS)
@pytest.mark.parametrize("name", FILES)
def test_same_columns_as_the_flow_table_path(name: str, selection: dict[str, Any]) -> None:
    assert_same([shared_data("nfcapd", f"{name}.nfcapd")], selection)


def test_several_files_in_order() -> None:
    paths = [shared_data("nfcapd", f"{name}.nfcapd") for name in ("ipfix_mixed", "nfv5_mixed", "google_ssl_lz4")]
    for selection in SELECTIONS:
        assert_same(paths, selection)


def test_selections_on_decoded_columns_use_the_table_path() -> None:
    path = shared_data("nfcapd", "nfv5_mixed.nfcapd")
    assert nfdump.batches(NfdumpSource([path], RecordSelection(in_if=3))) is None
    assert nfdump.batches(NfdumpSource([path], RecordSelection(exporter="127.0.0.1"))) is None


def _record(first: int, last: int, src: str | None, dst: str | None, packets: int, out_packets: int | None) -> bytes:
    """One V3 record (nfdump's nfxV3.h): EXgenericFlow, then the addresses' element (none, IPv4 or IPv6), then
    EXcntFlow when ``out_packets`` is given."""
    counters = (packets, packets * 100, 1000, 53, 17, 0, 0, 0)  # packets, bytes, ports, UDP, flags, tos
    elements = [struct.pack("<HHQQQQQHHBBBB", 1, 52, first, last, last, *counters)]
    if src is not None and dst is not None:
        a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        if a.version == 4:
            elements.append(struct.pack("<HHII", 2, 12, int(a), int(b)))
        else:  # two host-order 64-bit words per address
            words = [int(x) >> 64 for x in (a, b)], [int(x) & (2**64 - 1) for x in (a, b)]
            elements.append(struct.pack("<HHQQQQ", 3, 36, words[0][0], words[1][0], words[0][1], words[1][1]))
    if out_packets is not None:
        elements.append(struct.pack("<HHQQQ", 5, 28, 0, out_packets, out_packets * 50))
    body = b"".join(elements)
    return struct.pack("<HHHBBHBB", 11, 12 + len(body), len(elements), 0, 0, 0, 0, 9) + body


def test_mixed_layouts_keep_file_order_and_count_unusable_records(tmp_path: Path) -> None:
    """IPv4 and IPv6 records interleaved (two layouts, each several runs), with and without reverse counters,
    records without addresses and with unknown times (0): the same columns as the table path, in file order."""
    ms = 1_700_000_000_000
    rows = [
        (ms, ms + 1_234, "10.0.0.1", "10.0.0.2", 3, None),
        (ms + 5, ms + 7, "2001:db8::2", "2001:db8::1", 4, None),
        (ms + 6, ms + 9, "2001:db8::2", "2001:db8::1", 5, None),
        (ms + 1, 0, "10.0.0.3", "10.0.0.4", 1, None),
        (ms + 2, ms + 3, None, None, 1, None),
        (ms + 3, ms + 999, "10.0.0.2", "10.0.0.1", 6, 2),
        (ms + 4, ms + 4, "::ffff:10.0.0.9", "10.0.0.1", 7, None),
        (0, ms, "2001:db8::2", "2001:db8::1", 1, 9),
        (ms + 8, ms + 100, "2001:db8::3", "10.0.0.1", 8, 9),
    ]
    body = b"".join(_record(*row) for row in rows)
    header = struct.pack("<HHIqBBHIqII", 0xA50C, 2, 0x1070100, 1_700_000_000, 0, 0, 0, 0, 0, 0, 1)
    path = tmp_path / "nfcapd.mixed"
    path.write_bytes(header + struct.pack("<IIHH", len(rows), len(body), 3, 0) + body)
    for selection in SELECTIONS:
        assert_same([path], selection)
    got, skips = direct([path], {})
    assert got.start.tolist() == [ms, ms + 5, ms + 6, ms + 3, ms + 4, ms + 8]
    assert got.packets_rev.tolist() == [0, 0, 0, 2, 0, 9]
    assert skips.total == 3
    _, skips = direct([path], {"drop_arp": True})
    assert skips.total == 2
