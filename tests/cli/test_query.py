"""``flowscope query`` given SQL without a statement: one error line, not an AttributeError."""

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
