"""The line Ctrl-C leaves (``run_cleanly``): what each destination kept, or the general guarantee; exit 130."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from flowscope.cli import main
from flowscope.cli.common import only_reading, run_cleanly
from flowscope.materialize import run


def test_the_command_line_prints_them_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted() -> None:
        interrupt = KeyboardInterrupt()
        interrupt.add_note("a.parquet not written (a file is written only whole)")
        interrupt.add_note("lake x keeps the 2 input(s) this run committed (a rerun reads only the rest)")
        raise interrupt

    with pytest.raises(SystemExit) as stopped:
        run_cleanly(interrupted, debug=lambda: False)
    assert stopped.value.code == 130
    assert capsys.readouterr().err == (
        "interrupted; a.parquet not written (a file is written only whole); "
        "lake x keeps the 2 input(s) this run committed (a rerun reads only the rest)\n"
    )


def test_without_notes_the_general_guarantee(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(SystemExit):
        run_cleanly(interrupted, debug=lambda: False)
    assert capsys.readouterr().err == "interrupted; what was committed before is kept\n"


@pytest.mark.parametrize("error", [RuntimeError("Query interrupted"), duckdb.InterruptException("INTERRUPT")])
def test_ctrl_c_inside_duckdb_is_an_interrupt(error: Exception, capsys: pytest.CaptureFixture[str]) -> None:
    """DuckDB turns Ctrl-C during a statement into its own error: still 'interrupted', exit 130."""

    def querying() -> None:
        raise error

    with pytest.raises(SystemExit) as stopped:
        run_cleanly(querying, debug=lambda: False)
    assert stopped.value.code == 130
    assert capsys.readouterr().err == "interrupted; what was committed before is kept\n"


def test_other_runtime_errors_stay_errors(capsys: pytest.CaptureFixture[str]) -> None:
    def failing() -> None:
        raise RuntimeError("Query failed")

    with pytest.raises(SystemExit) as stopped:
        run_cleanly(failing, debug=lambda: False)
    assert stopped.value.code == 1


@pytest.mark.parametrize(
    ("output", "said"),
    [(None, "this command stores nothing"), ("-", "this command stores nothing"), ("q.csv", "q.csv not written")],
)
@pytest.mark.parametrize("error", [KeyboardInterrupt, lambda: RuntimeError("Query interrupted")])
def test_a_command_that_only_reads_says_so(
    output: str | None, said: str, error: Callable[[], BaseException], capsys: pytest.CaptureFixture[str]
) -> None:
    """query and top commit nothing: 'what was committed before is kept' spoke of commits they never make."""

    @only_reading
    def querying(output: str | None) -> None:
        raise error()  # a fresh one: notes stay on an exception

    with pytest.raises(SystemExit) as stopped:
        run_cleanly(lambda: querying(output=output), debug=lambda: False)
    assert stopped.value.code == 130
    assert capsys.readouterr().err.startswith(f"interrupted; {said}")


def test_the_output_files_own_note_stays(capsys: pytest.CaptureFixture[str]) -> None:
    @only_reading
    def querying(output: str | None) -> None:
        interrupt = KeyboardInterrupt()
        interrupt.add_note("q.parquet not written (a file is written only whole)")
        raise interrupt

    with pytest.raises(SystemExit):
        run_cleanly(lambda: querying(output="q.parquet"), debug=lambda: False)
    assert capsys.readouterr().err == "interrupted; q.parquet not written (a file is written only whole)\n"


def test_materialize_says_the_run_under_way_was_rolled_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each run is one transaction: Ctrl-C names the table and what it still holds."""

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "materialize_once", interrupted)
    (tmp_path / "lake").mkdir()
    target = f"sqlite:///{tmp_path / 't.db'}"
    result = CliRunner().invoke(
        main, ["--lake", str(tmp_path / "lake"), "materialize", "pairs", "--to", target, "--table", "pairs"]
    )
    assert result.exit_code == 130
    assert "interrupted; pairs: the run under way was rolled back, runs before it stay applied" in result.output
