"""IPv6 text <-> address bytes for whole batches, with no Python step per address.

Output is RFC 5952's canonical text (lowercase hex without leading zeros; the longest run of two or more
zero groups, the leftmost of equal runs, written ``::``), as ``ipaddress.IPv6Address`` prints it.
Input is every form ``ipaddress.IPv6Address`` reads: ``::`` anywhere once, one to four hex digits of either
case per group, and a dotted-quad last 32 bits (``::ffff:1.2.3.4``, ``64:ff9b::192.0.2.1``).
"""

from __future__ import annotations

import functools

import numpy as np

from flowscope.address_text import ipv4
from flowscope.address_text.rows import ALL_ONES, WORD, windows

COLON = WORD(ord(":"))
_DOUBLE_COLON = WORD(0x3A3A)
MAX_TEXT = 45  # ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255
MAX_FORMATTED = 39  # ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff
_TEXT = WORD((1 << 56) - 1)
_FIRST_FIVE = WORD((1 << 40) - 1)
_PAD = 8  # bytes before a batch's digits: a group that starts its text reads up to 3 bytes before it
_ONE = WORD(1)
_DE_BRUIJN = WORD(0x03F79D71B4CB0A89)


@functools.cache
def _group_words() -> np.ndarray:
    """Each 16-bit group as hex without leading zeros and a ':' after it, left-aligned; the hex length on top."""
    values = np.arange(1 << 16)
    lengths = 1 + (values >= 0x10) + (values >= 0x100) + (values >= 0x1000)
    words = np.zeros(1 << 16, WORD)
    for position in range(4):
        nibble = (values >> (4 * np.maximum(lengths - 1 - position, 0))) & 15
        char = np.where(nibble < 10, ord("0") + nibble, ord("a") - 10 + nibble)
        words |= np.where(position < lengths, char, 0).astype(WORD) << WORD(8 * position)
    words |= COLON << (lengths.astype(WORD) << WORD(3))
    return words | (lengths.astype(WORD) << WORD(56))


@functools.cache
def _zero_runs() -> tuple[np.ndarray, np.ndarray]:
    """For each mask of zero groups (bit g = group g is 0): first group and length of the run to write as
    ``::`` (RFC 5952 4.2: the longest, the first of equal ones, never a single group; length 0: none)."""
    firsts, lengths = np.zeros(256, np.int64), np.zeros(256, np.int64)
    for mask in range(256):
        run = 0
        for group in range(9):
            if group < 8 and mask >> group & 1:
                run += 1
                continue
            if run >= 2 and run > lengths[mask]:
                firsts[mask], lengths[mask] = group - run, run
            run = 0
    return firsts, lengths


def format_tokens(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, 16) addresses -> (tokens, places, lengths): each group's text as a word and its byte offset in
    its row's text (both (8, rows), group-major), and each text's length.

    A shown group's token is its hex and a ':' (the last group's without); the run of zero groups written
    ``::`` is one ':' token in its first group ('::' when it starts the address) and empty ones after it.
    Tokens come from one table lookup per group, the run from one lookup on the mask of zero groups, places
    from a running sum of the widths.
    """
    big_endian = matrix.view(">u2")
    zero_mask = np.packbits((big_endian == 0).reshape(-1), bitorder="little")
    run_firsts, run_lengths = _zero_runs()
    first, length = run_firsts.take(zero_mask), run_lengths.take(zero_mask)
    tokens = _group_words().take(big_endian.T.astype(np.uint16))  # take: half the time of indexing
    widths = tokens >> WORD(56)  # hex digits; the ':' is added below
    tokens &= _TEXT
    group = np.arange(8)[:, None]
    in_run = (group >= first) & (group < first + length)
    opens_run = in_run & (group == first)
    shown = ~in_run[7]
    tokens[7] = np.where(shown, tokens[7] & ~(COLON << (widths[7] << WORD(3))), tokens[7])
    widths += _ONE
    at_start = first == 0
    opening = np.where(opens_run, np.where(at_start, _DOUBLE_COLON, COLON), WORD(0))
    tokens = np.where(in_run, opening, tokens)
    widths = np.where(in_run, np.where(opens_run, at_start.astype(WORD) + _ONE, WORD(0)), widths)
    places = widths.copy()  # becomes each group's end, then its start
    for row in range(1, 8):
        places[row] += places[row - 1]
    lengths = (places[7] - shown).astype(np.int64)
    places -= widths
    return tokens, places.astype(np.int64), lengths


def _classes(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, 48) text bytes -> (which are ':', as (rows, 48) booleans; ':', '.' and hex digits as 64-bit
    masks, (3, rows), bit i = byte i).

    The three kinds are written into one array and packed by one call, into fewer temporaries: at 16 k rows
    each (rows, 48) array is 768 KiB, and the C heap maps and faults in what it has handed back.
    """
    planes = np.empty((3, *text.shape), bool)
    np.equal(text, ord(":"), out=planes[0])
    scratch = np.subtract(text, np.uint8(ord("0")))
    np.less(scratch, np.uint8(10), out=planes[2])
    np.bitwise_or(text, np.uint8(0x20), out=scratch)
    scratch -= np.uint8(ord("a"))
    np.less(scratch, np.uint8(6), out=planes[1])  # letters a-f, either case (dots come after)
    planes[2] |= planes[1]
    np.equal(text, ord("."), out=planes[1])
    packed = np.zeros((3, len(text), 8), np.uint8)
    packed[:, :, :6] = np.packbits(planes.reshape(-1), bitorder="little").reshape(3, -1, 6)
    return planes[0], packed.view(WORD)[:, :, 0]


