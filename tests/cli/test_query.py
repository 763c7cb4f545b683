"""``flowscope query``: SQL without a statement is one error line; SQL may start with a comment or come from stdin."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
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


@pytest.mark.parametrize(
    ("name", "file_format"), [("out.parquet", "csv"), ("out.csv", "json"), ("out.jsonl", "parquet")]
)
def test_a_format_that_contradicts_the_file_name_is_an_error(
    small_lake: Path, tmp_path: Path, name: str, file_format: str
) -> None:
    """CSV written into a file named .parquet was a file nothing would read for what it says it is."""
    output = tmp_path / name
    args = ["--lake", str(small_lake), "query", "SELECT 1 AS a", "-o", str(output), "--format", file_format]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"error: {output} is named a {name.split('.')[1]} file but --format is {file_format}: leave out --format\n"
    )
    assert not output.exists()


@pytest.mark.parametrize(("name", "file_format"), [("out.jsonl", "json"), ("out.txt", "csv")])
def test_a_format_that_agrees_or_a_name_without_one(
    small_lake: Path, tmp_path: Path, name: str, file_format: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["--lake", str(small_lake), "query", "SELECT 1 AS a", "-o", name, "--format", file_format]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.stderr == f"1 rows -> {name}\n"


def test_standard_output_is_named_so(small_lake: Path) -> None:
    command = [sys.executable, "-m", "flowscope", "--lake", str(small_lake), "query", "SELECT 1 AS a", "-o", "-"]
    done = subprocess.run([*command, "--format", "csv"], capture_output=True, timeout=120, check=True)
    assert (done.stdout, done.stderr) == (b'"a"\n1\n', b"1 rows -> standard output\n")


def test_sql_typed_at_a_terminal_is_asked_for(small_lake: Path) -> None:
    """``query -`` on a terminal says what it waits for; it sat silent, as if it hung."""
    controller, terminal = pty.openpty()
    command = [sys.executable, "-m", "flowscope", "--lake", str(small_lake), "query", "-", "--format", "csv"]
    process = subprocess.Popen(command, stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(terminal)
    assert process.stderr is not None
    assert process.stderr.readline() == b"reading SQL from the terminal; Ctrl-D ends it (or pipe it in)\n"
    os.write(controller, b"SELECT 1 AS a\n\x04")
    out, _ = process.communicate(timeout=120)
    os.close(controller)
    assert (process.returncode, out) == (0, b'"a"\n1\n')


def test_a_closed_standard_input_is_one_error(small_lake: Path) -> None:
    command = [sys.executable, "-m", "flowscope", "--lake", str(small_lake), "query", "-"]
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, preexec_fn=_close_stdin)
    assert (done.returncode, done.stderr) == (2, b"error: - reads SQL from standard input, which is closed\n")


def _close_stdin() -> None:
    os.close(0)  # as the shell's <&- does
