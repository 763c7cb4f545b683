"""Lake views pick "last" records by start time, then by the order lake files were written."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from flowscope.lake import Lake, LakeWriter
from flowscope.lake.maintenance import compact
from flowscope.query import open_lake
from flowscope.reduce import Reduction
from flowscope.reduce.sql import reduce_sql
from flowscope.schema import conform


def write_files(lake_dir: Path, ttls: range, others: int = 0, port: int = 1000) -> None:
    """One lake file per TTL, each holding the pair from ``port`` with the same start time (and ``others`` other
    pairs)."""
    start = pa.array([1_500_000_000_000_000_000] * (1 + others), pa.timestamp("ns", "UTC"))
    with LakeWriter(lake_dir) as writer:
        for ttl in ttls:
            row = {"src_port": pa.array(range(port, port + 1 + others), pa.uint16()),
                   "dst_port": pa.array([80] * (1 + others), pa.uint16()), "time_flow_start": start,
                   "time_flow_end": start, "ip_ttl": pa.array([ttl] * (1 + others), pa.uint8()),
                   "bytes": pa.array([10] * (1 + others), pa.uint64())}  # fmt: skip
            writer.write(conform(pa.table(row)))
            writer.flush()


def last_pair(lake_dir: Path) -> list[tuple]:
    with open_lake(lake_dir, views=["pairs"]) as con:
        return con.execute("SELECT ip_ttl, bytes FROM pairs WHERE src_port = 1000").fetchall()


def test_equal_start_times_across_files_follow_write_order(lake_dir: Path) -> None:
    write_files(lake_dir, range(1, 13))  # twelve files in the same second: their sequence numbers pass 9 -> 10
    assert len(list(lake_dir.glob("flows/*/*/*.parquet"))) == 12
    assert last_pair(lake_dir) == [(12, 120)]


def test_a_compacted_file_sorts_before_files_written_after_it(lake_dir: Path) -> None:
    write_files(lake_dir, range(1, 4))
    compact(Lake(lake_dir))
    write_files(lake_dir, range(4, 5))
    assert len(list(lake_dir.glob("flows/*/*/*.parquet"))) == 2
    assert last_pair(lake_dir) == [(4, 40)]


def test_compaction_merges_a_run_of_files_so_write_order_holds(lake_dir: Path) -> None:
    write_files(lake_dir, range(1, 2))
    write_files(lake_dir, range(2, 3), others=5_000)  # a large file between two small ones
    write_files(lake_dir, range(3, 4), port=9000)  # another pair
    partition = next(lake_dir.glob("flows/*/*"))
    sizes = sorted(f.stat().st_size for f in partition.glob("*.parquet"))
    compact(Lake(lake_dir), small_file_bytes=sizes[-1])  # merges the two small ones and the large one between
    assert len(list(partition.glob("*.parquet"))) == 1
    assert last_pair(lake_dir) == [(2, 20)]


@pytest.mark.parametrize(("file", "row"), [(0, 1 << 32), (1 << 32, 0), (7, (1 << 32) - 1)])
def test_record_numbers_take_32_bits_each(file: int, row: int) -> None:
    """A record order is one integer: time, then 32 bits of file and 32 of row number; beyond is an error."""
    con = duckdb.connect()
    relation = (
        f"(SELECT 1::USMALLINT AS src_port, TIMESTAMPTZ '2020-01-01' AS time_flow_start, 5::UBIGINT AS bytes, "
        f"{file}::UBIGINT AS __file, {row}::BIGINT AS __row)"
    )
    columns = [("src_port", "USMALLINT"), ("time_flow_start", "TIMESTAMP WITH TIME ZONE"), ("bytes", "UBIGINT")]
    sql = reduce_sql(
        Reduction("r", "", key=("src_port",), fields={"bytes": "sum"}), relation, columns, "__file", "__row"
    )
    if row < 1 << 32 and file < 1 << 32:
        assert con.sql(sql).fetchall() == [(1, dt.datetime(2020, 1, 1, tzinfo=dt.UTC), 5)]
    else:
        with pytest.raises(duckdb.Error, match="file and row numbers below 4294967296"):
            con.sql(sql).fetchall()
