"""Lake views pick "last" records by start time, then by the order lake files were written."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from flowscope.lake import LakeWriter, open_lake
from flowscope.schema import conform


def test_equal_start_times_across_files_follow_write_order(lake_dir: Path) -> None:
    start = pa.array([1_500_000_000_000_000_000], pa.timestamp("ns", "UTC"))
    with LakeWriter(lake_dir) as writer:
        for ttl in range(1, 13):  # twelve files in the same second: their sequence numbers pass 9 -> 10
            writer.write(
                conform(
                    pa.table(
                        {
                            "src_port": pa.array([1000], pa.uint16()),
                            "dst_port": pa.array([80], pa.uint16()),
                            "time_flow_start": start,
                            "time_flow_end": start,
                            "ip_ttl": pa.array([ttl], pa.uint8()),
                            "bytes": pa.array([10], pa.uint64()),
                        }
                    )
                )
            )
            writer.flush()
    with open_lake(lake_dir) as con:
        assert con.execute("SELECT count(*) FROM glob(?)", [f"{lake_dir}/flows/*/*/*.parquet"]).fetchone()[0] == 12
        assert con.execute("SELECT ip_ttl, bytes FROM pairs").fetchall() == [(12, 120)]
