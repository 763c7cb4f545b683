"""The record walks of the FlowMessage decoder, compiled with numba (``cache=True``; warmed at install).

Length-delimited messages can only be found by following their prefixes, and a message's fields by following
its tags: each step needs the one before it. The numpy decoder this replaces walked the k-th field of every
message in one vectorised step, about 30 steps of ~40 whole-array operations per batch (0.68-0.76 M flows/s);
here one pass over the bytes fills preallocated columns. Every read is bounded by the end of its message (or
payload), so a fault is classified by the message's own bytes.

Outputs: per kept field a ``uint64`` value row (``values[slot, row]``, the last occurrence wins, as in
protobuf; 0 when absent) and per address field 16 bytes in the schema's layout (4-byte fields IPv4-mapped)
with a presence flag. A bad message is counted under its first fault and leaves no row.
"""

from __future__ import annotations

import numba
import numpy as np

TRUNCATED, MALFORMED, WRONG_WIRE, BAD_TAG, PAST_END, ADDRESS_LENGTH, RANGE = range(1, 8)
"""Fault codes, indices into ``goflow2.REASONS``."""
REASONS = 8

_U64 = np.uint64


@numba.njit(cache=True, nogil=True)
def _varint(data: np.ndarray, pos: int, end: int, limit: int) -> tuple[np.uint64, int, int]:
    """(value, position after it, fault) of the varint at ``pos``; at most ``limit`` bytes (10 for values).

    Where ``limit`` bytes are left before ``end`` (all but a message's last fields) the bytes are read without
    testing the end (0.21 -> 0.125 s for walking 1 M messages).
    """
    if pos + limit > end:
        return _bounded_varint(data, pos, end, limit)
    byte = data[pos]
    if byte < 0x80:
        return _U64(byte), pos + 1, 0
    value = _U64(byte & 0x7F)
    shift = _U64(7)
    for at in range(pos + 1, pos + limit):
        byte = data[at]
        value |= _U64(byte & 0x7F) << shift
        if byte < 0x80:
            if at == pos + 9 and byte >= 2:  # a tenth byte holds only bit 63
                return _U64(0), pos, MALFORMED
            return value, at + 1, 0
        shift += _U64(7)
    return _U64(0), pos, MALFORMED


@numba.njit(cache=True, nogil=True)
def _bounded_varint(data: np.ndarray, pos: int, end: int, limit: int) -> tuple[np.uint64, int, int]:
    """``_varint`` near ``end``: a varint that has not ended by then is truncated."""
    value = _U64(0)
    shift = _U64(0)
    for at in range(pos, min(end, pos + limit)):
        byte = data[at]
        value |= _U64(byte & 0x7F) << shift
        if byte < 0x80:
            if at == pos + 9 and byte >= 2:
                return _U64(0), pos, MALFORMED
            return value, at + 1, 0
        shift += _U64(7)
    return _U64(0), pos, TRUNCATED if end < pos + limit else MALFORMED


