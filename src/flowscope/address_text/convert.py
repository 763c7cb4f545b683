"""Address text for whole columns: which rows are IPv4 or IPv6, batches sized for the CPU cache, and what
may surround an address in text (whitespace, an IPv6 zone id).

Decisions that differ from or add to ``ipaddress``:
- surrounding ASCII whitespace (space, tab, CR, LF, VT, FF) is ignored; other whitespace is not an address;
- an IPv6 zone id (``fe80::1%eth0``) is accepted and dropped (the stored 16 bytes have no room for it), as
  ``ipaddress`` does; an empty zone, a second ``%`` or a ``/`` in it, or a zone on IPv4 text is invalid;
- empty or whitespace-only text is blank: no address, and not an error.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowscope.address_text import ipv4, ipv6
from flowscope.address_text.rows import WORD, Packer
from flowscope.arrays import string_parts

CHUNK_ROWS = 16384
"""Rows converted per step: every temporary stays within the L2 cache (format measured 6.7 M addresses/s
over 5 M rows at once, about 50 M/s in steps of 16 k rows)."""

_MAPPED_WORD = WORD(ipv4.MAPPED_MARKER)  # bytes 8-15 of an IPv4-mapped address are this | address << 32
_WHITESPACE = np.zeros(256, bool)
_WHITESPACE[[9, 10, 11, 12, 13, 32]] = True


def format_addresses(matrix: np.ndarray, mapped: np.ndarray, valid: np.ndarray | None) -> pa.Array:
    """(rows, 16) address bytes -> Arrow strings: IPv4-mapped rows (``mapped``) as dotted quads, the others as
    RFC 5952 IPv6 text; rows where ``valid`` is False become nulls."""
    count = len(matrix)
    mapped_count = int(np.count_nonzero(mapped))
    packer = Packer(count, 15 * mapped_count + ipv6.MAX_FORMATTED * (count - mapped_count))
    for start in range(0, count, CHUNK_ROWS):
        part = slice(start, start + CHUNK_ROWS)
        four = mapped[part] if valid is None else mapped[part] & valid[part]
        if four.all():
            rows, lengths = ipv4.format_rows(matrix[part])
            packer.put_rows(packer.reserve(lengths), rows)
        else:
            six = ~mapped[part] if valid is None else ~mapped[part] & valid[part]
            _format_mixed(packer, matrix[part], four, six)
    return packer.array(valid)


def _format_mixed(packer: Packer, matrix: np.ndarray, four: np.ndarray, six: np.ndarray) -> None:
    """A batch with IPv6 or null rows: every length first (the packer places texts in row order), then bytes."""
    lengths = np.zeros(len(matrix), np.int64)
    four_rows = None
    if four.any():
        four_rows, lengths[four] = ipv4.format_rows(matrix[four])
    tokens, places, lengths[six] = ipv6.format_tokens(matrix if six.all() else matrix[six])
    starts = packer.reserve(lengths)
    if four_rows is not None:
        packer.put_rows(starts[four], four_rows)
    packer.put_words((places + starts[six]).reshape(-1), tokens.reshape(-1))


def parse_addresses(array: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Strings or binaries -> ((rows, 16) address bytes, parsed, blank).

    ``parsed`` rows hold an address (IPv4 mapped into ``::ffff:0:0/96``); ``blank`` rows are null, empty or
    whitespace only. The rest is not an address. Texts are read where they are (no copy); starts and
    lengths are made batch by batch unless whitespace or zones move them.
    """
    count = len(array)
    offsets, data = string_parts(array)
    absent = ~np.asarray(array.is_valid()) if array.null_count else None
    surroundings = None
    if data.min(initial=255) <= ord("%"):  # whitespace and '%' sort below every character of an address
        # (a minimum, not a comparison: no temporary as large as the data; 2.6 against 14 ms for 74 MB)
        starts, lengths = offsets[:-1].astype(np.int64), np.diff(offsets).astype(np.int64)
        if absent is not None:
            lengths[absent] = 0
        surroundings = _surroundings(data, starts, lengths)
    matrix = np.empty((count, 16), np.uint8)  # every row is written (see Packer for why not np.zeros)
    parsed, blank = np.empty(count, bool), np.empty(count, bool)
    for start in range(0, count, CHUNK_ROWS):
        part = slice(start, start + CHUNK_ROWS)
        if surroundings is None:
            bounds = offsets[start : start + CHUNK_ROWS + 1].astype(np.int64)
            starts, lengths, zoned = bounds[:-1], np.diff(bounds), None
            if absent is not None:
                lengths[absent[part]] = 0
        else:
            starts, lengths, zoned = (column[part] for column in surroundings)
        blank[part] = lengths == 0 if zoned is None else (lengths == 0) & ~zoned  # a zone alone is no blank
        _parse_part(data, starts, lengths, zoned, matrix[part], parsed[part])
    return matrix, parsed, blank


