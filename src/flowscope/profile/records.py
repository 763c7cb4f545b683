"""Flow batches -> the compact per-record columns the profiler merges (input order kept).

Times become integer milliseconds the way ft-profiler's readers compute them, so the
same input gives the same rows: its nfdump reader takes nfdump's millisecond start
as is, its CSV reader computes ``int(float(START_TIME) * 1000)``; both add
``int(float(duration_seconds) * 1000)`` for the end. Doubles are reproduced exactly
from the microsecond value (an integer below 2**53 divided by 1e6 is the correctly
rounded double of the decimal text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope import addresses
from flowscope.diagnostics import Skips
from flowscope.memory import return_freed_memory
from flowscope.profile import parallel

TCP, UDP = 6, 17
# the flow columns a profile is made of
PROFILE_COLUMNS = (
    "time_flow_start", "time_flow_end", "src_addr", "dst_addr", "proto", "src_port", "dst_port",
    "packets", "bytes", "packets_rev", "bytes_rev",
)  # fmt: skip
_NS_PER_US = 1000


def _float_ms(micros: np.ndarray) -> np.ndarray:
    """``int(float(seconds_text) * 1000)`` for values given as exact microseconds."""
    return np.trunc((micros / 1e6) * 1000.0).astype(np.int64)


def milliseconds(start_ns: np.ndarray, end_ns: np.ndarray, *, exact_start: bool) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) in integer ms as ft-profiler computes them (see the module docstring)."""
    start_us = start_ns // _NS_PER_US
    start = start_ns // 1_000_000 if exact_start else _float_ms(start_us)
    duration = _float_ms(end_ns // _NS_PER_US - start_us)
    return start, start + duration


def _address_words(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The two 64-bit halves of each 16-byte address, as numbers that compare like the bytes."""
    words = addresses.to_matrix(column).view(">u8")
    return words[:, 0].astype(np.uint64), words[:, 1].astype(np.uint64)


def _pick(flip: np.ndarray, when_set: np.ndarray, otherwise: np.ndarray) -> np.ndarray:
    """``np.where`` for a mask given as all-ones/zero words of the values' type (branch-free, several times faster)."""
    return otherwise ^ ((when_set ^ otherwise) & flip)


def _all_ones_where(mask: np.ndarray, dtype: type) -> np.ndarray:
    return np.negative(mask.view(np.uint8).astype(dtype))


def mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijective 64-bit mixer."""
    z = z ^ (z >> np.uint64(30))  # a new array; the rest works in place on it (fewer temporaries)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


_SEEDS = (np.uint64(0x243F6A8885A308D3), np.uint64(0x13198A2E03707344))


def _hash128(words: list[np.ndarray]) -> np.ndarray:
    """A 128-bit hash per row of ``words`` ((n, 2) uint64): two splitmix64 chains with different seeds."""
    out = np.empty((len(words[0]), 2), np.uint64)
    for column, seed in enumerate(_SEEDS):
        h = np.full(len(words[0]), seed, np.uint64)
        for word in words:
            h = mix64(h ^ word)
        out[:, column] = h
    return out


_V4_MARK = np.uint64(0xFFFF_0000_0000)  # the ffff of an IPv4-mapped address, in the low 64 bits
_LOW32 = np.uint64(0xFFFF_FFFF)
_HASHED = np.uint64(1 << 63)


def key_fingerprint(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], tail: np.ndarray) -> np.ndarray:
    """128 bits per direction-free key ((n, 2) uint64), compared instead of the 37-byte key.

    An IPv4 key fits: both addresses in the first word, ports and protocol (40 bits) in the
    second, so IPv4 keys are compared exactly. Other keys are hashed (the top bit of the second
    word marks them, so they never equal an IPv4 encoding): for a billion distinct such keys the
    chance that any two share a fingerprint is below 1e-19.
    """
    (a_hi, a_lo), (b_hi, b_lo) = a, b
    v4 = (a_hi == 0) & (b_hi == 0) & ((a_lo & ~_LOW32) == _V4_MARK) & ((b_lo & ~_LOW32) == _V4_MARK)
    out = np.empty((len(tail), 2), np.uint64)
    out[:, 0] = (a_lo << np.uint64(32)) | (b_lo & _LOW32)
    out[:, 1] = tail
    if not v4.all():
        other = ~v4
        hashed = _hash128([a_hi[other], a_lo[other], b_hi[other], b_lo[other], tail[other]])
        hashed[:, 1] |= _HASHED
        out[other] = hashed
    return out


def _compact(values: np.ndarray) -> np.ndarray:
    """The smallest integer type that holds every value (counters are mostly small)."""
    if not len(values):
        return values
    return values.astype(np.result_type(np.min_scalar_type(values.min()), np.min_scalar_type(values.max())))


@dataclass
class Records:
    """One column per field, one row per input record (input order until ``permute``)."""

    start: np.ndarray  # int64 ms
    duration: np.ndarray  # ms, compact signed
    key: np.ndarray | None  # (n, 2) uint64 fingerprint of the direction-free key (dropped once keys have ids)
    swap: np.ndarray  # the record runs from the larger to the smaller address
    ipv6: np.ndarray
    proto: np.ndarray
    port_a: np.ndarray  # port of the smaller address; 0 unless TCP/UDP
    port_b: np.ndarray
    packets: np.ndarray
    bytes: np.ndarray
    packets_rev: np.ndarray
    bytes_rev: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    def release(self) -> None:
        """Drop every column (the merge is done with them)."""
        for name in _FIELDS:
            setattr(self, name, None)

    def permute(self, order: np.ndarray) -> None:
        """Reorder every column in place of the old one (no second copy of the whole set: each thread replaces
        one column at a time). The gathers are random reads, a second of one core for 10 M records."""

        def gather(name: str) -> None:
            setattr(self, name, getattr(self, name)[order])

        parallel.each(gather, [name for name in _FIELDS if getattr(self, name) is not None])


_FIELDS = (
    "start", "duration", "key", "swap", "ipv6", "proto", "port_a", "port_b",
    "packets", "bytes", "packets_rev", "bytes_rev",
)  # fmt: skip


def _filled(table: pa.Table, name: str, dtype: type) -> np.ndarray:
    """A numeric column as numpy, nulls as 0."""
    return pc.fill_null(table.column(name), 0).to_numpy().astype(dtype, copy=False)


@dataclass
class TableBatch:
    """A flow table and whether its starts are exact (nfdump's own milliseconds); ``records`` extracts it."""

    table: pa.Table
    exact_start: bool

    def records(self, skips: Skips) -> Records | None:
        return from_batch(self.table, skips, exact_start=self.exact_start)


def from_batch(table: pa.Table, skips: Skips, *, exact_start: bool) -> Records | None:
    """The profiler's columns of one flow batch; records without addresses or times are counted skips."""
    usable = pc.and_(
        pc.and_(pc.is_valid(table.column("src_addr")), pc.is_valid(table.column("dst_addr"))),
        pc.and_(pc.is_valid(table.column("time_flow_start")), pc.is_valid(table.column("time_flow_end"))),
    )
    kept = pc.sum(usable).as_py() or 0
    if kept < table.num_rows:
        skips.add(NO_ADDRESS_OR_TIME, table.num_rows - kept)
        table = table.filter(usable)
    if not table.num_rows:
        return None
    start_ns = table.column("time_flow_start").cast(pa.int64()).to_numpy()
    end_ns = table.column("time_flow_end").cast(pa.int64()).to_numpy()
    start, end = milliseconds(start_ns, end_ns, exact_start=exact_start)
    src_hi, src_lo = _address_words(table.column("src_addr"))
    dst_hi, dst_lo = _address_words(table.column("dst_addr"))
    return from_columns(
        Columns(
            start=start,
            end=end,
            src_hi=src_hi,
            src_lo=src_lo,
            dst_hi=dst_hi,
            dst_lo=dst_lo,
            proto=_filled(table, "proto", np.uint8),
            src_port=_filled(table, "src_port", np.uint16),
            dst_port=_filled(table, "dst_port", np.uint16),
            packets=_filled(table, "packets", np.uint64),
            bytes=_filled(table, "bytes", np.uint64),
            packets_rev=_filled(table, "packets_rev", np.uint64),
            bytes_rev=_filled(table, "bytes_rev", np.uint64),
        )
    )


NO_ADDRESS_OR_TIME = "no IP addresses or no times (e.g. ARP)"


@dataclass
class Columns:
    """One batch's usable records as plain numpy columns (whatever their source): what ``from_columns`` needs."""

    start: np.ndarray  # int64 ms, as ft-profiler computes it
    end: np.ndarray
    src_hi: np.ndarray  # the address as high and low uint64 words (``_address_words``)
    src_lo: np.ndarray
    dst_hi: np.ndarray
    dst_lo: np.ndarray
    proto: np.ndarray  # uint8
    src_port: np.ndarray  # uint16, any value for protocols other than TCP/UDP
    dst_port: np.ndarray
    packets: np.ndarray  # unsigned counters, nulls as 0
    bytes: np.ndarray
    packets_rev: np.ndarray
    bytes_rev: np.ndarray


def from_columns(c: Columns) -> Records:
    """The direction-free key and the compact columns of one batch."""
    src_hi, src_lo, dst_hi, dst_lo = c.src_hi, c.src_lo, c.dst_hi, c.dst_lo
    swap = (src_hi > dst_hi) | ((src_hi == dst_hi) & (src_lo > dst_lo))
    proto = c.proto
    ported = (proto == TCP) | (proto == UDP)
    src_port = c.src_port * ported
    dst_port = c.dst_port * ported
    flip = _all_ones_where(swap, np.uint16)
    port_a = _pick(flip, dst_port, src_port)
    port_b = src_port ^ dst_port ^ port_a
    tail = port_a.astype(np.uint64) << np.uint64(24) | port_b.astype(np.uint64) << np.uint64(8) | proto
    flip = _all_ones_where(swap, np.uint64)
    smaller = (_pick(flip, dst_hi, src_hi), _pick(flip, dst_lo, src_lo))
    larger = (src_hi ^ dst_hi ^ smaller[0], src_lo ^ dst_lo ^ smaller[1])
    return Records(
        start=c.start,
        duration=_compact(c.end - c.start),
        key=key_fingerprint(smaller, larger, tail),
        swap=swap,
        ipv6=(src_hi != 0) | ((src_lo >> np.uint64(32)) != np.uint64(0xFFFF)),  # not ::ffff:0:0/96
        proto=proto,
        port_a=port_a,
        port_b=port_b,
        packets=_compact(c.packets),
        bytes=_compact(c.bytes),
        packets_rev=_compact(c.packets_rev),
        bytes_rev=_compact(c.bytes_rev),
    )


def concat(parts: list[Records]) -> Records:
    if not parts:
        empty = np.empty(0, np.int64)
        return Records(empty, empty, np.empty((0, 2), np.uint64), *(empty for _ in range(9)))
    if len(parts) == 1:
        return parts[0]
    return Records(**join_columns(parts, _FIELDS))


def join_columns(parts: list, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Each named column of all parts joined (a column per thread); each part's column is freed as soon as it is
    copied."""

    def join(name: str) -> np.ndarray:
        joined = np.concatenate([getattr(p, name) for p in parts])
        for part in parts:
            setattr(part, name, None)
        return_freed_memory()  # before the next column is joined: the peak stays one column above the parts
        return joined

    return dict(zip(names, parallel.each(join, names), strict=True))
