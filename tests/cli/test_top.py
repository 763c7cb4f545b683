"""``flowscope top`` / ``query`` given counts that cannot be: one usage line, not DuckDB's binder error."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from flowscope.cli import main


@pytest.mark.parametrize(
    "args",
    [
        ["top", "-n", "-3"],
        ["top", "-n", "0"],
        ["top", "--threads", "0"],
        ["query", "SELECT 1", "--limit", "-1"],
        ["query", "SELECT 1", "--threads", "-2"],
    ],
)
def test_counts_below_one_are_usage_errors(small_lake: Path, args: list[str]) -> None:
    result = CliRunner().invoke(main, ["--lake", str(small_lake), *args])
    assert result.exit_code == 2
    assert "Invalid value" in result.stderr and "Binder Error" not in result.stderr


def test_a_report_written_to_a_file_says_so_as_query_does(small_lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "top.csv"
    result = CliRunner().invoke(main, ["--lake", str(small_lake), "top", "-n", "3", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stderr == f"3 rows -> {out}\n" and len(out.read_text().splitlines()) == 4


@pytest.mark.parametrize(("since", "until"), [("1h", "2d"), ("2024-05-02", "2024-05-01"), ("2024-05-01", "2024-05-01")])
def test_a_range_that_ends_before_it_starts_is_a_usage_error(small_lake: Path, since: str, until: str) -> None:
    result = CliRunner().invoke(main, ["--lake", str(small_lake), "top", "--since", since, "--until", until])
    assert result.exit_code == 2 and "--since (" in result.stderr and "must be before --until" in result.stderr


def test_an_empty_report_of_a_time_range_points_at_what_the_lake_holds(small_lake: Path) -> None:
    """``top --since 6h`` over flows read from an older capture was an empty table and nothing else."""
    result = CliRunner().invoke(main, ["--lake", str(small_lake), "top", "--since", "1h", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.stdout == '"src_addr","flows","packets","bytes","share_pct"\n'
    assert result.stderr == "note: no flows in the lake match; `flowscope lake info` shows the days it holds\n"
    quiet = CliRunner().invoke(main, ["--lake", str(small_lake), "-q", "top", "--since", "1h", "--format", "csv"])
    assert quiet.stderr == ""
