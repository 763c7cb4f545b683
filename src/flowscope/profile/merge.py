"""Biflow merging with ft-profiler's exact semantics, without a Python loop per record.

ft-profiler feeds records one by one through a cache keyed by the direction-free
5-tuple; whether a record merges into the cached flow depends on that flow's state
(min start, max end, whether it has reverse packets, its direction). Keys never
interact (until the cache is full), so the records of one key form a sequence that
splits into segments: a segment is one written flow.

Given a guess of the segment starts, every record's decision can be computed at once
(segmented cumulative min/max/sum give each record the state of the flow it meets).
The first record of a key always starts a segment, and a decision is right whenever
all earlier boundaries of its key are right, so recomputing the boundaries from the
decisions is a fixed-point iteration that settles at least one more boundary per
round and in practice converges in a handful of rounds (only unsettled keys are
recomputed). The cache bound is handled exactly at the records where ft-profiler's
cache reaches its limit (see ``_evictions``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope import addresses
from flowscope.errors import FlowscopeError
from flowscope.profile.records import Records

FLOW_BYTES = 256  # ft-profiler's per-flow memory estimate: -m MiB holds MiB * 2**20 / 256 flows


@dataclass(frozen=True)
class Timeouts:
    active_ms: int
    inactive_ms: int


@dataclass
class Profile:
    """The merged biflows, one row each (times still absolute ms)."""

    start: np.ndarray
    end: np.ndarray
    ipv6: np.ndarray
    proto: np.ndarray
    src_port: np.ndarray
    dst_port: np.ndarray
    packets: np.ndarray
    bytes: np.ndarray
    packets_rev: np.ndarray
    bytes_rev: np.ndarray

    def __len__(self) -> int:
        return len(self.start)


def key_ids(records: Records) -> np.ndarray:
    """One dense id per direction-free key (addresses, ports, protocol), by hashing a 40-byte row per record."""
    n = len(records)
    rows = np.zeros((n, 40), np.uint8)
    rows[:, :16] = addresses.to_matrix(records.addr_a)
    rows[:, 16:32] = addresses.to_matrix(records.addr_b)
    rows[:, 32:34] = records.port_a.astype("<u2").view(np.uint8).reshape(-1, 2)
    rows[:, 34:36] = records.port_b.astype("<u2").view(np.uint8).reshape(-1, 2)
    rows[:, 36] = records.proto
    keys = pa.Array.from_buffers(pa.binary(40), n, [None, pa.py_buffer(rows)])
    return pc.dictionary_encode(keys).indices.to_numpy().astype(np.int64)


def _segmented_cum(values: np.ndarray, segment: np.ndarray, op: str) -> np.ndarray:
    """Cumulative min or max of ``values`` restarting at each segment (``segment`` ids ascending)."""
    lo = int(values.min(initial=0))
    span = int(values.max(initial=0)) - lo + 1
    if span * (int(segment[-1]) + 1 if len(segment) else 1) >= 2**62:
        ranks, inverse = np.unique(values, return_inverse=True)
        return ranks[_segmented_cum(inverse.astype(np.int64), segment, op)]
    shifted = values - lo
    if op == "min":
        return np.minimum.accumulate(shifted - segment * span) + segment * span + lo
    return np.maximum.accumulate(shifted + segment * span) - segment * span + lo


@dataclass
class _Sorted:
    """Records ordered by (key, input order); the arrays the decisions need."""

    start: np.ndarray
    end: np.ndarray
    swap: np.ndarray
    packets: np.ndarray
    packets_rev: np.ndarray
    key_first: np.ndarray


def _decide(s: _Sorted, is_start: np.ndarray, timeouts: Timeouts) -> np.ndarray:
    """Segment starts implied by ``is_start``: a record starts one unless ft-profiler would merge it."""
    segment = np.cumsum(is_start) - 1
    first = np.flatnonzero(is_start)[segment]
    seg_swap = s.swap[first]
    flow_start = _segmented_cum(s.start, segment, "min")
    flow_end = _segmented_cum(s.end, segment, "max")
    rev_packets = np.where(s.swap == seg_swap, s.packets_rev, s.packets).astype(np.int64)
    rev_total = np.cumsum(rev_packets)
    flow_rev = rev_total - (rev_total[first] - rev_packets[first])
    # the cached flow a record meets is the segment of the previous record, up to that record
    prev_start, prev_end = np.roll(flow_start, 1), np.roll(flow_end, 1)
    prev_rev, prev_swap = np.roll(flow_rev, 1), np.roll(seg_swap, 1)
    it, at = timeouts.inactive_ms, timeouts.active_ms
    apart = (prev_end + it < s.start) | (s.end + it < prev_start)
    reverse = (prev_rev == 0) & (s.swap != prev_swap) & ~apart
    single = (s.packets == 1) & (np.abs(s.start - prev_end) < it)
    extension = (prev_end - prev_start >= at - it) & ~(prev_end + it < s.start)
    return s.key_first | ~(reverse | single | extension)


def _key_bounds(key_first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = np.flatnonzero(key_first)
    return starts, np.append(starts[1:], len(key_first))


def _converge(s: _Sorted, timeouts: Timeouts, forced: np.ndarray | None = None) -> np.ndarray:
    """The fixed point of ``_decide``, recomputing only keys whose boundaries still move."""
    base = s.key_first if forced is None else s.key_first | forced
    is_start = base.copy()
    key_starts, key_ends = _key_bounds(s.key_first)
    sizes = key_ends - key_starts
    active = np.repeat(sizes > 1, sizes)  # keys with one record are settled
    while active.any():
        idx = np.flatnonzero(active)
        sub = _Sorted(s.start[idx], s.end[idx], s.swap[idx], s.packets[idx], s.packets_rev[idx], s.key_first[idx])
        decided = _decide(sub, is_start[idx], timeouts) | base[idx]
        changed = decided != is_start[idx]
        is_start[idx] = decided
        # a key stays active while any of its boundaries changed this round
        sub_key = np.cumsum(sub.key_first) - 1
        key_changed = np.zeros(int(sub_key[-1]) + 1, bool)
        key_changed[sub_key[changed]] = True
        active[idx] = key_changed[sub_key]
    return is_start


def _evictions(s: _Sorted, order: np.ndarray, timeouts: Timeouts, limit: int) -> np.ndarray:
    """Segment starts including the cuts ft-profiler's full cache makes.

    ft-profiler checks the limit only when a record inserts a key that is not cached;
    at that moment it writes out every cached flow that ended before
    ``max(0, latest end seen) - 1.5 * active timeout``, and the key's next record
    starts a new flow. Each such moment is replayed exactly here.
    """
    n = len(order)
    forced = np.zeros(n, bool)
    rank = np.empty(n, np.int64)  # input index -> sorted position
    rank[order] = np.arange(n)
    key_of = np.cumsum(s.key_first) - 1
    cached = np.zeros(int(key_of[-1]) + 1, bool) if n else np.zeros(0, bool)
    count = 0
    latest_end = np.maximum.accumulate(np.maximum(s.end[rank], 0)) if n else s.end
    t = 0
    is_start = _converge(s, timeouts)
    while t < n:
        inserts = (s.key_first | forced)[rank[t:]]
        running = count + np.cumsum(inserts)
        hits = np.flatnonzero(inserts & (running >= limit))
        if not len(hits):
            break
        event = t + int(hits[0])
        window = rank[t : event + 1]
        cached[key_of[window]] = True
        count = int(running[hits[0]])
        # each cached key's flow as it stands at the event: the segment of its latest record so far
        in_window = np.zeros(n, bool)
        in_window[rank[: event + 1]] = True
        keys = np.flatnonzero(cached)
        last = _last_position_per_key(key_of, in_window, len(cached))[keys]
        segment = np.cumsum(is_start) - 1
        flow_end = _segmented_cum(s.end, segment, "max")[last]
        threshold = latest_end[event] - 1.5 * timeouts.active_ms
        evicted = flow_end < threshold
        if not evicted.any():
            raise FlowscopeError(
                "flow cache is full and cannot hold all active flows: raise -m "
                f"(it holds {limit:,} flows at {FLOW_BYTES} bytes each)"
            )
        cached[keys[evicted]] = False
        count -= int(evicted.sum())
        nxt = last[evicted] + 1
        nxt = nxt[(nxt < n)]
        nxt = nxt[~s.key_first[nxt]]
        forced[nxt] = True
        is_start = _converge(s, timeouts, forced)
        t = event + 1
    return is_start


def _last_position_per_key(key_of: np.ndarray, mask: np.ndarray, n_keys: int) -> np.ndarray:
    """For each key, its last sorted position where ``mask`` holds (-1 if none)."""
    out = np.full(n_keys, -1, np.int64)
    positions = np.flatnonzero(mask)
    out[key_of[positions]] = positions  # positions ascend, so the last write per key wins
    return out


def merge(records: Records, timeouts: Timeouts, limit: int) -> Profile:
    """All biflows ft-profiler would write for ``records`` (in input order), as a set."""
    n = len(records)
    if n == 0:
        empty = np.empty(0, np.int64)
        return Profile(*(empty for _ in range(10)))
    keys = key_ids(records)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    key_first = np.empty(n, bool)
    key_first[0] = True
    key_first[1:] = sorted_keys[1:] != sorted_keys[:-1]
    s = _Sorted(
        records.start[order],
        records.end[order],
        records.swap[order],
        records.packets[order],
        records.packets_rev[order],
        key_first,
    )
    n_keys = int(key_first.sum())
    is_start = _evictions(s, order, timeouts, limit) if n_keys >= limit else _converge(s, timeouts)
    return _aggregate(records, order, s, is_start)


def _aggregate(records: Records, order: np.ndarray, s: _Sorted, is_start: np.ndarray) -> Profile:
    """One row per segment: min start, max end, counters added to the direction of the segment's first record."""
    firsts = np.flatnonzero(is_start)
    segment = np.cumsum(is_start) - 1
    same = s.swap == s.swap[firsts][segment]
    packets = records.packets[order]
    byte_counts = records.bytes[order]
    packets_rev = records.packets_rev[order]
    bytes_rev = records.bytes_rev[order]
    first_input = order[firsts]
    swap = records.swap[first_input]
    return Profile(
        start=np.minimum.reduceat(s.start, firsts),
        end=np.maximum.reduceat(s.end, firsts),
        ipv6=records.ipv6[first_input],
        proto=records.proto[first_input],
        src_port=np.where(swap, records.port_b[first_input], records.port_a[first_input]),
        dst_port=np.where(swap, records.port_a[first_input], records.port_b[first_input]),
        packets=np.add.reduceat(np.where(same, packets, packets_rev), firsts),
        bytes=np.add.reduceat(np.where(same, byte_counts, bytes_rev), firsts),
        packets_rev=np.add.reduceat(np.where(same, packets_rev, packets), firsts),
        bytes_rev=np.add.reduceat(np.where(same, bytes_rev, byte_counts), firsts),
    )