@functools.cache
def _bit_positions() -> np.ndarray:
    """De Bruijn sequence lookup: ``table[(bit * _DE_BRUIJN) >> 58]`` is the position of a single set bit."""
    table = np.zeros(64, np.int64)
    for position in range(64):
        table[((1 << position) * int(_DE_BRUIJN) % (1 << 64)) >> 58] = position
    return table


def _position(bit: np.ndarray) -> np.ndarray:
    """Index of the single set bit of each word (0 for 0)."""
    return _bit_positions()[(bit * _DE_BRUIJN) >> WORD(58)]


def _count(bits: np.ndarray) -> np.ndarray:
    """Set bits per word (numpy 1.26 has no popcount)."""
    bits = bits - ((bits >> _ONE) & WORD(0x5555555555555555))
    bits = (bits & WORD(0x3333333333333333)) + ((bits >> WORD(2)) & WORD(0x3333333333333333))
    bits = (bits + (bits >> WORD(4))) & WORD(0x0F0F0F0F0F0F0F0F)
    return ((bits * WORD(0x0101010101010101)) >> WORD(56)).astype(np.int64)


def _lowest(bits: np.ndarray) -> np.ndarray:
    return bits & (~bits + _ONE)


def parse_rows(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IPv6 texts at ``starts``/``lengths`` in ``data`` (bytes) -> ((rows, 16) bytes, parsed).

    The text's colons, dots and hex digits become 64-bit masks (at most 45 characters), on which the
    grammar is checked as ``ipaddress`` checks it: one ``::`` at most; a leading or trailing ':' only as
    part of it; groups of one to four digits; dots only in a dotted quad after the last colon; eight
    groups, or at most seven with ``::``. Groups are then read all at once (``_hextets``) and placed after
    the ``::`` gap when they follow it.
    """
    fits = (lengths >= 2) & (lengths <= MAX_TEXT)
    lengths = np.where(fits, lengths, 0)
    rows = windows(data, starts, None, 6)  # bytes past a text are masked off the bits below
    rows[:, 5] &= _FIRST_FIVE  # bytes 45-47, never text: zeros, the digits _hextets reads before a text
    colon_bytes, (colons, dots, hex_digits) = _classes(rows.view(np.uint8))
    length_bits = lengths.astype(WORD)
    inside = ~(ALL_ONES << length_bits)
    parsed = fits & ((colons | dots | hex_digits) & inside == inside)
    colons &= inside
    dots &= inside
    hex_digits &= inside
    pairs = colons & (colons >> _ONE)  # bit p: '::' at p
    parsed &= (pairs & (pairs - _ONE)) == 0  # one '::' at most (':::' is two)
    parsed &= ((colons & _ONE) == 0) | ((pairs & _ONE) != 0)
    last = length_bits - _ONE
    parsed &= (((colons >> last) & _ONE) == 0) | (((pairs >> (last - _ONE)) & _ONE) != 0)
    parsed &= (hex_digits & (hex_digits >> _ONE) & (hex_digits >> WORD(2)) & (hex_digits >> WORD(3)) &
               (hex_digits >> WORD(4))) == 0  # fmt: skip
    quad = dots != 0
    hex_groups = hex_digits  # the digits of 16-bit groups
    if quad.any():
        up_to_last_colon = colons.copy()
        for shift in (1, 2, 4, 8, 16, 32):
            up_to_last_colon |= up_to_last_colon >> WORD(shift)
        parsed &= ~quad | (_lowest(dots) > colons)  # dots only after the last colon
        hex_groups = np.where(quad, hex_digits & up_to_last_colon, hex_digits)
    counts = _count(hex_groups & ((colons << _ONE) | _ONE))  # 16-bit groups
    groups = counts + 2 * quad
    compressed = pairs != 0
    parsed &= np.where(compressed, groups <= 7, groups == 8)

    quad_rows = np.flatnonzero(parsed & quad)
    if len(quad_rows):
        quad_start = _count(up_to_last_colon[quad_rows])
        address, parsed[quad_rows] = ipv4.parse_rows(data, starts[quad_rows] + quad_start,
                                                     lengths[quad_rows] - quad_start)  # fmt: skip
    group_ends = np.where(parsed, (hex_groups << _ONE) & ~hex_digits, WORD(0))  # bit p: a group ends before p
    gap = np.where(compressed, 8 - groups, 0)
    gap_at = _position(_lowest(pairs)) if compressed.any() else gap  # only read where gap > 0
    matrix = _hextets(rows, colon_bytes, group_ends, np.where(parsed, counts, 0), gap, gap_at)
    if len(quad_rows):
        matrix[quad_rows, 12:] = address.view(np.uint8).reshape(-1, 4)
    return matrix, parsed


def _hextets(
    rows: np.ndarray, colon_bytes: np.ndarray, group_ends: np.ndarray, counts: np.ndarray, gap: np.ndarray,
    gap_at: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """The 16-bit groups of texts (``rows``) into (rows, 16) bytes, zero where no group is placed.

    ``group_ends`` has a bit after each group's last digit, ``counts`` says how many. The ends are found
    rank by rank, the last first (the highest bit left, from the exponent of the mask as a float), then each
    group's two bytes are one gather each from the batch's hex digits paired into bytes (``_digit_pairs``).
    """
    count, width = rows.shape[0], rows.shape[1] * 8
    most = int(counts.max(initial=0))  # ranks 8 - most to 7 are read ('::1' reads one)
    ends = np.empty((most, count), np.int64)  # the byte after each group, counted from the first row's
    remaining = group_ends.astype(np.float64)  # exact: below 2 ** 46
    power = np.empty(count, np.int64)
    for exponent in ends[::-1]:  # the last group first: the highest bit left is the exponent of the float
        np.right_shift(remaining.view(np.int64), 52, out=exponent)  # 1023 + position; 0: no group left
        np.left_shift(exponent, 52, out=power)
        remaining -= power.view(np.float64)  # 2.0 ** position (0.0 for 0)
    ends += np.arange(-1023, count * width - 1023, width)
    pairs, high_pairs = _digit_pairs(rows, colon_bytes)
    groups = np.empty((most, count, 2), np.uint8)  # big-endian
    groups[:, :, 0] = high_pairs[_PAD - 3 :].take(ends, mode="clip")
    groups[:, :, 1] = pairs[_PAD - 1 :].take(ends, mode="clip")
    values = groups.view(np.uint16)[:, :, 0]
    if most == 8 and not gap.any() and (counts == 8).all():
        return values.T.copy().view(np.uint8)
    ranks = np.arange(8 - most, 8)[:, None] + counts - 8  # a row with fewer groups has its first at 8 - counts
    after_gap = ends - np.arange(0, count * width, width) > gap_at
    slots = np.where(ranks >= 0, ranks + np.where(after_gap, gap, 0), 8)  # 8: a column to drop
    matrix = np.zeros((count, 9), np.uint16)
    matrix.reshape(-1)[slots + np.arange(0, 9 * count, 9)] = values
    return matrix[:, :8].copy().view(np.uint8)


def _digit_pairs(rows: np.ndarray, colon_bytes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The hex digit values of all texts (rows one after another, ``_PAD`` zero bytes first) paired: byte
    ``i`` is digits ``i - 1`` and ``i`` (a ':' is 0); and the same with a pair that has a ':' in it 0.

    A group ending before byte ``e`` is ``pairs[e - 3]``, ``pairs[e - 1]`` in the second array then
    the first: the high pair is dropped where the group has fewer than three digits (a ':' at ``e - 3`` or
    ``e - 2``), and a group at a text's start reads the zeros past the text before it. Word arithmetic, eight
    bytes at a time; a byte past a text is no digit, so its value is cut to four bits to stay in its byte.
    """
    count, words = rows.shape
    flags = np.zeros(count * words + 1, WORD)  # 1 in the bytes of a ':'; _PAD == 8: one zero word first
    flags[1:] = colon_bytes.view(np.uint8).view(WORD).reshape(-1)
    digits = np.zeros_like(flags)
    text = digits[1:].reshape(count, words)
    np.right_shift(rows, WORD(6), out=text)
    text &= WORD(0x0101010101010101)
    text *= WORD(9)
    text += rows & WORD(0x0F0F0F0F0F0F0F0F)
    text &= WORD(0x0F0F0F0F0F0F0F0F) - flags[1:].reshape(count, words) * WORD(0x0F)
    pairs = digits << WORD(12)
    pairs |= digits
    pairs[1:] |= digits[:-1] >> WORD(52)
    with_colon = flags | (flags >> WORD(8))
    with_colon[:-1] |= flags[1:] << WORD(56)
    with_colon *= WORD(0xFF)
    np.bitwise_not(with_colon, out=with_colon)
    with_colon &= pairs
    return pairs.view(np.uint8), with_colon.view(np.uint8)
