"""A reader that stops early (``| head -1``) ends a command quietly, as it ends ``seq``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from flowscope.cli import main
from flowscope.cli.common import run_cleanly

WIDE = "SELECT range AS n, range * 1000003 AS m, repeat('x', 40) AS pad FROM range(200000)"


def first_line_then_close(*args: str) -> tuple[str, int, str]:
    """Run flowscope with stdout to a pipe, read one line, close the pipe; the line, exit code and stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "flowscope", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    line = process.stdout.readline().decode()
    process.stdout.close()  # the reader goes away while flowscope still has much to write
    stderr = process.stderr.read().decode()
    return line, process.wait(timeout=120), stderr


@pytest.mark.parametrize(
    "args",
    [
        ["query", WIDE, "--format", "csv"],
        ["query", WIDE, "--format", "json"],
        ["query", WIDE, "--limit", "2000"],  # a rich table, larger than the pipe buffer
        ["top", "-n", "2000", "--by", "pair"],
        ["top", "-n", "2000", "--by", "pair", "--format", "csv"],
    ],
)
def test_a_closed_pipe_ends_quietly_with_exit_0(demo_lake: Path, args: list[str]) -> None:
    line, code, stderr = first_line_then_close("--lake", str(demo_lake), *args)
    assert line
    assert (code, stderr) == (0, "")


def test_a_reader_gone_before_the_last_flush_is_quiet_too(small_lake: Path) -> None:
    """Short output sits in Python's buffer until the command ends: flushed inside run_cleanly, not at exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "flowscope", "--lake", str(small_lake), "exporters", "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.close()
    _, stderr = process.communicate(timeout=120)
    assert (process.returncode, stderr.decode()) == (0, "")


def test_a_broken_pipe_elsewhere_is_still_an_error() -> None:
    """Only stdout's reader going away is quiet: a broken socket or worker pipe is reported."""

    def action() -> None:
        raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(SystemExit) as exited:
        run_cleanly(action, debug=lambda: False)
    assert exited.value.code == 1


def test_csv_to_a_file_is_unaffected(small_lake: Path) -> None:
    result = CliRunner().invoke(main, ["--lake", str(small_lake), "query", "SELECT 1 AS one", "--format", "csv"])
    assert result.stdout == '"one"\n1\n'


def test_read_to_standard_output_stops_quietly_at_head(demo_lake: Path) -> None:
    """``flowscope read FILES -o - | head``: CSV on standard output, and the reader going away ends it quietly."""
    line, code, stderr = first_line_then_close("read", str(demo_lake / "flows"), "-o", "-", "-q")
    assert line.startswith('"type","time_received"')
    assert (code, stderr) == (0, "")


def test_the_other_destinations_go_on_when_standard_output_closes(demo_lake: Path, tmp_path: Path) -> None:
    """``read ... --to FILE -o - | head``: the file still gets every row (the whole command stopped there, the
    file was aborted, and it exited 0 as if all was well)."""
    copy = tmp_path / "copy.parquet"
    inputs = demo_lake / "flows"
    line, code, stderr = first_line_then_close("read", str(inputs), "--to", str(copy), "-o", "-")
    assert line.startswith('"type","time_received"')
    assert code == 0, stderr
    assert "note: standard output closed by its reader; the other destinations got every row" in stderr
    stored = sum(pq.read_metadata(part).num_rows for part in inputs.rglob("*.parquet"))
    assert pq.read_metadata(copy).num_rows == stored


@pytest.mark.parametrize(("to", "suffix"), [("-", ".csv"), ("stdout:jsonl", ".jsonl"), ("stdout:parquet", ".parquet")])
def test_standard_output_holds_what_the_file_would(tmp_path: Path, to: str, suffix: str) -> None:
    source = Path(__file__).parents[1] / "csv" / "data" / "unicauca11_example.csv"
    command = [sys.executable, "-m", "flowscope", "-q", "read", str(source)]
    piped = subprocess.run([*command, "--to", to], capture_output=True, timeout=120, check=True).stdout
    subprocess.run([*command, "-o", str(tmp_path / f"flows{suffix}")], timeout=120, check=True)
    assert piped == (tmp_path / f"flows{suffix}").read_bytes()
    assert not list(tmp_path.glob(".*"))  # nothing staged beside the file either way
