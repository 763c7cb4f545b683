import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from flowscope.lake import Lake, LakeWriter
from flowscope.query import open_lake
from helpers import HOUR_NS, flows


def count(lake_dir: Path, sql: str = "SELECT count(*), count(DISTINCT bytes) FROM flows") -> tuple:
    with open_lake(lake_dir) as con:
        return con.execute(sql).fetchone()


def test_rows_land_in_hour_partitions(lake_dir):
    with LakeWriter(lake_dir) as writer:
        writer.write(flows(10, spacing_ns=HOUR_NS // 2))
    parts = sorted(p.relative_to(lake_dir / "flows").parent.as_posix() for p in Lake.at(lake_dir).files("flows"))
    assert parts == [f"date=2024-05-01/hour={h:02d}" for h in range(5)]
    assert count(lake_dir) == (10, 10)
    assert count(lake_dir, "SELECT min(hour), max(hour), min(date)::VARCHAR FROM flows") == (0, 4, "2024-05-01")


def test_nothing_visible_until_flushed_and_no_temp_files_left(lake_dir):
    lake_dir.mkdir()  # the writer makes it on its first flush; a query before that finds no lake
    writer = LakeWriter(lake_dir, max_rows=1000, max_age=3600)
    writer.write(flows(500))
    assert count(lake_dir)[0] == 0
    writer.write(flows(600, first_id=500))
    assert count(lake_dir)[0] == 1100
    writer.close()
    assert not list(lake_dir.rglob("*.tmp"))


def test_flush_if_due_publishes_old_buffers(lake_dir):
    writer = LakeWriter(lake_dir, max_age=0.05)
    writer.max_age = 3600
    writer.write(flows(5))
    writer.max_age = 0.05
    time.sleep(0.06)
    assert writer.flush_if_due()
    assert count(lake_dir)[0] == 5


def test_several_processes_write_one_lake(lake_dir):
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from helpers import flows
        from flowscope.lake import LakeWriter
        first = int(sys.argv[1])
        with LakeWriter({str(lake_dir)!r}, max_rows=700) as writer:
            for i in range(10):
                writer.write(flows(300, first_id=first + i * 300))
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(k * 100_000)]) for k in range(3)]
    assert all(p.wait(60) == 0 for p in procs)
    assert count(lake_dir) == (9000, 9000)


def test_killed_writer_loses_at_most_its_unflushed_buffer(lake_dir, tmp_path):
    """SIGKILL mid-stream: the lake still reads, and only rows after the last flush are missing."""
    max_rows = 5000
    progress = tmp_path / "progress"
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from helpers import flows
        from flowscope.lake import LakeWriter
        writer = LakeWriter({str(lake_dir)!r}, max_rows={max_rows}, max_age=3600)
        sent = 0
        while True:
            writer.write(flows(1000, first_id=sent))
            sent += 1000
            with open({str(progress)!r} + ".tmp", "w") as f:
                f.write(str(sent))
            os.replace({str(progress)!r} + ".tmp", {str(progress)!r})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if progress.exists() and int(progress.read_text()) >= 23_000:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    sent = int(progress.read_text())
    stored, distinct = count(lake_dir)
    assert stored == distinct
    assert stored % max_rows == 0
    # Lost: at most the unflushed buffer. The progress file trails the writer by up to one batch.
    assert -1000 <= sent - stored < max_rows + 1000
    for path in Lake.at(lake_dir).files("flows"):
        assert pq.ParquetFile(path).metadata.num_rows > 0  # every published file is complete


def test_partition_time_falls_back_to_time_received(lake_dir):
    table = flows(3)
    table = table.set_column(table.schema.get_field_index("time_received"), "time_received", table["time_flow_start"])
    table = table.set_column(
        table.schema.get_field_index("time_flow_start"), "time_flow_start", pa.nulls(3, table["time_flow_start"].type)
    )
    with LakeWriter(lake_dir) as writer:
        writer.write(table)
    assert count(lake_dir, "SELECT min(date)::VARCHAR, count(*) FROM flows") == ("2024-05-01", 3)


def test_buffer_also_flushes_by_size(lake_dir):
    writer = LakeWriter(lake_dir, max_rows=10**9, max_bytes=1, max_age=3600)
    writer.write(flows(10))
    assert count(lake_dir)[0] == 10
    writer.close()
