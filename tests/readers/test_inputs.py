"""Reading inputs into the lake exactly once: repeats skipped, interrupted reads resumed, nothing half-done."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from tests.conftest import shared_data

from flowscope.cli import main
from flowscope.demo.pcap import write_synthetic_pcap
from flowscope.lake import ledger
from flowscope.lake.layout import Lake
from flowscope.lake.ledger import LEDGER_DIR
from flowscope.query import open_lake

CSV_HEADER = (
    "Source.IP,Source.Port,Destination.IP,Destination.Port,Protocol,Timestamp,Flow.Duration,"
    "Total.Fwd.Packets,Total.Backward.Packets,Total.Length.of.Fwd.Packets,Total.Length.of.Bwd.Packets\n"
)


def write_flow_csv(path: Path, rows: int, first_id: int = 0) -> Path:
    """A Unicauca-style flow CSV whose forward byte counts are unique ids (losses and duplicates show)."""
    ids = np.arange(first_id, first_id + rows)
    lines = [
        f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255},{1024 + i % 60000},192.0.2.1,443,6,"
        f"26/04/201711:{(i // 60) % 60:02d}:{i % 60:02d},1000,2,1,{i},40\n"
        for i in ids
    ]
    path.write_text(CSV_HEADER + "".join(lines))
    return path


def invoke(lake: Path, *args: str):
    return CliRunner().invoke(main, ["--lake", str(lake), *args])


def lake_state(lake: Path) -> tuple[int, int, int]:
    """(rows, distinct ids, files)"""
    with open_lake(lake) as con:
        rows, distinct = con.execute("SELECT count(*), count(DISTINCT bytes) FROM flows").fetchone()
    return rows, distinct, len(Lake.at(lake).files("flows"))


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cap") / "c.pcap"
    write_synthetic_pcap(path, packets=4000, flows=200)
    return path


@pytest.mark.parametrize("kind", ["capture", "csv", "nfdump"])
def test_reading_the_same_input_again_adds_nothing(tmp_path, capture, kind):
    lake = tmp_path / "lake"
    path = {
        "capture": lambda: capture,
        "csv": lambda: write_flow_csv(tmp_path / "f.csv", 500),
        "nfdump": lambda: shared_data("nfcapd", "google_ssl_lz4.nfcapd"),
    }[kind]()
    first = invoke(lake, "read", str(path))
    assert first.exit_code == 0, first.output
    before = lake_state(lake)
    assert before[0] > 0
    copy = tmp_path / f"copy-{path.name}"
    copy.write_bytes(path.read_bytes())
    for again in (path, copy):  # the same content under another name is the same input
        result = invoke(lake, "read", str(again))
        assert result.exit_code == 0, result.output
        assert "already in the lake were skipped" in " ".join(result.output.split())
    assert lake_state(lake) == before
    forced = invoke(lake, "read", str(path), "--again")
    assert forced.exit_code == 0 and lake_state(lake)[0] == 2 * before[0]


@pytest.mark.parametrize("records", ["flows", "packets", "exports"])
def test_notes_beside_captures_are_no_inputs(tmp_path, capture, records):
    """A folder of rotated captures is one stream; a README or checksum file beside them is set aside, not
    recorded, so one added later neither makes the folder half-read nor is taken for a capture."""
    folder = tmp_path / "captures"
    folder.mkdir()
    (folder / "c.pcap").write_bytes(capture.read_bytes())
    (folder / "README.txt").write_text("captured on eth0\n")
    options = {"flows": [], "packets": ["--records", "packets"], "exports": ["--as-exports"]}[records]
    lake = tmp_path / "lake"
    first = invoke(lake, "read", str(folder), *options)
    assert first.exit_code == 0, first.output
    assert "are not captures" in " ".join(first.output.split())
    (folder / "SHA256SUMS").write_text("0" * 64 + "  c.pcap\n")
    again = invoke(lake, "read", str(folder), *options)
    assert again.exit_code == 0, again.output
    assert "1 input file(s) already in the lake were skipped" in " ".join(again.output.split())


def test_an_input_named_twice_is_read_once(tmp_path, capture):
    result = CliRunner().invoke(
        main, ["read", str(capture), str(capture.parent / "." / capture.name), "-o", str(tmp_path / "x.parquet")]
    )
    assert result.exit_code == 0, result.output
    assert "named again in this read; read once" in " ".join(result.output.split())
    once = CliRunner().invoke(main, ["read", str(capture), "-o", str(tmp_path / "y.parquet")])
    assert once.exit_code == 0, once.output
    assert pq.read_table(tmp_path / "x.parquet").equals(pq.read_table(tmp_path / "y.parquet"))


def test_other_options_make_another_input(tmp_path, capture):
    lake = tmp_path / "lake"
    assert invoke(lake, "read", str(capture)).exit_code == 0
    rows = lake_state(lake)[0]
    assert invoke(lake, "read", str(capture), "--uniflow").exit_code == 0
    assert lake_state(lake)[0] > rows


def test_a_multi_file_read_that_fails_keeps_the_files_it_completed(tmp_path):
    lake = tmp_path / "lake"
    good = [write_flow_csv(tmp_path / f"{i}.csv", 100, first_id=100 * i) for i in range(2)]
    bad = tmp_path / "2.csv"
    bad.write_text(CSV_HEADER + "10.0.0.1,1,192.0.2.1,443,6,26/04/201711:00:00,1,1,1,not-a-number,1\n")
    failed = invoke(lake, "read", *map(str, good), str(bad), "--strict")
    assert failed.exit_code == 2
    assert lake_state(lake)[:2] == (200, 200)
    bad.write_text(CSV_HEADER + "10.0.0.1,1,192.0.2.1,443,6,26/04/201711:00:00,1,1,1,200,1\n")
    rerun = invoke(lake, "read", *map(str, good), str(bad), "--strict")
    assert rerun.exit_code == 0, rerun.output
    assert lake_state(lake)[:2] == (201, 201)


@pytest.mark.slow
def test_a_read_killed_part_way_and_rerun_holds_every_file_once(tmp_path):
    rows, files = 150_000, 5
    inputs = [str(write_flow_csv(tmp_path / f"{i}.csv", rows, first_id=rows * i)) for i in range(files)]
    lake = tmp_path / "lake"
    command = [sys.executable, "-m", "flowscope", "--lake", str(lake), "read", *inputs]
    for delay in (0.0, 0.05, 0.2):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ledger = lake / LEDGER_DIR
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline and not list(ledger.glob("*.json")):
            time.sleep(0.005)
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert lake_state(lake)[:2] == (rows * files, rows * files)
    assert not list(lake.rglob("*.tmp"))


def test_a_failed_read_leaves_no_output_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(CSV_HEADER + "10.0.0.1,1,192.0.2.1,443,6,26/04/201711:00:00,1,1,1,oops,1\n")
    out = tmp_path / "out.parquet"
    result = invoke(tmp_path / "lake", "read", str(bad), "--strict", "-o", str(out))
    assert result.exit_code == 2
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_an_empty_result_writes_valid_empty_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text(CSV_HEADER)
    result = invoke(
        tmp_path / "lake", "read", str(empty), "-o", str(tmp_path / "e.parquet"), "--to", str(tmp_path / "e.csv")
    )
    assert result.exit_code == 0, result.output
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 0
    assert (tmp_path / "e.csv").read_text().startswith('"type","time_received"')


def test_demo_twice_stores_the_demo_once(tmp_path):
    lake = tmp_path / "lake"
    for _ in range(2):
        result = invoke(lake, "demo", "--flows", "3000", "--packets", "2000")
        assert result.exit_code == 0, result.output
    with open_lake(lake) as con:
        synthetic = con.execute("SELECT count(*) FROM flows WHERE type <> 'pcap'").fetchone()[0]
    assert synthetic == 3000


@pytest.mark.parametrize("with_lake", [True, False])
def test_inputs_are_digested_only_for_a_ledger(tmp_path, capture, monkeypatch, with_lake):
    """A file destination records no input: the SHA-256 of every input (0.87 CPU s per GiB) is not computed."""
    digested: list[Path] = []
    real = ledger.content_digest
    monkeypatch.setattr(ledger, "content_digest", lambda path: digested.append(path) or real(path))
    destination = ["--to", "lake"] if with_lake else []
    result = invoke(tmp_path / "lake", "read", str(capture), "-o", str(tmp_path / "f.parquet"), *destination)
    assert result.exit_code == 0, result.output
    assert digested == ([capture] if with_lake else [])
    assert pq.read_table(tmp_path / "f.parquet").num_rows > 0


def test_workers_on_inputs_that_are_not_shared_out_is_said(tmp_path):
    flows = tmp_path / "flows.csv"
    flows.write_text("src_addr,dst_addr,bytes,packets,time_flow_start\n1.2.3.4,5.6.7.8,10,1,2026-12-07T10:00:00Z\n")
    result = CliRunner().invoke(main, ["read", str(flows), "--workers", "2", "-o", str(tmp_path / "x.parquet")])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "--workers 2: csv input(s) read in one process (only captures metered into flows are shared out)" in said
