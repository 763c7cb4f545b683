"""IPv4 dotted quads <-> address bytes for whole batches, with no Python step per address.

Text is what ``ipaddress.IPv4Address`` reads and writes: four decimal octets of one to three digits, no
leading zeros (``01.2.3.4`` is refused, as glibc's ``inet_pton`` does), each at most 255.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from flowscope.address_text.rows import WORD, windows

MAPPED_PREFIX = np.array([0] * 10 + [0xFF, 0xFF], np.uint8)
"""The first 12 bytes of an IPv4-mapped IPv6 address (RFC 4291 2.5.5.2), how flowscope stores IPv4."""
MAPPED_MARKER = MAPPED_PREFIX[8:].view(np.uint32)[0]  # bytes 8-11 as a native word

MAX_TEXT = 15  # 255.255.255.255
DOT = WORD(ord("."))
_TEXT = WORD((1 << 56) - 1)  # a table word's text bytes; the top byte holds the text's length
_BYTE = WORD(0xFF)
_THREE_BYTES = WORD(0xFFFFFF)
_ZERO_DIGITS = WORD(0x3030303030303030)
_HIGH_THREE_BYTES = _THREE_BYTES << WORD(32)
_LANE_BYTES = WORD(0x000000FF000000FF)  # the low byte of each 32-bit half


def _octet_words() -> tuple[np.ndarray, np.ndarray]:
    """Each octet 0-255 as left-aligned decimal text in a word, and its length."""
    values = np.arange(256)
    lengths = 1 + (values >= 10) + (values >= 100)
    text = np.zeros(256, WORD)
    for position in range(3):  # the digit of weight 10**(length - 1 - position), where there is one
        digit = (values // 10 ** np.maximum(lengths - 1 - position, 0)) % 10
        text |= np.where(position < lengths, digit + ord("0"), 0).astype(WORD) << WORD(8 * position)
    return text, lengths.astype(WORD)


@functools.cache
def _pair_words() -> np.ndarray:
    """``a.b`` for every pair of octets (index ``a << 8 | b``): the text in the low 7 bytes, its length on top.

    Two lookups per address (the table is 512 KiB, so it stays in L2) instead of four octet lookups and
    the shifts that join them.
    """
    text, lengths = _octet_words()
    first, second = np.repeat(np.arange(256), 256), np.tile(np.arange(256), 256)
    width = lengths[first]
    words = text[first] | (DOT << (width << WORD(3))) | (text[second] << ((width + WORD(1)) << WORD(3)))
    return words | ((width + lengths[second] + WORD(1)) << WORD(56))


def format_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, 16) IPv4-mapped addresses -> (rows, 2) text words (``rows.windows`` layout) and lengths."""
    pairs = matrix.view(">u2")
    table = _pair_words()
    high, low = table[pairs[:, 6]], table[pairs[:, 7]]
    high_length, low_length = high >> WORD(56), low >> WORD(56)
    high &= _TEXT
    low &= _TEXT
    high |= DOT << (high_length << WORD(3))
    shift = (high_length + WORD(1)) << WORD(3)
    words = np.empty((len(matrix), 2), WORD)
    words[:, 0] = high | (low << shift)
    words[:, 1] = low >> (WORD(64) - shift)
    return words, (high_length + low_length + WORD(1)).astype(np.int64)