def _parse_part(
    data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, zoned: np.ndarray | None, matrix: np.ndarray,
    parsed: np.ndarray,
) -> None:  # fmt: skip
    """One batch into ``matrix`` and ``parsed`` (zero rows where nothing parsed): texts short enough for a
    dotted quad are tried as IPv4 first, the rest that are not blank as IPv6."""
    words = matrix.view(np.uint64)
    short = lengths <= ipv4.MAX_TEXT
    if short.all():
        address, four = ipv4.parse_rows(data, starts, lengths)
        if zoned is not None:
            four &= ~zoned  # a zone id only follows IPv6
        words[:, 0] = 0
        words[:, 1] = np.where(four, _MAPPED_WORD | (address.astype(WORD) << WORD(32)), WORD(0))
    else:  # IPv6 text is mostly longer (bench_addresses: 52 ns per address to try it as IPv4)
        words[:] = 0
        four = np.zeros(len(starts), bool)
        tried = np.flatnonzero(short)
        if len(tried):
            address, four[tried] = ipv4.parse_rows(data, starts[tried], lengths[tried])
            if zoned is not None:
                four &= ~zoned
            words[four, 1] = _MAPPED_WORD | (address[four[tried]].astype(WORD) << WORD(32))
    parsed[:] = four
    rest = np.flatnonzero(~four & (lengths > 0))
    if len(rest) == len(starts):
        six_matrix, parsed[:] = ipv6.parse_rows(data, starts, lengths)
        words[:] = six_matrix.view(np.uint64)
        if not parsed.all():
            words[~parsed] = 0
    elif len(rest):
        six_matrix, six = ipv6.parse_rows(data, starts[rest], lengths[rest])
        words[rest[six]] = six_matrix.view(np.uint64)[six]
        parsed[rest] = six


def _surroundings(
    data: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Starts and lengths without surrounding whitespace and zone ids, and which rows had a zone."""
    ends = starts + lengths
    space = _WHITESPACE[data]
    if space.any():
        first_text = _next_marked(~space)
        last_text = np.maximum.accumulate(np.where(space, -1, np.arange(len(data))))
        starts = np.minimum(first_text[starts], ends)
        ends = np.where(starts < ends, last_text[np.maximum(ends - 1, 0)] + 1, starts)
    zoned = np.zeros(len(starts), bool)
    percent = data == ord("%")
    if percent.any():
        ends, zoned = _without_zones(data, percent, starts, ends)
    return starts, ends - starts, zoned


def _next_marked(flags: np.ndarray) -> np.ndarray:
    """For each position (and one past the end): the first marked position at or after it, else the size."""
    size = len(flags)
    positions = np.where(flags, np.arange(size), size)
    return np.append(np.minimum.accumulate(positions[::-1])[::-1], size)


def _without_zones(
    data: np.ndarray, percent: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ends before any IPv6 zone id, and which rows had one; a malformed zone leaves no text (unparsable)."""
    next_percent = _next_marked(percent)
    next_slash = _next_marked(data == ord("/"))
    at = next_percent[starts]
    zoned = at < ends
    after = np.minimum(at + 1, len(data))
    good = (after < ends) & (next_percent[after] >= ends) & (next_slash[after] >= ends)
    return np.where(zoned, np.where(good, at, starts), ends), zoned
