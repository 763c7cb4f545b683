"""A straightforward, record-at-a-time Python model of ft-profiler (CESNET FlowTest tools/ft-profiler).

ft-profiler is not installable here (not on PyPI), so this model is the oracle for the
vectorised merge and the benchmark's peer. It follows ft-profiler's documented
behaviour step by step: its CSV reader's arithmetic, its direction-free key built from
the textual addresses, its merge rules, its dict cache with the 1.5 x active timeout
clean-up when full, and its row format. Clearly a reference, not flowscope's code path.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterable, Iterator
from pathlib import Path

HEADER = "START_TIME,END_TIME,L3_PROTO,L4_PROTO,SRC_PORT,DST_PORT,PACKETS,BYTES,PACKETS_REV,BYTES_REV"


class CacheFull(Exception):
    pass


class Flow:
    __slots__ = ("bytes", "end", "key", "l3", "packets", "rev_bytes", "rev_packets", "start", "swap")

    def __init__(
        self, start: int, end: int, proto: int, src: str, dst: str, sport: int, dport: int, packets: int, octets: int
    ) -> None:
        self.start, self.end, self.packets, self.bytes = start, end, packets, octets
        if proto not in (6, 17):
            sport = dport = 0
        self.swap = src > dst
        self.key = (dst, src, dport, sport, proto) if self.swap else (src, dst, sport, dport, proto)
        self.l3 = 6 if ":" in src else 4
        self.rev_packets = self.rev_bytes = 0

    def row(self) -> str:
        sport, dport = (self.key[3], self.key[2]) if self.swap else (self.key[2], self.key[3])
        return (
            f"{self.start},{self.end},{self.l3},{self.key[4]},{sport},{dport},"
            f"{self.packets},{self.bytes},{self.rev_packets},{self.rev_bytes}"
        )

    def absorb(self, other: Flow) -> None:
        self.start = min(self.start, other.start)
        self.end = max(self.end, other.end)
        if self.swap == other.swap:
            self.packets += other.packets
            self.bytes += other.bytes
        else:
            self.rev_packets += other.packets
            self.rev_bytes += other.bytes

    def try_update(self, other: Flow, inactive: int, active: int) -> bool:
        if (
            self.rev_packets == 0
            and self.swap != other.swap
            and not (self.end + inactive < other.start or other.end + inactive < self.start)
        ):
            self.absorb(other)
            return True
        if other.packets == 1 and abs(other.start - self.end) < inactive:
            self.absorb(other)
            return True
        if self.end - self.start < active - inactive:
            return False
        if self.end + inactive < other.start:
            return False
        self.absorb(other)
        return True


def profile(flows: Iterable[Flow], inactive: int, active: int, limit: int) -> Iterator[Flow]:
    cache: dict[tuple, Flow] = {}
    now = 0
    for flow in flows:
        now = max(now, flow.end)
        cached = cache.get(flow.key)
        if cached is not None:
            if not cached.try_update(flow, inactive, active):
                cache[flow.key] = flow
                yield cached
            continue
        cache[flow.key] = flow
        if len(cache) >= limit:
            threshold = now - 1.5 * active
            old = [k for k, v in cache.items() if v.end < threshold]
            if not old:
                raise CacheFull("flow cache full")
            for k in old:
                yield cache.pop(k)
    yield from cache.values()


def read_csv(path: Path) -> Iterator[Flow]:
    """ft-profiler's csvfile reader: '#' lines skipped, float seconds, times relative to the first record."""
    zero = None
    with open(path, newline="", encoding="ascii") as handle:
        for row in csv.DictReader(line for line in handle if line[0] != "#"):
            start = int(float(row["START_TIME"]) * 1000)
            duration = int(float(row["DURATION"]) * 1000)
            if not zero:
                zero = start
            yield Flow(
                start - zero,
                start + duration - zero,
                int(row["PROTO"]),
                row["SRC_IP"],
                row["DST_IP"],
                int(row["SRC_PORT"]),
                int(row["DST_PORT"]),
                int(row["PACKETS"]),
                int(row["BYTES"]),
            )


def write(flows: Iterable[Flow], path: Path) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    count = 0
    with opener(path, "wt", encoding="ascii") as out:
        out.write(HEADER + "\n")
        for flow in flows:
            out.write(flow.row() + "\n")
            count += 1
    return count
