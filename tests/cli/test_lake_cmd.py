"""``flowscope lake info`` over a lake with a damaged file: the summary, and the damage counted."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from flowscope.cli import main
from flowscope.lake import Lake


@pytest.mark.parametrize("content", [b"", b"garbage, not Parquet"])
def test_info_counts_a_damaged_file_instead_of_failing(small_lake: Path, content: bytes) -> None:
    files = Lake.at(small_lake).files("flows")
    files[0].write_bytes(content)
    result = CliRunner().invoke(main, ["--lake", str(small_lake), "-q", "lake", "info"])
    assert result.exit_code == 0, result.output
    assert "flows" in result.stdout
    assert result.stderr.startswith(f"warning: flows: 1 damaged file(s) not counted, e.g. {files[0]}: ")


def test_compact_below_one_mib_is_a_usage_error(small_lake: Path) -> None:
    result = CliRunner().invoke(main, ["--lake", str(small_lake), "lake", "compact", "--small-mib", "-1"])
    assert result.exit_code == 2 and "Invalid value" in result.stderr
