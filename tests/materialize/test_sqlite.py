"""The SQLite target's bulk load: every value back exactly as stored (the text and types the target always gave:
Arrow's own formatting of times, integers as integers), nulls as NULL, all-null columns left out."""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flowscope.errors import FlowscopeError
from flowscope.materialize import sqlite_load
from flowscope.materialize.sqlite import SqliteTarget, sqlite_type
from flowscope.materialize.target import Change, LakeState, Rows

INT64_MAX = 2**63 - 1


def loaded(column: pa.Array) -> list[object]:
    """``column`` through the bulk load into a table of the target's column type, read back in order."""
    con = sqlite3.connect(":memory:")
    con.execute(f"CREATE TABLE t (i INTEGER, v {sqlite_type(column.type)})")
    sqlite_load.insert(con.cursor(), "t", pa.table({"i": pa.array(range(len(column))), "v": column}))
    return [value for (value,) in con.execute("SELECT v FROM t ORDER BY i")]


def arrow_text(column: pa.Array) -> list[object]:
    """The oracle for dates and times: Arrow's strftime, what the target bound before the bulk load."""
    if pa.types.is_date(column.type):
        return pc.strftime(column.cast(pa.timestamp("s")), format="%Y-%m-%d").to_pylist()
    zone = column.type.tz
    return pc.strftime(column, format="%Y-%m-%dT%H:%M:%SZ" if zone else "%Y-%m-%dT%H:%M:%S").to_pylist()


