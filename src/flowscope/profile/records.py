"""Flow batches -> the compact per-record columns the profiler merges (input order kept).

Times become integer milliseconds the way ft-profiler's readers compute them, so the
same input gives the same rows: its nfdump reader takes nfdump's millisecond start
as is, its CSV reader computes ``int(float(START_TIME) * 1000)``; both add
``int(float(duration_seconds) * 1000)`` for the end. Doubles are reproduced exactly
from the microsecond value (an integer below 2**53 divided by 1e6 is the correctly
rounded double of the decimal text).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope import addresses
from flowscope.diagnostics import Skips
from flowscope.schema import ADDRESS

TCP, UDP = 6, 17
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


def _big_endian_words(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return matrix[:, :8].copy().view(">u8").ravel(), matrix[:, 8:].copy().view(">u8").ravel()


@dataclass
class Records:
    """One column per field, one row per input record, in input order."""

    start: np.ndarray
    end: np.ndarray
    addr_a: pa.Array  # the smaller address of the pair (direction-free key)
    addr_b: pa.Array
    swap: np.ndarray  # the record runs from the larger to the smaller address
    ipv6: np.ndarray
    proto: np.ndarray
    port_a: np.ndarray  # ports follow their address; 0 unless TCP/UDP
    port_b: np.ndarray
    packets: np.ndarray
    bytes: np.ndarray
    packets_rev: np.ndarray
    bytes_rev: np.ndarray

    def __len__(self) -> int:
        return len(self.start)


_NUMERIC = ("start", "end", "swap", "ipv6", "proto", "port_a", "port_b", "packets", "bytes", "packets_rev", "bytes_rev")


def _u64(table: pa.Table, name: str) -> np.ndarray:
    return pc.fill_null(table.column(name), 0).to_numpy().astype(np.uint64, copy=False)


def from_batch(table: pa.Table, skips: Skips, *, exact_start: bool) -> Records | None:
    """The profiler's columns of one flow batch; records without addresses or times are counted skips."""
    usable = pc.and_(
        pc.and_(pc.is_valid(table.column("src_addr")), pc.is_valid(table.column("dst_addr"))),
        pc.and_(pc.is_valid(table.column("time_flow_start")), pc.is_valid(table.column("time_flow_end"))),
    )
    kept = pc.sum(usable).as_py() or 0
    if kept < table.num_rows:
        skips.add("no IP addresses or no times (e.g. ARP)", table.num_rows - kept)
        table = table.filter(usable)
    if not table.num_rows:
        return None
    start_ns = table.column("time_flow_start").cast(pa.int64()).to_numpy()
    end_ns = table.column("time_flow_end").cast(pa.int64()).to_numpy()
    start, end = milliseconds(start_ns, end_ns, exact_start=exact_start)
    src = addresses.to_matrix(table.column("src_addr"))
    dst = addresses.to_matrix(table.column("dst_addr"))
    src_hi, src_lo = _big_endian_words(src)
    dst_hi, dst_lo = _big_endian_words(dst)
    swap = (src_hi > dst_hi) | ((src_hi == dst_hi) & (src_lo > dst_lo))
    proto = pc.fill_null(table.column("proto"), 0).to_numpy().astype(np.uint8)
    ported = (proto == TCP) | (proto == UDP)
    src_port = np.where(ported, pc.fill_null(table.column("src_port"), 0).to_numpy(), 0).astype(np.uint16)
    dst_port = np.where(ported, pc.fill_null(table.column("dst_port"), 0).to_numpy(), 0).astype(np.uint16)
    src_col = table.column("src_addr").combine_chunks()
    dst_col = table.column("dst_addr").combine_chunks()
    swap_arrow = pa.array(swap)
    return Records(
        start=start,
        end=end,
        addr_a=pc.if_else(swap_arrow, dst_col, src_col),
        addr_b=pc.if_else(swap_arrow, src_col, dst_col),
        swap=swap,
        ipv6=~addresses.is_ipv4(src_col),
        proto=proto,
        port_a=np.where(swap, dst_port, src_port),
        port_b=np.where(swap, src_port, dst_port),
        packets=_u64(table, "packets"),
        bytes=_u64(table, "bytes"),
        packets_rev=_u64(table, "packets_rev"),
        bytes_rev=_u64(table, "bytes_rev"),
    )


def concat(parts: Iterable[Records]) -> Records:
    parts = list(parts)
    if not parts:
        empty = np.empty(0, np.int64)
        nothing = pa.array([], ADDRESS)
        return Records(empty, empty, nothing, nothing, *(np.empty(0, np.int64) for _ in range(9)))
    if len(parts) == 1:
        return parts[0]
    fields = {name: np.concatenate([getattr(p, name) for p in parts]) for name in _NUMERIC}
    return Records(
        addr_a=pa.concat_arrays([p.addr_a for p in parts]),
        addr_b=pa.concat_arrays([p.addr_b for p in parts]),
        **fields,
    )
