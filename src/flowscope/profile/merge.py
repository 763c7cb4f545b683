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

import itertools
from dataclasses import dataclass

import numpy as np

from flowscope.errors import FlowscopeError
from flowscope.profile import parallel
from flowscope.profile.records import Records, join_columns, mix64

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


_FOLD = np.uint64(0x94D049BB133111EB)


def key_order(records: Records) -> tuple[np.ndarray, np.ndarray]:
    """Records ordered by key, input order kept within a key; and where each key's records begin.

    One plain (vectorised, unstable) sort of 64-bit words made of a mix of the 128-bit key in the
    high bits and the record's index in the low bits: the words are distinct, so equal keys come
    out together and in input order. Keys whose mixes share the high bits can interleave; that is
    detected and just those groups are sorted again on all 128 bits.
    """
    assert records.key is not None, "keys are ordered before they are replaced by ids"
    high, low = records.key[:, 0], records.key[:, 1]
    n = len(high)
    bits = max((n - 1).bit_length(), 1)
    index_mask = np.uint64((1 << bits) - 1)
    tagged = mix64(low)
    tagged ^= high
    tagged *= _FOLD  # one multiply-xorshift round folds the high word in (in place: one array less than mix64)
    tagged ^= tagged >> np.uint64(29)
    tagged &= ~index_mask
    tagged |= np.arange(n, dtype=np.uint64)
    _sort(tagged)
    order = (tagged & index_mask).view(np.int64)
    tagged >>= np.uint64(bits)
    same_prefix = tagged[1:] == tagged[:-1]
    del tagged
    same_key = _same_as_previous(high, low, order)
    clash = same_prefix & ~same_key
    if clash.any():  # at 10 M records, always (a few of ~5 M keys share their 40 prefix bits)
        moved = _sort_clashing_groups(order, same_prefix, clash, high, low)
        # only around the moved records can the answer change: 0.43 s of one core for all 10 M before
        pairs = np.union1d(moved - 1, moved)
        pairs = pairs[(pairs >= 0) & (pairs < n - 1)]
        first, second = order[pairs], order[pairs + 1]
        same_key[pairs] = (high[first] == high[second]) & (low[first] == low[second])
    key_first = np.ones(n, bool)
    key_first[1:] = ~same_key
    return order, key_first


PARALLEL_SORT_MIN = 1 << 20


def _sort(values: np.ndarray) -> None:
    """Sort in place: a slice on each thread, then one pass that merges the sorted slices (numpy's stable sort of
    64-bit words is timsort, which finds the runs and merges them in linear time).

    10 M random words, 2 cores: 0.76-0.95 s as one sort, 0.58 s for the two halves on a thread each and
    0.06-0.11 s for the merge. Whole ``flowscope -q profile`` processes (with the two gathers of
    ``_same_as_previous`` on a thread each), 10 M nfcapd records LZ4, alternated, median of 7, load 1.5-1.6:
    hostile 5.06 -> 4.62 s wall (7.32 -> 7.24 CPU s), realistic 4.96 -> 4.44 s (7.26 -> 7.01), peak RSS 763 -> 801
    MiB (both gathered words held at once). Not kept: each thread also mixing its slice's keys before sorting it
    (median of 7, load 1.3-1.6: 4.31 -> 4.28 s hostile LZ4, 4.24 -> 4.29 s realistic uncompressed, +0.1 CPU s,
    +38 MiB).
    """
    if parallel.THREADS == 1 or len(values) < PARALLEL_SORT_MIN:
        values.sort()
        return
    bounds = np.linspace(0, len(values), parallel.THREADS + 1).astype(np.int64).tolist()
    parallel.each(np.ndarray.sort, [values[a:b] for a, b in itertools.pairwise(bounds)])
    values.sort(kind="stable")


