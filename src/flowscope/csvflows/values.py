"""Vectorised conversion of CSV text columns into flow-schema values.

Every converter takes a column as the reader parsed it (text; raw bytes for addresses and timestamps;
numbers on the reader's fast path) and returns the converted column plus a boolean
mask of rows whose text could not be read (``None`` when all rows were fine), so the
reader can count and drop those rows (or stop, with ``--strict``) instead of failing
the whole batch. Repeating values (timestamps, protocol names, flags, MACs) are
converted once per distinct value and gathered back; addresses are parsed row by row, vectorised.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope import addresses
from flowscope.schema import TIMESTAMP

Converted = tuple[pa.Array, np.ndarray | None]

_NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"

# nfdump and other tools print well-known protocols by name (IANA protocol numbers).
PROTOCOL_NUMBERS = {
    "icmp": 1, "igmp": 2, "ipip": 4, "ipinip": 4, "tcp": 6, "egp": 8, "udp": 17, "ipv6": 41, "rsvp": 46,
    "gre": 47, "esp": 50, "ah": 51, "icmp6": 58, "ipv6-icmp": 58, "icmpv6": 58, "eigrp": 88, "ospf": 89,
    "pim": 103, "vrrp": 112, "l2tp": 115, "sctp": 132, "udplite": 136,
}  # fmt: skip

# nfdump's flag string "CEUAPRSF": one character per TCP flag bit, '.' when clear.
_FLAG_LETTERS = "CEUAPRSF"


def _bad_mask(text: pa.Array, converted: pa.Array) -> np.ndarray | None:
    """Rows that had text but converted to null."""
    bad = pc.and_(pc.is_valid(text), pc.is_null(converted))
    mask = bad.to_numpy(zero_copy_only=False)
    return mask if mask.any() else None


def to_float(text: pa.Array) -> Converted:
    """Decimal or exponent notation (``3e+05``); unreadable text becomes null."""
    if pa.types.is_floating(text.type):
        return text, None
    try:
        return pc.cast(text, pa.float64()), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        readable = pc.match_substring_regex(text, _NUMBER)
        numbers = pc.cast(pc.if_else(readable, text, pa.scalar(None, text.type)), pa.string())  # ASCII when matched
        values = pc.cast(pc.utf8_trim_whitespace(numbers), pa.float64())  # the pattern allows padding, a cast not
        return values, _bad_mask(text, values)


def to_unsigned(text: pa.Array, out_type: pa.DataType) -> Converted:
    """Whole non-negative numbers that fit ``out_type``; ``3e+05`` and ``12.0`` are accepted.

    ``text`` may already be float64 (the reader's fast path parses numeric columns as numbers).
    """
    try:
        return pc.cast(text, out_type), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    floats, _ = to_float(text)
    limit = float(np.iinfo(out_type.to_pandas_dtype()).max)
    whole = pc.and_(
        pc.equal(pc.floor(floats), floats), pc.and_(pc.greater_equal(floats, 0), pc.less_equal(floats, limit))
    )
    values = pc.cast(pc.if_else(whole, floats, pa.scalar(None, pa.float64())), out_type)
    return values, _bad_mask(text, values)


def shown(value: object) -> str:
    """A cell as text for messages (repeating columns are read as raw bytes)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _as_text(raw: pa.Array) -> pa.Array:
    """Raw bytes (how the reader parses repeating columns) as text; values that are not UTF-8 get
    replacement characters, which no converter accepts."""
    try:
        return pc.cast(raw, pa.string())
    except pa.ArrowInvalid:
        return pa.array([None if v is None else shown(v) for v in raw.to_pylist()], pa.string())


def _text(values: pa.Array) -> pa.Array:
    return _as_text(values) if pa.types.is_binary(values.type) else values


def _distinct(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Each distinct value once, as text, plus each row's index into them."""
    encoded = pc.dictionary_encode(text)
    return _text(encoded.dictionary), encoded.indices


def _runs(text: pa.Array) -> tuple[pa.Array, pa.Array] | None:
    """The first value of each run of equal neighbours, as text, plus each row's run; None when runs are short.

    The times of an export sorted by time come in runs (the flows of one second): reading one value per run
    costs less than hashing every row (``_distinct``).
    """
    if len(text) < 2:
        return None
    starts = np.ones(len(text), bool)
    starts[1:] = ~pc.fill_null(pc.equal(text[1:], text[:-1]), False).to_numpy(zero_copy_only=False)
    first_rows = np.flatnonzero(starts)
    if len(first_rows) > len(text) // 4:
        return None
    return _text(text.take(first_rows)), pa.array(np.cumsum(starts) - 1)


def _map_distinct(text: pa.Array, convert: Callable[[str], object | None], out_type: pa.DataType) -> Converted:
    """Convert each distinct value once in Python (few distinct values: names, flags, MACs)."""
    distinct, indices = _distinct(text)
    converted = pa.array([convert(v) for v in distinct.to_pylist()], out_type)
    values = converted.take(indices)
    return values, _bad_mask(text, values)


def to_protocol(text: pa.Array) -> Converted:
    """IP protocol numbers, or names such as ``TCP`` (nfdump) mapped to their numbers."""
    try:
        return pc.cast(text, pa.uint8()), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass

    def convert(value: str) -> int | None:
        value = value.strip().lower()
        if value.isdigit() and int(value) < 256:
            return int(value)
        return PROTOCOL_NUMBERS.get(value)

    return _map_distinct(text, convert, pa.uint8())


def to_tcp_flags(text: pa.Array) -> Converted:
    """A number, or nfdump's ``...AP.SF`` letters."""
    try:
        return pc.cast(text, pa.uint16()), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass

    def convert(value: str) -> int | None:
        value = value.strip()
        if value.isdigit():
            return int(value) if int(value) < 65536 else None
        if value.startswith("0x"):
            return int(value, 16) if all(c in "0123456789abcdefABCDEF" for c in value[2:]) else None
        if len(value) != len(_FLAG_LETTERS):
            return None
        bits = 0
        for position, (letter, expected) in enumerate(zip(value.upper(), _FLAG_LETTERS, strict=True)):
            if letter == expected:
                bits |= 1 << (7 - position)
            elif letter != ".":
                return None
        return bits

    return _map_distinct(text, convert, pa.uint16())


def to_mac(text: pa.Array) -> Converted:
    """``aa:bb:cc:dd:ee:ff`` (or ``-`` / ``.`` separated) -> the schema's uint64 MAC."""

    def convert(value: str) -> int | None:
        digits = value.strip().replace(":", "").replace("-", "").replace(".", "")
        if len(digits) != 12:
            return None
        try:
            return int(digits, 16)
        except ValueError:
            return None

    return _map_distinct(text, convert, pa.uint64())


def to_address(text: pa.Array) -> Converted:
    """IPv4/IPv6 text (raw bytes) -> binary(16), every row parsed: ``flowscope.addresses.parse_text`` reads
    about 20 M addresses/s, faster than looking them up among those seen before (an ``index_in`` cache
    over the input's distinct addresses measured the same on repeating hosts and 5x slower when every
    record brings new ones)."""
    values = addresses.parse_text(text, errors="null")
    return values, _bad_mask(text, values)


def to_timestamp(text: pa.Array, formats: tuple[str, ...], timezone: str) -> Converted:
    """Naive local times in ``timezone`` -> UTC nanoseconds.

    ``formats`` are strptime patterns tried in order (first match wins); with none,
    ISO 8601 (``2024-05-01 13:00:00.123``) is expected. Each run of one text, or else each distinct text, is
    parsed once.
    """
    distinct, indices = _runs(text) or _distinct(text)
    if formats:
        parsed = pc.strptime(distinct, format=formats[0], unit="ns", error_is_null=True)
        for pattern in formats[1:]:
            if parsed.null_count == distinct.null_count:  # usually the first pattern reads them all
                break
            parsed = pc.coalesce(parsed, pc.strptime(distinct, format=pattern, unit="ns", error_is_null=True))
    else:
        parsed = _iso_times(distinct)
    if timezone.upper() != "UTC":
        parsed = pc.assume_timezone(parsed, timezone=timezone, ambiguous="earliest", nonexistent="earliest")
    values = pc.cast(parsed.take(indices), TIMESTAMP)
    return values, _bad_mask(text, values)


_ISO = r"^\d{4}-\d\d-\d\d([ T]\d\d:\d\d(:\d\d(\.\d+)?)?)?$"


def _iso_times(text: pa.Array) -> pa.Array:
    """ISO 8601 texts as naive times; a ``Z`` (UTC, as flowscope writes times) is dropped."""
    naive = pa.timestamp("ns")
    text = pc.replace_substring_regex(text, "Z$", "")
    try:
        return pc.cast(text, naive)
    except pa.ArrowInvalid:
        readable = pc.if_else(pc.match_substring_regex(text, _ISO), text, pa.scalar(None, pa.string()))
    try:
        return pc.cast(readable, naive)
    except pa.ArrowInvalid:  # ISO-shaped, but no such time (2024-02-30, 25:00) or beyond 1677-2262: one by one
        return pa.array([_one_time(value, naive) for value in readable.to_pylist()], naive)


def _one_time(text: str | None, naive: pa.DataType) -> pa.Scalar | None:
    """A text as a time, None when it is no time nanoseconds since 1970 can hold (only broken files get here)."""
    try:
        return None if text is None else pa.scalar(text).cast(naive)
    except pa.ArrowInvalid:
        return None


def to_epoch_timestamp(text: pa.Array) -> Converted:
    """Unix seconds with an optional fraction (``1653637473.475``) -> UTC nanoseconds (microsecond precision)."""
    seconds, _ = to_float(text)
    fits = pc.and_(pc.greater_equal(seconds, -_EPOCH_LIMIT_S), pc.less_equal(seconds, _EPOCH_LIMIT_S))
    seconds = pc.if_else(fits, seconds, pa.scalar(None, pa.float64()))  # NaN compares false: null as well
    micros = pc.round(pc.multiply(seconds, 1e6))
    values = pc.cast(pc.multiply(pc.cast(micros, pa.int64()), 1000), pa.int64()).cast(TIMESTAMP)
    return values, _bad_mask(text, values)


_EPOCH_LIMIT_S = 9.2e9
"""Unix seconds nanoseconds in int64 hold (+-292 years); a value beyond is unreadable, not an overflow."""
