"""``flowscope read`` and ``flowscope watch`` on captures, through the command line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner
from tests.conftest import shared_data

from flowscope.cli import main


def invoke(lake: Path, *args: str):
    return CliRunner().invoke(main, ["--lake", str(lake), *args], catch_exceptions=False)


def test_read_capture_to_parquet_with_metering_options(tmp_path: Path) -> None:
    out = tmp_path / "flows.parquet"
    capture = shared_data("pcap", "nfstream", "google_ssl.pcap")
    result = invoke(tmp_path / "lake", "read", str(capture), "-o", str(out), "--uniflow", "--bytes", "link")
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.num_rows == 2
    assert sum(table.column("bytes").to_pylist()) == 9108  # link-layer bytes, as NFStream counts them


def test_read_folder_sets_aside_files_that_are_not_captures_and_reports_early_expiry(tmp_path: Path) -> None:
    folder = tmp_path / "rotated"
    folder.mkdir()
    for name in ("skype.pcap", "steam.pcap"):
        shutil.copy(shared_data("pcap", "nfstream", name), folder / name)
    (folder / "SHA256SUMS").write_text("not a capture\n")
    result = invoke(tmp_path / "lake", "read", str(folder), "--max-flows", "5")  # the checksum list is set aside
    assert result.exit_code == 0, result.output
    assert "not captures" in result.output and "exported early" in result.output
    flows = pq.ParquetDataset(sorted((tmp_path / "lake" / "flows").rglob("*.parquet"))).read()
    total = sum(flows.column("packets").to_pylist()) + sum(flows.column("packets_rev").to_pylist())
    assert total == 3069 + 104  # every IP packet of both captures (nfpcapd agrees)


def test_bad_timeouts_are_a_clear_error(tmp_path: Path) -> None:
    capture = shared_data("pcap", "nfstream", "dhcp.pcap")
    result = CliRunner().invoke(main, ["--lake", str(tmp_path), "read", str(capture), "--idle", "0"])
    assert result.exit_code == 2 and "--active and --idle must be positive" in result.output


def test_watch_once_meters_a_folder_into_the_lake(tmp_path: Path) -> None:
    folder = tmp_path / "captures" / "2016-08-28"
    folder.mkdir(parents=True)
    for name in ("one_flow_1_5.pcap", "one_flow_6_10.pcap", "one_flow_11_15.pcap", "one_flow_16_19.pcap"):
        shutil.copy(shared_data("pcap", "nfstream", name), folder / name)
    result = invoke(tmp_path / "lake", "watch", str(tmp_path / "captures"), "--once", "--idle", "120")
    assert result.exit_code == 0, result.output
    assert "1 flows from 4 capture file(s)" in result.output
