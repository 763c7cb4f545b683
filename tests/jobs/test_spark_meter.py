"""``flowscope spark meter`` (batch): equal to ``flowscope read DIR`` flow for flow; reruns add nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.jobs.lakes import assert_same_flows, flow_count
from tests.jobs.spark_inputs import shared_rotated, synthetic_rotated

from flowscope.cli import main
from flowscope.jobs.spark_meter import plan_runs

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def flowscope(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_rotated(tmp_path_factory.mktemp("synthetic") / "captures").pop().parents[1]


@pytest.fixture(scope="module")
def shared_captures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_rotated(tmp_path_factory.mktemp("shared") / "captures")


def test_runs_are_contiguous_balanced_and_never_empty(tmp_path: Path) -> None:
    files = []
    for index, size in enumerate((10, 10, 10, 10, 50, 5, 5)):
        files.append(tmp_path / f"f{index}")
        files[-1].write_bytes(bytes(size))
    runs = plan_runs(files, 3)
    assert [path for run in runs for path in run] == files
    assert [len(run) for run in runs] == [4, 1, 2]
    assert plan_runs(files, 20) == [[path] for path in files]
    assert plan_runs([], 4) == []


@pytest.mark.parametrize("runs", ["1", "5"])
def test_batch_equals_read_on_a_rotated_directory_whose_flows_span_files(
    spark: Any, synthetic: Path, tmp_path: Path, runs: str
) -> None:
    flowscope("--lake", str(tmp_path / "read"), "read", str(synthetic))
    output = flowscope("--lake", str(tmp_path / "spark"), "spark", "meter", str(synthetic), "--runs", runs)
    assert_same_flows(tmp_path / "read", tmp_path / "spark")
    assert "metered in one Spark task" not in output  # stitched, not the fallback


def test_batch_equals_read_on_the_shared_captures_with_other_timeouts(
    spark: Any, shared_captures: Path, tmp_path: Path
) -> None:
    options = ("--idle", "15", "--active", "40")
    read = flowscope("--lake", str(tmp_path / "read"), "read", str(shared_captures), *options)
    spark_lake = str(tmp_path / "spark")
    output = flowscope("--lake", spark_lake, "spark", "meter", str(shared_captures), "--runs", "6", *options)
    assert_same_flows(tmp_path / "read", tmp_path / "spark")
    assert output.count("skipped") == read.count("skipped") > 0  # damaged packets reported as read reports them
    assert "metered in one Spark task instead" in output  # captures of other days in one directory: not stitchable


def test_a_rerun_adds_nothing_and_read_knows_the_files(spark: Any, synthetic: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    flowscope("--lake", str(lake), "spark", "meter", str(synthetic))
    count = flow_count(lake)
    again = flowscope("--lake", str(lake), "spark", "meter", str(synthetic))
    assert "already in the lake were skipped" in again and flow_count(lake) == count
    assert "already in the lake were skipped" in flowscope("--lake", str(lake), "read", str(synthetic))
    flowscope("--lake", str(lake), "spark", "meter", str(synthetic), "--again")
    assert flow_count(lake) == 2 * count


def test_any_destination_of_the_registry(spark: Any, synthetic: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "flows.parquet"
    flowscope("--lake", str(tmp_path / "read"), "read", str(synthetic))
    flowscope("spark", "meter", str(synthetic), "-o", str(out))
    assert pq.read_metadata(out).num_rows == flow_count(tmp_path / "read")