NANOS = [0, 1_500_000_123_456_789, None, -86_400_000_000_123]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("zone", [None, "UTC"])
def test_timestamps_load_as_arrow_formats_them(unit: str, zone: str | None) -> None:
    per = {"s": 10**9, "ms": 10**6, "us": 1000, "ns": 1}[unit]
    column = pa.array([None if v is None else v // per for v in NANOS], pa.timestamp(unit, zone))
    assert loaded(column) == arrow_text(column)


@pytest.mark.parametrize("kind", [pa.date32(), pa.date64()])
def test_dates_load_as_arrow_formats_them(kind: pa.DataType) -> None:
    column = pa.array([dt.date(2020, 1, 2), None, dt.date(1969, 12, 31)], kind)
    assert loaded(column) == arrow_text(column) == ["2020-01-02", None, "1969-12-31"]


@pytest.mark.parametrize(
    "column",
    [
        pa.array([INT64_MAX, -(2**63), 0, None, -1, 7], pa.int64()),
        pa.array([INT64_MAX, 0, None, 2**53 + 1], pa.uint64()),
        pa.array([1, 2, 255], pa.uint8()),
        pa.array([True, None, False], pa.bool_()),
        pa.array(["a", None, "", " ", "é\x00\n\xff ", "x" * 300, "  "]),
        pa.array([b"\xff\x20", None, b"", b"  ", b"\x00"], pa.binary()),
        pa.array(["b", "a", "b", None], pa.dictionary(pa.int8(), pa.string())),
    ],
)
def test_values_load_exactly(column: pa.Array) -> None:
    expected = column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column
    values = expected.to_pylist()
    if pa.types.is_boolean(column.type):
        values = [None if v is None else int(v) for v in values]
    ours = loaded(column)
    assert ours == values and [type(v) for v in ours] == [type(v) for v in values]


def test_floats_load_exactly() -> None:
    values = [0.1, 1 / 3, -0.5, 5e-324, 1.7976931348623157e308, math.inf, -math.inf, None, math.nan, 1.0]
    ours = loaded(pa.array(values, pa.float64()))
    assert ours[:7] == values[:7] and ours[7] is None and ours[8] is None and ours[9] == 1.0
    assert all(type(v) is float for v in ours[:7] + ours[9:])
    assert loaded(pa.array([1.5, None], pa.float32())) == [1.5, None]


def test_counters_beyond_sqlite_integers_are_an_error() -> None:
    with pytest.raises(FlowscopeError, match="bytes holds 9223372036854775808"):
        sqlite_load._column("bytes", pa.chunked_array([pa.array([1, INT64_MAX + 1], pa.uint64())]))


def test_unknown_types_are_an_error() -> None:
    with pytest.raises(FlowscopeError, match="column d has type"):
        sqlite_load._column("d", pa.chunked_array([pa.array([dt.timedelta(1)])]))


@pytest.mark.parametrize(("rows", "cells"), [(2, 1 << 20), (1 << 17, 64)])
def test_chunks_cut_anywhere_keep_every_row(monkeypatch: pytest.MonkeyPatch, rows: int, cells: int) -> None:
    """Chunks of two rows, or chunks narrowed by a long value down to one row: the same rows, in order."""
    monkeypatch.setattr(sqlite_load, "CHUNK_ROWS", rows)
    monkeypatch.setattr(sqlite_load, "CHUNK_BYTES", cells)
    column = pa.array(["a", None, "b" * 200, "", "cc", None, "d"])
    assert loaded(column) == column.to_pylist()
    numbers = pa.array([5, None, 123456789, 1, None], pa.int32())
    assert loaded(numbers) == numbers.to_pylist()


def test_insert_leaves_out_columns_null_in_every_row() -> None:
    rows = pa.table({"a": [1, 2, 3, 4], "b": [None, None, "x", None], "c": pa.array([None] * 4, pa.int64())})
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (a INTEGER, b TEXT, c INTEGER DEFAULT 9)")
    sqlite_load.insert(con.cursor(), "t", rows)
    assert con.execute("SELECT a, b, c FROM t ORDER BY a").fetchall() == [
        (1, None, 9), (2, None, 9), (3, "x", 9), (4, None, 9)
    ]  # fmt: skip


def test_target_round_trips_edge_values(tmp_path: Path) -> None:
    """Through the target, first run and upsert: IPv6 and IPv4 addresses as text, 2**63-1 counters, nulls."""
    addresses = ["2001:db8::1", "::ffff:10.0.0.1", "fe80::1:2:3:4", "::"]
    as_bytes = [ipaddress.IPv6Address(a).packed for a in addresses]
    rows = pa.table(
        {
            "src_addr": pa.array(as_bytes, pa.binary(16)),
            "src_port": pa.array([1, 2, 3, 4], pa.uint16()),
            "bytes": pa.array([INT64_MAX, None, 0, 2**53 + 1], pa.uint64()),
            "time_flow_start": pa.array([0, None, 1, 2], pa.timestamp("ns", "UTC")),
            "community_id": pa.array(["1:x", None, "", "1:y"]),
        }
    )
    target = SqliteTarget(tmp_path / "t.db")
    for seen, digest in ((None, "one"), ("one", "two")):
        key = ("src_addr", "src_port")
        target.apply(Change("t", key, Rows([rows], True, key, "flows"), "flows", LakeState(digest, {}), seen))
    stored = target.con.execute("SELECT src_addr, bytes, time_flow_start, community_id FROM t ORDER BY src_port")
    assert stored.fetchall() == [
        ("2001:db8::1", INT64_MAX, "1970-01-01T00:00:00.000000000Z", "1:x"),
        ("10.0.0.1", None, None, None),
        ("fe80::1:2:3:4", 0, "1970-01-01T00:00:00.000000001Z", ""),
        ("::", 2**53 + 1, "1970-01-01T00:00:00.000000002Z", "1:y"),
    ]
    target.close()


def test_target_tables_are_without_rowid_and_keep_upserting(tmp_path: Path) -> None:
    """A table the target creates is keyed by its primary key alone (no rowid b-tree beside the key index); a
    second run upserts into it and deletes vanished keys."""
    first = pa.table({"k": pa.array([3, 1, 2], pa.int64()), "v": pa.array(["c", "a", "b"])})
    second = pa.table({"k": pa.array([2, 4], pa.int64()), "v": pa.array(["B", "d"])})
    target = SqliteTarget(tmp_path / "t.db")
    for rows, seen, digest in ((first, None, "one"), (second, "one", "two")):
        target.apply(Change("t", ("k",), Rows([rows], True, ("k",), "flows"), "flows", LakeState(digest, {}), seen))
    (sql,) = target.con.execute("SELECT sql FROM sqlite_master WHERE name = 't'").fetchone()
    assert sql.endswith("WITHOUT ROWID")
    assert target.con.execute("SELECT k, v FROM t ORDER BY k").fetchall() == [(2, "B"), (4, "d")]
    target.close()


def test_insert_follows_the_order_given() -> None:
    rows = pa.table({"a": [10, 20, 30, 40], "b": ["w", None, "yy", "z"]})
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (a INTEGER, b TEXT)")
    sqlite_load.insert(con.cursor(), "t", rows, np.array([2, 0, 3, 1]))
    assert con.execute("SELECT a, b FROM t ORDER BY rowid").fetchall() == [(30, "yy"), (10, "w"), (40, "z"), (20, None)]


def test_an_error_making_later_cells_stops_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cells are made statement by statement: an error making later ones stops the load after the earlier ones."""
    monkeypatch.setattr(sqlite_load, "CHUNK_ROWS", 2)
    rows = pa.table({"a": pa.array([1, 2, 3, 2**63], pa.uint64())})
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (a INTEGER)")
    with pytest.raises(FlowscopeError, match="beyond SQLite's largest INTEGER"):
        sqlite_load.insert(con.cursor(), "t", rows)
    assert con.execute("SELECT a FROM t").fetchall() == [(1,), (2,)]
