"""Timestamps as ISO 8601 text for a whole column at once: ``2024-05-01T13:00:00.123456789Z``.

Every value of a column has the same width (date, time, one fraction digit per stored digit of the unit,
``Z`` when the column has a zone), so the text is one byte matrix built from 64-bit words, eight ASCII
digits per word computed in every lane at once (SWAR) with numpy integer arithmetic, the civil date from
the day number by H. Hinnant's ``civil_from_days``; Arrow takes the matrix as a string array without a
copy. The output is byte for byte what ``pyarrow.compute.strftime`` gives with ``%Y-%m-%dT%H:%M:%S``
(+ ``Z``; the test compares them on every unit). Measured on 2 M nanosecond timestamps on this 2-core
machine under load: 2.2–5.9 M values/s, strftime 0.19–0.24 M/s; CSV and JSON output of flows (three times
per row) had spent most of their time there. Years outside 0000–9999, which strftime prints in other
widths, go to strftime.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_UNIT_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_SECONDS_PER_DAY = 86_400
_FIRST, _LAST = -719_528, 2_932_896  # days from 1970-01-01 to 0000-01-01 and to 10000-01-01
_WORD = np.uint64
_BLOCK = 1 << 16
"""Rows formatted per step: the dozen temporaries of a step stay in the caches."""


def format_timestamps(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """ISO 8601 text of a timestamp column (null stays null)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    kind = array.type
    assert pa.types.is_timestamp(kind)
    zone = kind.tz is not None
    ticks = array.cast(pa.int64()).fill_null(0).to_numpy()
    per_second = _PER_SECOND[kind.unit]
    per_day = per_second * _SECONDS_PER_DAY
    digits = _UNIT_DIGITS[kind.unit]
    width = 19 + (digits + 1 if digits else 0) + zone
    outside = len(ticks) and (ticks.min() // per_day < _FIRST or ticks.max() // per_day >= _LAST)
    if outside or len(ticks) * width >= 1 << 31:  # other widths, or more text than 32-bit offsets reach
        return pc.strftime(array, "%Y-%m-%dT%H:%M:%SZ" if zone else "%Y-%m-%dT%H:%M:%S")
    text = np.empty((len(ticks), width), np.uint8)
    for first in range(0, len(ticks), _BLOCK):
        rows = _rows(ticks[first : first + _BLOCK], per_second, 10 ** (9 - digits))
        if zone:
            rows[:, width - 1] = ord("Z")
        text[first : first + _BLOCK] = rows[:, :width]
    offsets = np.arange(0, (len(ticks) + 1) * width, width, dtype=np.int32)
    validity = pc.is_valid(array).buffers()[1] if array.null_count else None
    return pa.Array.from_buffers(
        pa.string(), len(ticks), [validity, pa.py_buffer(offsets), pa.py_buffer(text)], array.null_count
    )


def _rows(ticks: np.ndarray, per_second: int, to_nanos: int) -> np.ndarray:
    """``YYYY-MM-DDTHH:MM:SS.fffffffff`` and two spare bytes, as rows of four words (the caller cuts the
    fraction to the unit's digits and puts the ``Z``)."""
    seconds, fraction = np.divmod(ticks, per_second)
    days, clock = np.divmod(seconds, _SECONDS_PER_DAY)
    year, month, day = _civil(days)
    date = _ascii8((year * 10_000 + month * 100 + day).astype(_WORD))  # YYYYMMDD
    time = _ascii8((clock // 3600 * 10_000 + clock % 3600 // 60 * 100 + clock % 60).astype(_WORD))  # 00HHMMSS
    nanos = fraction.astype(_WORD) * _WORD(to_nanos)
    leading = _ascii8(nanos // _WORD(10))  # the first 8 of 9 fraction digits
    words = np.empty((len(ticks), 4), _WORD)
    words[:, 0] = _bytes(date, 0, 4, 0) | _char("-", 4) | _bytes(date, 4, 2, 5) | _char("-", 7)
    words[:, 1] = _bytes(date, 6, 2, 0) | _char("T", 2) | _bytes(time, 2, 2, 3) | _char(":", 5) | _bytes(time, 4, 2, 6)
    words[:, 2] = _char(":", 0) | _bytes(time, 6, 2, 1) | _char(".", 3) | _bytes(leading, 0, 4, 4)
    words[:, 3] = _bytes(leading, 4, 4, 0) | (nanos % _WORD(10) + _WORD(ord("0"))) << _WORD(32)
    return words.view(np.uint8)


def _bytes(word: np.ndarray, first: int, count: int, to: int) -> np.ndarray:
    """Bytes ``first .. first + count - 1`` of each word, moved to byte ``to`` of an output word."""
    mask = _WORD((1 << (8 * count)) - 1)
    return ((word >> _WORD(8 * first)) & mask) << _WORD(8 * to)


def _char(char: str, position: int) -> np.uint64:
    return _WORD(ord(char) << (8 * position))


def _ascii8(values: np.ndarray) -> np.ndarray:
    """Numbers below 10**8 as eight ASCII digits in one word, the first digit in the lowest byte (SWAR: the
    halves, then the quarters, then the digits split by multiplying with a reciprocal in every lane at once)."""
    high = values // _WORD(10_000)
    lanes = high | (values - high * _WORD(10_000)) << _WORD(32)
    hundreds = (lanes * _WORD(10_486)) >> _WORD(20) & _WORD(0x0000007F0000007F)  # x // 100 for x < 10**4
    lanes = hundreds | (lanes - hundreds * _WORD(100)) << _WORD(16)
    tens = (lanes * _WORD(103)) >> _WORD(10) & _WORD(0x000F000F000F000F)  # x // 10 for x < 100
    lanes = tens | (lanes - tens * _WORD(10)) << _WORD(8)
    return lanes + _WORD(0x3030303030303030)


def _civil(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(year, month, day) of days since 1970-01-01 in the proleptic Gregorian calendar (Hinnant's
    ``civil_from_days``: eras of 400 years, March-based years)."""
    z = days + 719_468
    era = np.floor_divide(z, 146_097)
    day_of_era = z - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1_460 + day_of_era // 36_524 - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = np.where(month_index < 10, month_index + 3, month_index - 9)
    year = year_of_era + era * 400 + (month <= 2)
    return year, month, day
