"""``read --workers`` and ``watch --workers`` through the command line: the flows equal one process's, failures
publish nothing."""

from __future__ import annotations

import os
import shutil
import signal
import socket
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from tests.jobs.interrupted import assert_ctrl_c_stops_the_workers
from tests.jobs.rotated import ORDER, mixed_packets, rotate

from flowscope.capture.options import MeterOptions
from flowscope.capture.watch import CaptureWatcher
from flowscope.cli import main
from flowscope.jobs import runs
from flowscope.jobs.pool import SPOOL_PREFIX, _make_spool, split_runs
from flowscope.lake import Lake, LakeWriter

TIMEOUTS = ("--active", "30", "--idle", "10")
CUTS = [10.0, 20.0, 40.0, 60.0]


def invoke(lake: Path, *args: str):
    return CliRunner().invoke(main, ["--lake", str(lake), *args], catch_exceptions=False)


def lake_flows(lake: Path) -> pa.Table:
    files = sorted((lake / "flows").rglob("*.parquet"))
    return sort(pa.concat_tables([pq.read_table(f) for f in files])) if files else pa.table({})


def sort(table: pa.Table) -> pa.Table:
    return table.select([name for name in table.column_names if name != "time_received"] + ["time_received"]).sort_by(
        [(name, "ascending") for name in ORDER]
    )


def test_split_runs_cuts_contiguous_runs_of_about_equal_bytes() -> None:
    files = [Path(f"f{i}") for i in range(6)]
    assert split_runs(files, [10, 10, 10, 10, 10, 10], 2) == [files[:3], files[3:]]
    assert split_runs(files, [50, 1, 1, 1, 1, 1], 2) == [files[:1], files[1:]]
    assert split_runs(files[:1], [5], 4) == [files[:1]]
    # later runs cost 1.5 times run 0 per byte: run 0 takes 6 of 10 equal files (6 = 1.5 x 4)
    ten = [Path(f"f{i}") for i in range(10)]
    assert split_runs(ten, [10] * 10, 2, later_cost=1.5) == [ten[:6], ten[6:]]
    assert [len(run) for run in split_runs(ten, [10] * 10, 3, later_cost=1.5)] == [4, 3, 3]


def test_the_spool_is_in_the_temporary_folder_without_room_in_shared_memory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("flowscope.jobs.pool.SHARED_MEMORY", tmp_path / "no-shm")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    spool = _make_spool(1 << 20)
    assert spool.parent == tmp_path and spool.name.endswith(f".{os.getpid()}-" + spool.name.rsplit("-", 1)[1])


def test_read_with_two_workers_equals_one(tmp_path: Path) -> None:
    folder = tmp_path / "rotated"
    rotate(mixed_packets(), CUTS, folder)
    one, two = tmp_path / "one.parquet", tmp_path / "two.parquet"
    assert invoke(tmp_path / "lake", "read", str(folder), "-o", str(one), *TIMEOUTS).exit_code == 0
    result = invoke(tmp_path / "lake", "read", str(folder), "-o", str(two), "--workers", "2", *TIMEOUTS)
    assert result.exit_code == 0, result.output
    assert sort(pq.read_table(two)).equals(sort(pq.read_table(one)))


def test_read_into_the_lake_with_workers_is_recorded_once(tmp_path: Path) -> None:
    folder = tmp_path / "rotated"
    rotate(mixed_packets(), CUTS, folder)
    assert invoke(tmp_path / "one", "read", str(folder), *TIMEOUTS).exit_code == 0
    result = invoke(tmp_path / "three", "read", str(folder), "--workers", "3", *TIMEOUTS)
    assert result.exit_code == 0, result.output
    assert (
        lake_flows(tmp_path / "three")
        .drop_columns(["time_received"])
        .equals(lake_flows(tmp_path / "one").drop_columns(["time_received"]))
    )
    again = invoke(tmp_path / "three", "read", str(folder), "--workers", "3", *TIMEOUTS)
    assert "already in the lake" in again.output  # the ledger knows the files: same options, workers aside


