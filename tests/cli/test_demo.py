"""``flowscope demo`` sizes that cannot be: usage errors before anything is generated."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from flowscope.cli import main


@pytest.mark.parametrize("args", [["--flows", "-5"], ["--packets", "-1"], ["--days", "0"], ["--days", "-1"]])
def test_negative_or_empty_sizes_are_usage_errors(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(main, ["--lake", str(tmp_path / "lake"), "demo", *args])
    assert result.exit_code == 2 and "Invalid value" in result.stderr  # --flows -5 was a ValueError, exit 1
    assert not (tmp_path / "lake").exists()
