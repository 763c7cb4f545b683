"""Flow batches -> a profile: extract, merge, make times relative to the first record read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from flowscope.diagnostics import Skips
from flowscope.memory import keep_freed_memory, one_heap
from flowscope.profile import records as extract
from flowscope.profile.merge import FLOW_BYTES, Profile, Timeouts, merge
from flowscope.profile.records import Records
from flowscope.readers.lines import read_ahead


@dataclass(frozen=True)
class Settings:
    active_s: int = 300
    inactive_s: int = 30
    memory_mib: int = 2048

    @property
    def timeouts(self) -> Timeouts:
        return Timeouts(self.active_s * 1000, self.inactive_s * 1000)

    @property
    def cache_flows(self) -> int:
        return self.memory_mib * 1048576 // FLOW_BYTES


class Batch(Protocol):
    """Some input records (a flow table, undecoded nfdump records) that yield the profiler's columns."""

    def records(self, skips: Skips) -> Records | None: ...


def build(batches: Iterable[Batch], settings: Settings, skips: Skips) -> Profile:
    """``batches`` in input order.

    The next batch is read on a second thread while this one extracts the profile's columns from the current one
    (reading 10 M nfcapd records to flow tables was 2.0-3.7 s of one core, extracting them 0.7-1.0 s; undecoded
    nfdump runs (``profile.nfdump``) are 0.6-0.7 s to read and 0.6-0.8 s to extract, so both threads are busy).
    Not kept, measured as whole processes on 10 M nfcapd records (LZ4, alternated, median of 7, load 1.5-1.9,
    2 cores) against this: extracting batches on the pool's threads as well (``parallel.ordered``), hostile 5.25
    -> 5.48 s wall, realistic 5.91 -> 5.88 s, CPU +0.2-0.6 s; with the key mix of ``merge.key_order`` computed
    per batch too, 5.78 and 5.63 s, and per batch alone 5.47 -> 5.56 s (realistic), 5.35 -> 5.60 s (hostile),
    CPU +0.3-0.5 s, RSS +16-80 MiB (the mixed words still have to be joined).
    """
    # The threads share one heap that keeps freed batch-sized blocks (Arrow's too) for the next batch or CSV piece.
    # A/B on a 10 M-record nfcapd file (LZ4, 5 alternated runs each, load 2.6-2.8): peak RSS 971 MiB with the
    # threads alone, 786 with one heap, 766 with both (798 before the threads); CPU within the noise (8.4-9.3 s).
    # At 2 M records the kept blocks show: 230 MiB before the threads, 291 with one heap, 318 with both, which
    # took the least CPU (1.89 s against 2.20 with one heap alone).
    one_heap()  # before the threads start
    keep_freed_memory(arrow=True)
    parts = []
    for batch in read_ahead(iter(batches)):
        part = batch.records(skips)
        if part is not None:
            parts.append(part)
    records = extract.concat(parts)
    del parts
    zero = int(records.start[0]) if len(records) else 0  # ft-profiler: times relative to the first record read
    profile = merge(records, settings.timeouts, settings.cache_flows)
    profile.start -= zero
    profile.end -= zero
    return profile
