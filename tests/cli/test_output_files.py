"""A file named for output (``-o``, ``--to FILE``) whose directory is missing is one error before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from flowscope.cli import main
from flowscope.errors import FlowscopeError
from flowscope.sinks.files import FileSink, check_output_file

CSV = "src_addr,dst_addr,bytes,time_flow_start\n10.0.0.1,10.0.0.2,100,2024-05-01T00:00:00Z\n"


def test_a_missing_directory_is_an_error_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "deeper"
    with pytest.raises(FlowscopeError, match=f"^directory {missing} does not exist$"):
        check_output_file(missing / "day.parquet")
    with pytest.raises(FlowscopeError, match="does not exist"):
        FileSink(missing / "day.parquet")
    assert not (tmp_path / "typo").exists()


def test_a_file_where_the_directory_should_be(tmp_path: Path) -> None:
    (tmp_path / "flows.csv").write_text(CSV)
    inside = tmp_path / "flows.csv" / "out.parquet"
    said = f"^{tmp_path / 'flows.csv'} is a file, not a directory: {inside} cannot be written$"
    with pytest.raises(FlowscopeError, match=said):
        check_output_file(inside)


def test_standard_output_and_existing_directories_pass(tmp_path: Path) -> None:
    assert check_output_file("-") == Path("-")
    assert check_output_file(tmp_path / "out.parquet") == tmp_path / "out.parquet"


@pytest.mark.parametrize(
    "args",
    [
        ["read", "IN", "-o", "MISSING/x.parquet"],
        ["read", "IN", "--to", "MISSING/x.parquet"],
        ["read", "IN", "--to", "lake", "--to", "MISSING/x.csv"],
        ["read", "IN", "-o", "MISSING/x.parquet", "--format", "nonsense"],
        ["query", "SELECT 1", "-o", "MISSING/x.csv"],
        ["top", "-o", "MISSING/x.csv"],
        ["profile", "IN", "-o", "MISSING/profile.csv"],
        ["demo", "--keep-pcap", "MISSING/demo.pcap"],
    ],
)
def test_the_commands_stop_before_any_work(tmp_path: Path, args: list[str]) -> None:
    """No input is read, no lake is made (so no ledger records anything): the error comes first."""
    flows = tmp_path / "flows.csv"
    flows.write_text(CSV)
    missing = tmp_path / "nonexistent" / "dir"
    lake = tmp_path / "lake"
    args = [str(flows) if a == "IN" else a.replace("MISSING", str(missing)) for a in args]
    result = CliRunner().invoke(main, ["--lake", str(lake), *args])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"error: directory {missing} does not exist"
    assert not (tmp_path / "nonexistent").exists()
    assert not lake.exists()


def test_a_new_lake_directory_is_still_made(tmp_path: Path) -> None:
    """``--lake`` naming a directory that does not exist yet makes a new lake: that is how a lake starts; a note
    says so, so that a mistyped lake path does not go unnoticed."""
    flows = tmp_path / "flows.csv"
    flows.write_text(CSV)
    lake = tmp_path / "new" / "lake"
    result = CliRunner().invoke(main, ["--lake", str(lake), "read", str(flows)])
    assert result.exit_code == 0, result.output
    assert list((lake / "flows").rglob("*.parquet"))
    assert f"note: lake {lake}: a new lake (its directory did not exist)" in result.output  # a typo shows here
    again = CliRunner().invoke(main, ["--lake", str(lake), "read", str(flows), "--again"])
    assert "a new lake" not in again.output


def test_each_o_of_read_is_a_file_written(tmp_path: Path) -> None:
    """``-o a.csv -o b.parquet`` writes both (``-o`` is ``--to FILE``): the last one used to win silently."""
    flows = tmp_path / "flows.csv"
    flows.write_text(CSV)
    first, second = tmp_path / "a.csv", tmp_path / "b.parquet"
    result = CliRunner().invoke(main, ["-q", "read", str(flows), "-o", str(first), "-o", str(second)])
    assert result.exit_code == 0, result.output
    assert "10.0.0.1" in first.read_text()
    assert second.stat().st_size > 0


@pytest.mark.parametrize("command", [["query", "SELECT 1 AS a"], ["top"], ["profile", "IN"]])
def test_a_result_named_two_files_is_an_error(tmp_path: Path, command: list[str]) -> None:
    flows = tmp_path / "flows.csv"
    flows.write_text(CSV)
    command = [str(flows) if a == "IN" else a for a in command]
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    result = CliRunner().invoke(main, ["--lake", str(tmp_path / "lake"), *command, "-o", str(first), "-o", str(second)])
    assert result.exit_code == 2
    assert f"-o given 2 times ({first}, {second}): name one file" in result.output
    assert not first.exists() and not second.exists()


def test_a_profile_to_standard_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``profile -o -`` writes the CSV to stdout, as every ``-o -`` does (it wrote a file named "-"); the
    ``--report`` goes to stderr then, so a reader of the CSV gets only the CSV."""
    flows = tmp_path / "flows.csv"
    flows.write_text(
        "src_addr,dst_addr,proto,src_port,dst_port,packets,bytes,time_flow_start,time_flow_end\n"
        "10.0.0.1,10.0.0.2,6,40000,443,3,180,2024-05-01T00:00:00Z,2024-05-01T00:00:01Z\n"
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["profile", str(flows), "-o", "-", "--report"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("START_TIME,END_TIME,")
    assert len(result.stdout.splitlines()) == 2
    assert "1 biflows -> standard output" in result.stderr
    assert not (tmp_path / "-").exists()


def test_an_image_is_not_written_to_standard_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flows = tmp_path / "flows.csv"
    flows.write_text(CSV)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["profile", str(flows), "-o", "p.csv", "--plot", "-"])
    assert result.exit_code == 2
    assert "name a file: this output cannot go to standard output" in result.output
    assert not (tmp_path / "-").exists() and not (tmp_path / "p.csv").exists()
