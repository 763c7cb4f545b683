"""The SQLite target's value binding: the same text and nulls as Arrow's own formatting, all-null columns left out."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flowscope.materialize import sqlite


def arrow_bindable(column: pa.Array) -> list[object]:
    """The oracle: what the target bound before binding went through numpy (Arrow strftime, to_pylist)."""
    kind = column.type
    if pa.types.is_date(kind):
        column = pc.strftime(column.cast(pa.timestamp("s")), format="%Y-%m-%d")
    elif pa.types.is_timestamp(kind):
        column = pc.strftime(column, format="%Y-%m-%dT%H:%M:%SZ" if kind.tz else "%Y-%m-%dT%H:%M:%S")
    return column.to_pylist()


NANOS = [0, 1_500_000_123_456_789, None, -86_400_000_000_123]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("zone", [None, "UTC"])
def test_timestamps_bind_as_arrow_formats_them(unit: str, zone: str | None) -> None:
    per = {"s": 10**9, "ms": 10**6, "us": 1000, "ns": 1}[unit]
    column = pa.array([None if v is None else v // per for v in NANOS], pa.timestamp(unit, zone))
    assert sqlite._bindable(column) == arrow_bindable(column)


@pytest.mark.parametrize(
    "column",
    [
        pa.array([dt.date(2020, 1, 2), None, dt.date(1969, 12, 31)], pa.date32()),
        pa.array([dt.date(2020, 1, 2), None, dt.date(1969, 12, 31)], pa.date64()),
        pa.array([1, None, 3], pa.int64()),
        pa.array([1, 2, 255], pa.uint8()),
        pa.array([1.5, -2.0], pa.float64()),
        pa.array(["a", None, "b"]),
        pa.array([True, None, False]),
    ],
)
def test_other_values_bind_as_arrow_gives_them(column: pa.Array) -> None:
    ours, oracle = sqlite._bindable(column), arrow_bindable(column)
    assert ours == oracle and [type(v) for v in ours] == [type(v) for v in oracle]


def test_insert_leaves_out_columns_null_in_a_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite, "INSERT_CHUNK_ROWS", 2)
    rows = pa.table({"a": [1, 2, 3, 4], "b": [None, None, "x", None], "c": pa.array([None] * 4, pa.int64())})
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (a INTEGER, b TEXT, c INTEGER)")
    sqlite._insert(con.cursor(), "t", rows)
    assert con.execute("SELECT a, b, c FROM t ORDER BY a").fetchall() == [
        (1, None, None), (2, None, None), (3, "x", None), (4, None, None)
    ]  # fmt: skip
