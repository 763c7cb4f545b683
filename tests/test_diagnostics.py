"""The skip summary says what was lost and what was only flagged."""

from __future__ import annotations

from flowscope.diagnostics import Skips


def test_units_kept_are_flagged_and_units_dropped_are_skipped():
    skips = Skips(unit="packets")
    skips.add("not an IP packet", 3)
    skips.add("transport header cut by snaplen (packet kept, ports/flags missing)", 2)
    skips.add("sFlow samples with a record list cut short (earlier records kept)", 1, example="a.pcap")
    assert skips.lines() == [
        "3 packets skipped: not an IP packet",
        "2 packets flagged: transport header cut by snaplen (packet kept, ports/flags missing)",
        "1 packets skipped: sFlow samples with a record list cut short (earlier records kept) (e.g. a.pcap)",
    ]


def test_merged_counts_add_up_and_keep_the_first_example():
    one, two = Skips(), Skips()
    one.add("bad row", 1, example="line 3")
    two.add("bad row", 2, example="line 9")
    one.merge(two)
    assert one.counts["bad row"] == 3 and one.examples["bad row"] == "line 3" and one.total == 3
