"""Lake views pick "last" records by start time, then by the order lake files were written."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from flowscope.lake import Lake, LakeWriter, open_lake
from flowscope.lake.maintenance import compact
from flowscope.schema import conform


def write_files(lake_dir: Path, ttls: range) -> None:
    """One lake file per TTL, each holding the same pair with the same start time."""
    start = pa.array([1_500_000_000_000_000_000], pa.timestamp("ns", "UTC"))
    with LakeWriter(lake_dir) as writer:
        for ttl in ttls:
            row = {"src_port": pa.array([1000], pa.uint16()), "dst_port": pa.array([80], pa.uint16()),
                   "time_flow_start": start, "time_flow_end": start, "ip_ttl": pa.array([ttl], pa.uint8()),
                   "bytes": pa.array([10], pa.uint64())}  # fmt: skip
            writer.write(conform(pa.table(row)))
            writer.flush()


def last_pair(lake_dir: Path) -> list[tuple]:
    with open_lake(lake_dir) as con:
        return con.execute("SELECT ip_ttl, bytes FROM pairs").fetchall()


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
