"""Comparing the flows of two lakes (or a lake and a file) as multisets of whole rows."""

from __future__ import annotations

from pathlib import Path

import duckdb


def flows_of(lake: Path) -> str:
    return f"read_parquet('{lake}/flows/**/*.parquet', hive_partitioning = false)"


def flow_count(lake: Path) -> int:
    if not list((lake / "flows").rglob("*.parquet")):
        return 0
    return int(duckdb.sql(f"SELECT count(*) FROM {flows_of(lake)}").fetchall()[0][0])


def assert_same_flows(expected: Path, actual: Path) -> None:
    """Every column of every flow equal, each flow as often in both (order aside)."""
    left, right = flows_of(expected), flows_of(actual)
    missing = duckdb.sql(f"SELECT count(*) FROM (SELECT * FROM {left} EXCEPT ALL SELECT * FROM {right})").fetchall()
    extra = duckdb.sql(f"SELECT count(*) FROM (SELECT * FROM {right} EXCEPT ALL SELECT * FROM {left})").fetchall()
    assert (missing, extra) == ([(0,)], [(0,)]), f"{missing} flows missing, {extra} flows extra"
    assert flow_count(expected) > 0