def _sort_clashing_groups(
    order: np.ndarray, same_prefix: np.ndarray, clash: np.ndarray, high: np.ndarray, low: np.ndarray
) -> np.ndarray:
    """Reorder (in ``order``) the runs of equal sort prefixes holding several keys by (key, input order); returns
    the positions reordered."""
    group = np.zeros(len(order), np.int64)
    np.cumsum(~same_prefix, out=group[1:])
    bad = np.zeros(int(group[-1]) + 1, bool)
    bad[group[1:][clash]] = True
    idx = np.flatnonzero(bad[group])
    rows = order[idx]
    order[idx] = rows[np.lexsort((rows, low[rows], high[rows], group[idx]))]
    return idx


def _same_as_previous(high: np.ndarray, low: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Whether each record in ``order`` (but the first) has the key of the one before (one gathered word at a time)."""
    high_sorted, low_sorted = parallel.each(lambda words: words[order], [high, low])  # random reads: a thread each
    same = high_sorted[1:] == high_sorted[:-1]
    same &= low_sorted[1:] == low_sorted[:-1]
    return same


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
class _Keyed:
    """Records ordered by (key, input order): the columns the decisions need."""

    start: np.ndarray
    end: np.ndarray
    swap: np.ndarray
    packets: np.ndarray
    packets_rev: np.ndarray
    key_first: np.ndarray

    def take(self, index: np.ndarray | slice) -> _Keyed:
        return _Keyed(
            *(getattr(self, f)[index] for f in ("start", "end", "swap", "packets", "packets_rev", "key_first"))
        )


def _keyed(records: Records, key_first: np.ndarray, part: slice = slice(None)) -> _Keyed:
    """The decision columns of records in key order (``part`` of them: ends are computed per part)."""
    start = records.start[part]
    end = start + records.duration[part]
    return _Keyed(start, end, records.swap[part], records.packets[part], records.packets_rev[part], key_first[part])


def _decide(s: _Keyed, is_start: np.ndarray, timeouts: Timeouts) -> np.ndarray:
    """Segment starts implied by ``is_start``: a record starts one unless ft-profiler would merge it."""
    if is_start.all():  # the first guess: every record is its own flow
        seg_swap, flow_start, flow_end, flow_rev = s.swap, s.start, s.end, s.packets_rev
    else:
        segment = np.cumsum(is_start) - 1
        first = np.flatnonzero(is_start)[segment]
        seg_swap = s.swap[first]
        flow_start = _segmented_cum(s.start, segment, "min")
        flow_end = _segmented_cum(s.end, segment, "max")
        rev_packets = np.where(s.swap == seg_swap, s.packets_rev, s.packets).astype(np.int64)
        rev_total = np.cumsum(rev_packets)
        flow_rev = rev_total - (rev_total[first] - rev_packets[first])
    # the cached flow record i meets is the segment of record i - 1, up to that record
    prev_start, prev_end, prev_rev, prev_swap = flow_start[:-1], flow_end[:-1], flow_rev[:-1], seg_swap[:-1]
    start, end, swap, packets = s.start[1:], s.end[1:], s.swap[1:], s.packets[1:]
    it, at = timeouts.inactive_ms, timeouts.active_ms
    apart = (prev_end + it < start) | (end + it < prev_start)
    reverse = (prev_rev == 0) & (swap != prev_swap) & ~apart
    single = (packets == 1) & (np.abs(start - prev_end) < it)
    extension = (prev_end - prev_start >= at - it) & ~(prev_end + it < start)
    starts = s.key_first.copy()
    starts[1:] |= ~(reverse | single | extension)
    return starts


MAX_ROUNDS = 8


def _converge(s: _Keyed, timeouts: Timeouts, forced: np.ndarray | None = None) -> np.ndarray:
    """The fixed point of ``_decide``, recomputing only keys whose boundaries still move.

    The first guess is "every record alone", which is already right for most keys. A key still
    moving after MAX_ROUNDS rounds (long chains where each merge changes the next decision, e.g.
    thousands of periodic records of one key) is finished by ``_sequential``, so the work stays
    linear in the input whatever its shape.
    """
    base = s.key_first if forced is None else s.key_first | forced
    is_start = np.ones(len(base), bool)
    key_starts = np.flatnonzero(s.key_first)
    sizes = np.diff(np.append(key_starts, len(s.key_first)))
    active = np.repeat(sizes > 1, sizes)  # keys with one record are settled
    for _ in range(MAX_ROUNDS):
        if not active.any():
            return is_start
        idx = np.flatnonzero(active)
        sub = s.take(idx)
        decided = _decide(sub, is_start[idx], timeouts) | base[idx]
        changed = decided != is_start[idx]
        is_start[idx] = decided
        # A decision is right when every earlier boundary of its key was: so a key whose first
        # change is at its last record is settled, and one with changes before that stays active.
        changed[:-1] &= ~sub.key_first[1:]
        changed[-1] = False
        sub_key = np.cumsum(sub.key_first) - 1
        key_changed = np.zeros(int(sub_key[-1]) + 1, bool)
        key_changed[sub_key[changed]] = True
        active[idx] = key_changed[sub_key]
    idx = np.flatnonzero(active)
    if len(idx):
        is_start[idx] = _sequential(s.take(idx), base[idx], timeouts)
    return is_start


def _sequential(s: _Keyed, base: np.ndarray, timeouts: Timeouts) -> np.ndarray:
    """ft-profiler's decisions one record at a time, for the few keys the rounds do not settle."""
    it, at = timeouts.inactive_ms, timeouts.active_ms
    starts = base.copy()
    flow_start = flow_end = flow_rev = 0
    flow_swap = False
    columns = (s.start.tolist(), s.end.tolist(), s.swap.tolist(), s.packets.tolist(), s.packets_rev.tolist())
    for i, (start, end, swap, packets, packets_rev) in enumerate(zip(*columns, strict=True)):
        if not starts[i]:
            apart = flow_end + it < start or end + it < flow_start
            merged = (
                (flow_rev == 0 and swap != flow_swap and not apart)
                or (packets == 1 and abs(start - flow_end) < it)
                or (flow_end - flow_start >= at - it and not flow_end + it < start)
            )
            if merged:
                flow_start, flow_end = min(flow_start, start), max(flow_end, end)
                flow_rev += packets_rev if swap == flow_swap else packets
                continue
            starts[i] = True
        flow_start, flow_end, flow_swap, flow_rev = start, end, swap, packets_rev
    return starts


def _evictions(s: _Keyed, order: np.ndarray, timeouts: Timeouts, limit: int) -> np.ndarray:
    """Segment starts including the cuts ft-profiler's full cache makes.

    ft-profiler checks the limit only when a record inserts a key that is not cached;
    at that moment it writes out every cached flow that ended before
    ``max(0, latest end seen) - 1.5 * active timeout``, and the key's next record
    starts a new flow. Each such moment is replayed exactly here; only the keys it cuts
    are recomputed (this path is for inputs with more distinct keys than the cache holds).
    """
    n = len(order)
    forced = np.zeros(n, bool)
    rank = np.empty(n, np.int64)  # input index -> sorted position
    rank[order] = np.arange(n)
    key_of = np.cumsum(s.key_first) - 1
    n_keys = int(key_of[-1]) + 1
    cached = np.zeros(n_keys, bool)
    last_seen = np.full(n_keys, -1, np.int64)  # each key's latest sorted position read so far
    count = 0
    latest_end = np.maximum.accumulate(np.maximum(s.end[rank], 0))
    is_start = _converge(s, timeouts)
    flow_end = _segmented_cum(s.end, np.cumsum(is_start) - 1, "max")  # each record's flow end so far
    t = 0
    while t < n:
        inserts = (s.key_first | forced)[rank[t:]]
        running = count + np.cumsum(inserts)
        hits = np.flatnonzero(inserts & (running >= limit))
        if not len(hits):
            break
        event = t + int(hits[0])
        window = rank[t : event + 1]
        cached[key_of[window]] = True
        np.maximum.at(last_seen, key_of[window], window)
        count = int(running[hits[0]])
        # each cached key's flow as it stands at the event: the segment of its latest record so far
        keys = np.flatnonzero(cached)
        last = last_seen[keys]
        evicted = flow_end[last] < latest_end[event] - 1.5 * timeouts.active_ms
        if not evicted.any():
            raise FlowscopeError(
                "flow cache is full and cannot hold all active flows: raise -m "
                f"(it holds {limit:,} flows at {FLOW_BYTES} bytes each)"
            )
        cached[keys[evicted]] = False
        count -= int(evicted.sum())
        following = last[evicted] + 1
        following = following[following < n]
        following = following[~s.key_first[following]]
        if len(following):
            forced[following] = True
            cut = np.zeros(n_keys, bool)
            cut[key_of[following]] = True
            idx = np.flatnonzero(cut[key_of])
            sub = s.take(idx)
            is_start[idx] = _converge(sub, timeouts, forced[idx])
            flow_end[idx] = _segmented_cum(sub.end, np.cumsum(is_start[idx]) - 1, "max")
        t = event + 1
    return is_start


CHUNK_RECORDS = 262_144


def _chunks(key_first: np.ndarray) -> list[tuple[int, int]]:
    """Key-aligned slices of about CHUNK_RECORDS records (keys are independent while the cache has room)."""
    key_starts = np.flatnonzero(key_first)
    wanted = np.searchsorted(key_starts, np.arange(0, len(key_first), CHUNK_RECORDS))
    cuts = np.unique(key_starts[np.minimum(wanted, len(key_starts) - 1)])
    return list(itertools.pairwise([*cuts.tolist(), len(key_first)]))


def merge(records: Records, timeouts: Timeouts, limit: int) -> Profile:
    """All biflows ft-profiler would write for ``records`` (in input order), as a set.

    ``records`` is consumed: reordered in place, and its columns released before the result is joined.
    """
    n = len(records)
    if n == 0:
        return _aggregate(records, np.zeros(0, bool))
    order, key_first = key_order(records)
    records.key = None  # sorted: the fingerprints have done their job
    n_keys = int(key_first.sum())
    records.permute(order)
    if n_keys >= limit:
        return _aggregate(records, _evictions(_keyed(records, key_first), order, timeouts, limit))
    del order

    def merged(bounds: tuple[int, int]) -> Profile:
        chunk = slice(*bounds)
        return _aggregate(records, _converge(_keyed(records, key_first, chunk), timeouts), chunk)

    parts = parallel.each(merged, _chunks(key_first))  # chunks hold whole keys: independent
    records.release()
    return Profile(**join_columns(parts, _PROFILE_FIELDS))


_PROFILE_FIELDS = (
    "start", "end", "ipv6", "proto", "src_port", "dst_port", "packets", "bytes", "packets_rev", "bytes_rev",
)  # fmt: skip


def _aggregate(records: Records, is_start: np.ndarray, chunk: slice = slice(None)) -> Profile:
    """One row per segment: min start, max end, counters added to the direction of the segment's first record."""
    firsts = np.flatnonzero(is_start)
    if not len(firsts):
        empty = np.empty(0, np.int64)
        return Profile(*(empty for _ in _PROFILE_FIELDS))
    swap = records.swap[chunk]
    same = swap == np.repeat(swap[firsts], np.diff(np.append(firsts, len(swap))))
    start = records.start[chunk]

    def total(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.where(same, forward[chunk], backward[chunk]).astype(np.uint64), firsts)

    head_swap = swap[firsts]
    port_a, port_b = records.port_a[chunk][firsts], records.port_b[chunk][firsts]
    return Profile(
        start=np.minimum.reduceat(start, firsts),
        end=np.maximum.reduceat(start + records.duration[chunk], firsts),
        ipv6=records.ipv6[chunk][firsts],
        proto=records.proto[chunk][firsts],
        src_port=np.where(head_swap, port_b, port_a),
        dst_port=np.where(head_swap, port_a, port_b),
        packets=total(records.packets, records.packets_rev),
        bytes=total(records.bytes, records.bytes_rev),
        packets_rev=total(records.packets_rev, records.packets),
        bytes_rev=total(records.bytes_rev, records.bytes),
    )