def test_a_killed_worker_is_one_error_and_nothing_is_published(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "rotated"
    rotate(mixed_packets(), CUTS, folder)
    metering = runs.meter_run

    def dies_in_run_two(paths, options, *, index=0, **kwargs):
        if index == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return metering(paths, options, index=index, **kwargs)

    monkeypatch.setattr("flowscope.jobs.pool.meter_run", dies_in_run_two)
    shared = tmp_path / "shm"  # the workers' spool, with one left by a parent killed outright (no such pid)
    (shared / f"{SPOOL_PREFIX}{socket.gethostname().replace('-', '_')}.999999999-x").mkdir(parents=True)
    monkeypatch.setattr("flowscope.jobs.pool.SHARED_MEMORY", shared)
    result = CliRunner().invoke(main, ["--lake", str(tmp_path / "lake"), "read", str(folder), "--workers", "2"])
    assert result.exit_code == 2
    assert "metering worker 2" in result.output and "SIGKILL" in result.output
    assert "Traceback" not in result.output
    assert not list((tmp_path / "lake").rglob("*.parquet"))
    assert not list(shared.iterdir())  # this read's spool and the stale one are gone


def test_an_unreadable_file_fails_the_read_as_with_one_worker(tmp_path: Path) -> None:
    folder = tmp_path / "rotated"
    rotate(mixed_packets(), CUTS, folder)
    broken = sorted(folder.iterdir())[-1]
    broken.write_bytes(broken.read_bytes()[:24] + b"\xff" * 40)  # a header, then a record longer than the file
    one = CliRunner().invoke(main, ["--lake", str(tmp_path / "a"), "read", str(folder), *TIMEOUTS])
    two = CliRunner().invoke(main, ["--lake", str(tmp_path / "b"), "read", str(folder), "--workers", "2", *TIMEOUTS])
    assert (one.exit_code, two.exit_code) == (one.exit_code, one.exit_code)
    if one.exit_code:
        assert one.output.splitlines()[-1] == two.output.splitlines()[-1]
        assert not list((tmp_path / "b").rglob("*.parquet"))
    else:
        assert lake_flows(tmp_path / "b").num_rows == lake_flows(tmp_path / "a").num_rows


def test_a_refused_input_is_one_error_naming_the_way_out(tmp_path: Path) -> None:
    folder = tmp_path / "rotated"
    rotate(mixed_packets(), CUTS, folder)
    result = CliRunner().invoke(
        main, ["--lake", str(tmp_path / "lake"), "read", str(folder), "--workers", "2", "--max-flows", "4", *TIMEOUTS]
    )
    assert result.exit_code == 2 and "--workers 1" in result.output and "cache limit" in result.output
    assert not list((tmp_path / "lake").rglob("*.parquet"))


@pytest.mark.parametrize("workers", ["2", "3"])
def test_watch_with_workers_equals_one_worker_across_a_restart(tmp_path: Path, workers: str) -> None:
    files = rotate(mixed_packets(), CUTS, tmp_path / "all")
    for lake, count in (("one", "1"), ("many", workers)):
        folder = tmp_path / lake / "captures"
        folder.mkdir(parents=True)
        for path in files[:3]:  # a first poll, a restart, then the rest
            shutil.copy(path, folder / path.name)
        first = invoke(tmp_path / lake / "lake", "watch", str(folder), "--once", "--workers", count, *TIMEOUTS)
        assert first.exit_code == 0, first.output
        for path in files[3:]:
            shutil.copy(path, folder / path.name)
        second = invoke(tmp_path / lake / "lake", "watch", str(folder), "--once", "--workers", count, *TIMEOUTS)
        assert second.exit_code == 0, second.output
        assert "from 2 capture file(s)" in second.output  # the first three were not metered again
    many = lake_flows(tmp_path / "many" / "lake").drop_columns(["time_received"])
    assert many.equals(lake_flows(tmp_path / "one" / "lake").drop_columns(["time_received"]))


@pytest.mark.parametrize("workers", [2, 3])
def test_watch_with_workers_continues_open_flows_after_a_crash(tmp_path: Path, workers: int) -> None:
    """A watch stopped without its final export (a crash) restarts from its cache snapshot: the flows open then
    continue across the restart, whether the files before and after were metered by one process or several."""
    files = rotate(mixed_packets(), CUTS, tmp_path / "all")
    options = MeterOptions(active=30, idle=10)
    results = []
    for name, count in (("one", 1), ("many", workers)):
        folder = tmp_path / name / "captures"
        folder.mkdir(parents=True)
        lake = Lake.at(tmp_path / name / "lake")
        for path in files[:3]:
            shutil.copy(path, folder / path.name)
        crashed = CaptureWatcher(folder, lake, LakeWriter(lake), options, workers=count)
        crashed.poll(final=True)  # the files and the snapshot are committed; no final export
        crashed.sink.close()
        for path in files[3:]:
            shutil.copy(path, folder / path.name)
        restarted = CaptureWatcher(folder, lake, LakeWriter(lake), options, workers=count)
        assert len(restarted.meter.cache)  # flows open at the crash
        restarted.poll(final=True)
        restarted.finish()
        restarted.sink.close()
        assert (crashed.files_metered, restarted.files_metered) == (3, 2)
        results.append(lake_flows(tmp_path / name / "lake").drop_columns(["time_received"]))
    assert results[1].equals(results[0])


def test_ctrl_c_stops_the_workers_and_publishes_nothing(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "rotated"
    rotate(mixed_packets(), CUTS, folder)
    assert_ctrl_c_stops_the_workers(tmp_path, monkeypatch, folder)