@numba.njit(cache=True, nogil=True)
def split(data: np.ndarray, payload_ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Message bodies (starts, ends) of back-to-back payloads, and faults counted by code.

    A prefix that is not a varint, or a length past its payload's end, ends that payload's walk (one fault):
    no later boundary in it can be trusted. Two passes (count, then fill) size the outputs exactly.
    """
    faults = np.zeros(REASONS, np.int64)
    count = 0
    for fill in (False, True):
        if fill:
            starts = np.empty(count, np.int64)
            ends = np.empty(count, np.int64)
        else:
            starts = ends = np.empty(0, np.int64)
        k = 0
        start = 0
        for p in range(payload_ends.shape[0]):
            end = payload_ends[p]
            pos = start
            while pos < end:
                length, body, fault = _varint(data, pos, end, 10)
                if fault == 0 and length > _U64(end - body):
                    fault = PAST_END
                if fault:
                    if not fill:
                        faults[fault] += 1
                    break
                pos = body + int(length)
                if fill:
                    starts[k], ends[k] = body, pos
                k += 1
            start = end
        count = k
    return starts, ends, faults


@numba.njit(cache=True, nogil=True)
def decode(
    data: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    slot: np.ndarray,
    expected_wire: np.ndarray,
    group: np.ndarray,
    row: np.ndarray,
    limit: np.ndarray,
    values64: np.ndarray,
    values32: np.ndarray,
    values16: np.ndarray,
    values8: np.ndarray,
    addresses: np.ndarray,
    present: np.ndarray,
) -> tuple[int, np.ndarray]:
    """Walk each message's fields into column ``kept`` of the outputs (zeroed by the caller): (kept, faults).

    ``slot``/``expected_wire`` map a field number (clipped to their last entry) to its slot (-1: not kept;
    varint fields first, then address fields) and wire type (-1: any). Varint slot ``s`` goes to row
    ``row[s]`` of ``values64``/``32``/``16``/``8`` as ``group[s]`` is 0/1/2/3 (the columns' own types: no
    conversion afterwards); ``limit[s]`` is its largest value (a larger one is ``RANGE``). Faults are checked
    in the order: tag, the value's varint, wire type, length.
    """
    faults = np.zeros(REASONS, np.int64)
    n_values = limit.shape[0]
    n_addresses = addresses.shape[0]
    at = np.zeros(n_addresses, np.int64)
    size = np.zeros(n_addresses, np.int64)
    last = slot.shape[0] - 1
    kept = 0
    for m in range(starts.shape[0]):
        pos, end = starts[m], ends[m]
        size[:] = 0
        fault = 0
        too_wide = 0  # bit s: the last value of slot s is over its limit (a later one may still fit)
        while pos < end:
            key, pos, fault = _varint(data, pos, end, 5)
            if fault:
                fault = BAD_TAG if fault == MALFORMED else fault
                break
            number = np.int64(key >> _U64(3))
            wire = np.int64(key & _U64(7))
            if number == 0 or wire == 3 or wire == 4 or wire > 5:
                fault = BAD_TAG
                break
            lookup = min(number, last)
            value = _U64(0)
            if wire == 0 or wire == 2:
                value, pos, fault = _varint(data, pos, end, 10)
                if fault:
                    break
            if expected_wire[lookup] >= 0 and wire != expected_wire[lookup]:
                fault = WRONG_WIRE
                break
            length = np.int64(8 if wire == 1 else 4 if wire == 5 else 0)
            if wire == 2:
                if value > _U64(end - pos):
                    fault = PAST_END
                    break
                length = np.int64(value)
            elif pos + length > end:
                fault = PAST_END
                break
            s = slot[lookup]
            if s >= n_values:
                at[s - n_values] = pos
                size[s - n_values] = length
            elif s >= 0:
                g, r = group[s], row[s]
                if g == 0:
                    values64[r, kept] = value
                elif g == 1:
                    values32[r, kept] = np.uint32(value)
                elif g == 2:
                    values16[r, kept] = np.uint16(value)
                else:
                    values8[r, kept] = np.uint8(value)
                bit = np.int64(1) << s
                too_wide = too_wide | bit if value > limit[s] else too_wide & ~bit
            pos += length
        if fault == 0 and too_wide:
            fault = RANGE
        if fault == 0:
            for a in range(n_addresses):
                if size[a] != 0 and size[a] != 4 and size[a] != 16:
                    fault = ADDRESS_LENGTH
                    break
        if fault:
            faults[fault] += 1
            values64[:, kept] = 0
            values32[:, kept] = 0
            values16[:, kept] = 0
            values8[:, kept] = 0
            continue
        for a in range(n_addresses):
            base = at[a]
            if size[a] == 16:
                for i in range(16):
                    addresses[a, kept, i] = data[base + i]
                present[a, kept] = True
            elif size[a] == 4:
                addresses[a, kept, 10] = 0xFF
                addresses[a, kept, 11] = 0xFF
                for i in range(4):
                    addresses[a, kept, 12 + i] = data[base + i]
                present[a, kept] = True
        kept += 1
    return kept, faults


@numba.njit(cache=True, nogil=True)
def _varint_size(value: np.uint64) -> int:
    size = 1
    while value >= _U64(0x80):
        value >>= _U64(7)
        size += 1
    return size


@numba.njit(cache=True, nogil=True)
def _put_varint(out: np.ndarray, pos: int, value: np.uint64) -> int:
    while value >= _U64(0x80):
        out[pos] = np.uint8((value & _U64(0x7F)) | _U64(0x80))
        value >>= _U64(7)
        pos += 1
    out[pos] = np.uint8(value)
    return pos + 1


@numba.njit(cache=True, nogil=True)
def _value(
    s: int, i: int, group: np.ndarray, row: np.ndarray,
    values64: np.ndarray, values32: np.ndarray, values16: np.ndarray, values8: np.ndarray,
) -> np.uint64:  # fmt: skip
    g, r = group[s], row[s]
    if g == 0:
        return values64[r, i]
    if g == 1:
        return _U64(values32[r, i])
    if g == 2:
        return _U64(values16[r, i])
    return _U64(values8[r, i])


@numba.njit(cache=True, nogil=True)
def encode(
    slot: np.ndarray,
    group: np.ndarray,
    row: np.ndarray,
    tag: np.ndarray,
    tag_size: np.ndarray,
    values64: np.ndarray,
    values32: np.ndarray,
    values16: np.ndarray,
    values8: np.ndarray,
    addresses: np.ndarray,
    address_size: np.ndarray,
    out: np.ndarray,
    ends: np.ndarray,
    pos: int,
) -> int:
    """The first ``ends.size`` rows as length-delimited FlowMessages, back to back in ``out`` from ``pos`` on:
    each message's end offset into ``ends``; returns the offset after the last.

    Fields go in ``slot``'s order (field-number order, as the official runtime writes them): a varint slot
    ``s >= 0`` (value in ``values{64,32,16,8}[row[s]]`` as ``group[s]`` is 0..3) or address ``-1 - s`` (the
    last ``address_size`` bytes of its 16: 4 for IPv4-mapped ones, 0 when absent), each preceded by ``tag[k]``
    (``tag_size[k]`` little-endian bytes). A 0 value and an absent address are left out (proto3's default).
    Each row's size is summed before its bytes are written, while its values are in the cache (one pass over
    the columns, not two): ``out`` must have room for the longest possible messages.
    """
    for i in range(ends.shape[0]):
        size = 0
        for k in range(slot.shape[0]):
            s = slot[k]
            if s < 0:
                length = address_size[-1 - s, i]
                size += tag_size[k] + 1 + length if length else 0
            else:
                value = _value(s, i, group, row, values64, values32, values16, values8)
                size += tag_size[k] + _varint_size(value) if value != _U64(0) else 0
        pos = _put_varint(out, pos, _U64(size))
        for k in range(slot.shape[0]):
            s = slot[k]
            if s < 0:
                a = -1 - s
                length = address_size[a, i]
                if length == 0:
                    continue
            else:
                value = _value(s, i, group, row, values64, values32, values16, values8)
                if value == _U64(0):
                    continue
            t = tag[k]
            for _ in range(tag_size[k]):
                out[pos] = np.uint8(t & 0xFF)
                t >>= 8
                pos += 1
            if s >= 0:
                pos = _put_varint(out, pos, value)
                continue
            out[pos] = np.uint8(length)
            pos += 1
            for b in range(16 - length, 16):
                out[pos] = addresses[a, i, b]
                pos += 1
        ends[i] = pos
    return pos