@functools.cache
def _layouts() -> np.ndarray:
    """Where the octets of a dotted quad are, by its shape: ``key`` -> descriptor (0: not a dotted quad).

    The key is the text's dot positions as bits plus a bit at its length (at most 15, so 16 bits). Only the
    81 shapes of four octets of one to three digits have a descriptor, eight shift counts in bits (a byte
    each, read as uint8 columns): for octet 1, ``8 * (3 - digits)``, the left shift that right-aligns it in
    the low three bytes; for octets 2-4, the right shift that brings the octet's first digit to byte 0 (of
    bytes 0-7 for octet 2, of bytes 4-11 for octets 3 and 4), then their left shift as for octet 1 (32 more
    for octets 2 and 4, which go to the high half of a word).
    """
    layouts = np.zeros((1 << 16, 8), np.uint8)
    for digits in itertools.product((1, 2, 3), repeat=4):
        firsts = np.cumsum((0, *digits[:3])) + np.arange(4)  # the byte where each octet starts
        key = sum(1 << int(first - 1) for first in firsts[1:]) | 1 << int(firsts[3] + digits[3])
        aligns = [8 * (3 - count) + 32 * (octet % 2) for octet, count in enumerate(digits)]
        layouts[key] = [aligns[0], 8 * firsts[1], aligns[1], 8 * (firsts[2] - 4), aligns[2],
                        8 * (firsts[3] - 4), aligns[3], 0]  # fmt: skip
    return layouts.view(WORD)[:, 0]


def _bits(flags: np.ndarray) -> np.ndarray:
    """(rows, 16) booleans -> one 16-bit mask per row (bit i = byte i)."""
    return np.packbits(flags.reshape(-1), bitorder="little").view(np.uint16)


def parse_rows(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dotted quads at ``starts``/``lengths`` in ``data`` (bytes) -> (address, parsed).

    ``address`` is uint32 whose bytes are the four octets in order (network order); rows that are not a
    dotted quad have ``parsed`` False. Shape, characters and leading zeros are checked on 16-bit masks of
    the row's bytes; the shape (``_layouts``) says where each octet starts, so each is cut out with two
    shifts, and its digits are weighted by multiplication, two octets per word.
    """
    fits = (lengths >= 7) & (lengths <= MAX_TEXT)
    rows = windows(data, starts, None, 2)  # bytes past the text are masked off the bits below
    text = rows.view(np.uint8)
    length_bit = np.uint32(1) << np.where(fits, lengths, 0).astype(np.uint32)
    inside = (length_bit - np.uint32(1)).astype(np.uint16)
    dot_bits = _bits(text == ord(".")) & inside
    digit_bits = _bits((text - np.uint8(ord("0"))) < np.uint8(10)) & inside
    parsed = fits & ((dot_bits | digit_bits) == inside)
    first_digits = ((dot_bits << np.uint16(1)) | np.uint16(1)) & digit_bits
    leading_zeros = first_digits & _bits(text == ord("0")) & (digit_bits >> np.uint16(1))
    parsed &= leading_zeros == 0
    layout = _layouts()[np.where(parsed, dot_bits | length_bit, 0)]
    parsed &= layout != 0
    shifts = layout.view(np.uint8).reshape(-1, 8)
    low, high = rows[:, 0] ^ _ZERO_DIGITS, rows[:, 1] ^ _ZERO_DIGITS  # digits as their values
    middle = (low >> WORD(32)) | (high << WORD(32))
    fourth = (middle >> shifts[:, 5]) | (high >> (shifts[:, 5] - np.uint8(32)))  # uint8 wrap: past 64, gives 0
    octets = (low, low >> shifts[:, 1], middle >> shifts[:, 3], fourth)
    values = []
    for pair in (0, 1):  # octets 1 and 2, then 3 and 4: the first in the low 32 bits, the second in the high
        lanes = ((octets[2 * pair] << shifts[:, 4 * pair]) & _THREE_BYTES) | (
            (octets[2 * pair + 1] << shifts[:, 4 * pair + 2]) & _HIGH_THREE_BYTES
        )
        values.append(
            (lanes & _LANE_BYTES) * WORD(100)
            + ((lanes >> WORD(8)) & _LANE_BYTES) * WORD(10)
            + ((lanes >> WORD(16)) & _LANE_BYTES)
        )
    packed = values[0] | (values[1] << WORD(16))  # bytes: octet 1, 0, octet 3, 0, octet 2, 0, octet 4
    parsed &= (packed & ~WORD(0x00FF00FF00FF00FF)) == 0  # every octet <= 255
    return (packed | (packed >> WORD(24))).astype(np.uint32), parsed
