"""``flowscope query``: SQL without a statement is one error line; SQL may start with a comment or come from stdin."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from flowscope.cli import main


@pytest.mark.parametrize("sql", ["", "   ", "/* a comment only */"])
def test_a_query_without_a_statement_is_one_error_line(small_lake: Path, sql: str) -> None:
    result = CliRunner().invoke(main, ["--lake", str(small_lake), "query", sql])
    assert result.exit_code == 2
    assert result.stderr == f"error: no SQL statement in {sql!r}\n"


COMMENTED = "-- how many flows\nSELECT count(*) AS n FROM flows"


@pytest.mark.parametrize(
    "args",
    [
        [COMMENTED, "--format", "csv"],
        ["--format", "csv", COMMENTED],
        ["--format=csv", COMMENTED, "--limit", "5"],
        ["--format", "csv", "--", COMMENTED],
    ],
)
def test_sql_may_start_with_a_comment(small_lake: Path, args: list[str]) -> None:
    """click took ``-- ...`` for an unknown option; SQL holds whitespace, option names never do."""
    result = CliRunner().invoke(main, ["--lake", str(small_lake), "query", *args])
    assert result.exit_code == 0, result.output
    assert result.stdout == '"n"\n240\n'


def test_a_mistyped_option_is_still_one(small_lake: Path) -> None:
    result = CliRunner().invoke(main, ["--lake", str(small_lake), "query", "--fromat", "csv", "SELECT 1"])
    assert result.exit_code == 2
    assert "No such option '--fromat'" in result.stderr


def test_an_option_value_with_spaces_stays_the_value(
    small_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["--lake", str(small_lake), "query", "-o", "-- odd name.csv", COMMENTED])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "-- odd name.csv").read_text() == '"n"\n240\n'


def test_sql_from_standard_input(small_lake: Path) -> None:
    result = CliRunner().invoke(main, ["--lake", str(small_lake), "query", "-", "--format", "csv"], input=COMMENTED)
    assert result.exit_code == 0, result.output
    assert result.stdout == '"n"\n240\n'
