"""nfdump records -> the profiler's columns straight from the records' bytes (no flow table in between).

The flow-table reader builds Arrow columns the profile does not keep in that form (16-byte addresses split back
into words, timestamps back into milliseconds, nullable counters filled again); here the same same-layout record
views (``nfdump.records.by_layout``) give the profile's columns directly, with the table path's exact values:
a record is usable when its layout has addresses and EXgenericFlow and both its times are known (nfdump's 0 is
"not known", a null in the table), counters a layout lacks are 0.

Whole ``flowscope -q profile`` processes against the table path (fdd6f1c), alternated, median of 5, 10 M records,
machine shared (load 1.3-1.7): realistic LZ4 7.33 -> 5.96 s wall, 10.27 -> 8.67 CPU s; hostile uncompressed
6.96 -> 5.85 s, 9.05 -> 8.13 CPU s; hostile LZ4 6.06 -> 5.07 s, 8.41 -> 7.35 CPU s; peak RSS the same (763 MiB);
2 M records LZ4 the same wall within the noise (1.38 / 1.32 s -> 1.43 / 1.38 s), CPU 1.86 -> 1.67 s (realistic)
and 1.79 -> 1.50 s (hostile), peak RSS 289 -> 265 MiB and 300 -> 281 MiB. In-process, the decode and
extraction of the 10 M LZ4 records took 1.55 CPU s (0.6 of it decompression and the run walk), against 2.5-3.0 s
for the flow tables and their extraction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from flowscope.diagnostics import Skips
from flowscope.nfdump.reader import NfdumpSource
from flowscope.nfdump.records import LayoutGroup, Part, address_words, by_layout, in_file_order
from flowscope.profile.records import NO_ADDRESS_OR_TIME, Columns, Records, from_columns, milliseconds

_GENERIC = 1  # EXgenericFlow: times, counters, protocol, ports
_COUNTERS_REV = 5  # EXcntFlow: the reverse counters
_NS_PER_MS = 1_000_000


@dataclass
class RecordRuns:
    """Undecoded nfdump records of one batch (``NfdumpSource.record_runs``); ``records`` extracts them."""

    parts: list[Part]
    drop_arp: bool

    def records(self, skips: Skips) -> Records | None:
        return from_parts(self.parts, skips, drop_arp=self.drop_arp)


def batches(source: NfdumpSource) -> Iterator[RecordRuns] | None:
    """The source's records as profile batches, or None when a selection needs the decoded table (exporter,
    input interface): ``--max-records`` and ``--drop-arp`` are applied here."""
    if source.exporter is not None or source.in_if is not None:
        return None
    return (RecordRuns(parts, source.drop_arp) for parts, _state in source.record_runs())


def from_parts(parts: Sequence[Part], skips: Skips, *, drop_arp: bool) -> Records | None:
    """The profiler's columns of the parts' records in file order (``profile.records.from_batch``'s values);
    records without addresses or times are counted skips, those without addresses dropped unseen when
    ``drop_arp`` (the reader's selection)."""
    usable: list[tuple[Columns, np.ndarray]] = []
    for group in by_layout(parts):
        columns = _columns(group, skips, drop_arp=drop_arp)
        if columns is not None:
            usable.append(columns)
    if not usable:
        return None
    order = in_file_order([ordinals for _, ordinals in usable])
    if order is None:
        return from_columns(usable[0][0])
    joined = {name: np.concatenate([getattr(c, name) for c, _ in usable])[order] for name in _NAMES}
    return from_columns(Columns(**joined))


_NAMES = tuple(Columns.__dataclass_fields__)


def _columns(group: LayoutGroup, skips: Skips, *, drop_arp: bool) -> tuple[Columns, np.ndarray] | None:
    """One layout's usable records as columns, and their ordinals."""
    records, layout = group.records, group.layout
    src = address_words(records, layout, "src4", "src6")
    if src is None or _GENERIC not in layout.elements:
        if src is not None or not drop_arp:
            skips.add(NO_ADDRESS_OR_TIME, len(records))
        return None
    dst = address_words(records, layout, "dst4", "dst6")
    assert dst is not None, "the address elements hold both addresses"
    first, last = records["msec_first"], records["msec_last"]
    known = (first != 0) & (last != 0)
    missing = len(known) - int(np.count_nonzero(known))
    if missing:
        skips.add(NO_ADDRESS_OR_TIME, missing)
        if missing == len(known):
            return None

    def kept(values: np.ndarray) -> np.ndarray:
        return values if not missing else values[known]

    start, end = milliseconds(
        kept(first).astype(np.int64) * _NS_PER_MS, kept(last).astype(np.int64) * _NS_PER_MS, exact_start=True
    )
    if _COUNTERS_REV in layout.elements:
        packets_rev, bytes_rev = kept(records["out_packets"]), kept(records["out_bytes"])
    else:
        packets_rev = bytes_rev = np.zeros(len(start), np.uint64)
    columns = Columns(
        start=start,
        end=end,
        src_hi=kept(src[0]),
        src_lo=kept(src[1]),
        dst_hi=kept(dst[0]),
        dst_lo=kept(dst[1]),
        proto=kept(records["proto"]),
        src_port=kept(records["src_port"]),
        dst_port=kept(records["dst_port"]),
        packets=kept(records["in_packets"]),
        bytes=kept(records["in_bytes"]),
        packets_rev=packets_rev,
        bytes_rev=bytes_rev,
    )
    return columns, kept(group.ordinals)
