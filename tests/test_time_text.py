"""Timestamp text for whole columns equals Arrow's strftime, byte for byte, in every unit, zone and edge."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flowscope.time_text import format_timestamps

SPAN = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def _strftime(array: pa.Array) -> pa.Array:
    return pc.strftime(array, "%Y-%m-%dT%H:%M:%SZ" if array.type.tz else "%Y-%m-%dT%H:%M:%S")


@pytest.mark.parametrize("unit", list(SPAN))
@pytest.mark.parametrize("zone", [None, "UTC"])
def test_equals_strftime(unit: str, zone: str | None) -> None:
    rng = np.random.default_rng(len(unit))
    n = 50_000
    # years 0001-9999 (leap days, centuries, the epoch's neighbourhood), every fraction digit
    seconds = np.r_[rng.integers(-62_000_000_000, 253_000_000_000, n), -1, 0, 1, 951_782_400, 4_107_456_000]
    ticks = seconds * SPAN[unit] + rng.integers(0, SPAN[unit], len(seconds))
    array = pa.array(ticks, pa.timestamp(unit, zone), mask=rng.random(len(ticks)) < 0.1)
    assert format_timestamps(array).equals(_strftime(array))
    sliced = array.slice(13, 2_000)  # an offset into the validity bitmap
    assert format_timestamps(sliced).equals(_strftime(sliced))
    chunked = pa.chunked_array([array.slice(0, 10), array.slice(10, 30)])
    assert format_timestamps(chunked).equals(_strftime(chunked.combine_chunks()))


def test_edges() -> None:
    empty = pa.array([], pa.timestamp("ns", "UTC"))
    assert format_timestamps(empty).equals(_strftime(empty))
    nulls = pa.nulls(3, pa.timestamp("us"))
    assert format_timestamps(nulls).to_pylist() == [None] * 3
    far = pa.array([-70_000_000_000, 260_000_000_000], pa.timestamp("s", "UTC"))  # years -248 and 10209
    assert format_timestamps(far).equals(_strftime(far))
