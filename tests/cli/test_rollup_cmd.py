"""``flowscope rollup``'s summary lines."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from flowscope.cli import main


def test_a_first_rollup_does_not_claim_a_changed_definition(small_lake: Path) -> None:
    first = CliRunner().invoke(main, ["--lake", str(small_lake), "rollup"])
    assert first.exit_code == 0, first.output
    assert "(computed afresh: first run, or its definition changed)" in first.stderr  # was "its definition changed"
    again = CliRunner().invoke(main, ["--lake", str(small_lake), "rollup"])
    assert "afresh" not in again.stderr and "0 partition(s) recomputed" in again.stderr
