"""Into a file or a pipe nothing is cut: tables at their full width, messages on one line, no raw dicts."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from flowscope.cli import main
from flowscope.demo.pcap import write_synthetic_pcap

# Eight columns of 18-digit numbers: about 200 columns of table, far beyond rich's default 80.
WIDE = "SELECT " + ", ".join(f"116141112233445566 + {i} AS column_{i}" for i in range(8))


def test_a_wide_table_prints_in_full_when_stdout_is_not_a_terminal(small_lake: Path) -> None:
    result = CliRunner().invoke(main, ["--lake", str(small_lake), "query", WIDE])
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    for i in range(8):
        assert f"column_{i}" in result.stdout and f"116,141,112,233,445,{566 + i}" in result.stdout


def test_lake_info_with_a_long_lake_path_is_not_cut(tmp_path: Path, small_lake: Path) -> None:
    deep = tmp_path / ("a-long-folder-name-" * 6) / "lake"
    deep.parent.mkdir()
    small_lake.rename(deep)
    result = CliRunner().invoke(main, ["lake", "info", "--lake", str(deep)])
    assert result.exit_code == 0, result.output
    assert f"lake {deep}" in result.stdout and "…" not in result.stdout


def test_messages_on_stderr_are_one_line_each(tmp_path: Path) -> None:
    capture = tmp_path / "small.pcap"
    write_synthetic_pcap(capture, packets=200, flows=10)
    lake = tmp_path / ("a-long-folder-name-" * 6) / "lake[1]"  # brackets are not rich markup here
    result = CliRunner().invoke(main, ["read", str(capture), "--lake", str(lake)])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"note: lake {lake}: a new lake (its directory did not exist)",
        f"10 flows from 1 input(s) (pcap) -> lake {lake}",
    ]
