"""Following a capture directory: complete files only, each exactly once, flows continuing across files."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.conftest import shared_data

from flowscope.capture.options import MeterOptions
from flowscope.capture.watch import STATE_DIR, CaptureWatcher, follow
from flowscope.lake import Lake, LakeWriter

ONE_FLOW = ("one_flow_1_5.pcap", "one_flow_6_10.pcap", "one_flow_11_15.pcap", "one_flow_16_19.pcap")


def lake_flows(lake: Lake) -> pa.Table | None:
    files = lake.files("flows")
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else None


def packets_in(lake: Lake) -> int:
    table = lake_flows(lake)
    if table is None:
        return 0
    return int(table.column("packets").to_numpy().sum() + table.column("packets_rev").to_numpy().sum())


def watcher(directory: Path, lake: Lake, settle: float = 3600.0) -> CaptureWatcher:
    return CaptureWatcher(directory, lake, LakeWriter(lake), MeterOptions(idle=120, active=1800), settle=settle)


@pytest.fixture
def split_capture(tmp_path: Path) -> Path:
    """The four one_flow_* parts spread over two per-day folders, as tcpdump -G would leave them."""
    directory = tmp_path / "captures"
    for day, names in (("2016-08-28", ONE_FLOW[:2]), ("2016-08-29", ONE_FLOW[2:])):
        (directory / day).mkdir(parents=True)
        for index, name in enumerate(names):
            shutil.copy(shared_data("pcap", "nfstream", name), directory / day / f"cap-{index}.pcap")
    return directory


def test_flow_split_over_day_folders_is_one_flow_and_rerun_adds_nothing(split_capture: Path, tmp_path: Path) -> None:
    lake = Lake.at(tmp_path / "lake")
    first = watcher(split_capture, lake)
    follow(first, once=True)
    first.sink.close()
    table = lake_flows(lake)
    assert table is not None and table.num_rows == 1 and packets_in(lake) == 19
    again = watcher(split_capture, lake)
    follow(again, once=True)
    again.sink.close()
    assert again.files_metered == 0 and packets_in(lake) == 19


def test_file_held_open_by_a_writer_waits_until_closed(split_capture: Path, tmp_path: Path) -> None:
    lake = Lake.at(tmp_path / "lake")
    growing = split_capture / "2016-08-29" / "cap-9.pcap"
    data = shared_data("pcap", "nfstream", "google_ssl.pcap").read_bytes()
    with open(growing, "wb") as writer:
        writer.write(data[: len(data) // 2])  # half-written, still open
        writer.flush()
        w = watcher(split_capture, lake, settle=0.0)
        w.poll()
        assert w.files_metered == 4
        writer.write(data[len(data) // 2 :])
    w.poll()
    assert w.files_metered == 5
    w.finish()
    w.sink.close()
    assert packets_in(lake) == 19 + 28
    assert not w.skips.total


def test_unchanged_file_waits_for_the_settle_time_unless_a_newer_file_exists(tmp_path: Path) -> None:
    directory = tmp_path / "captures"
    directory.mkdir()
    shutil.copy(shared_data("pcap", "nfstream", "google_ssl.pcap"), directory / "a.pcap")
    w = watcher(directory, Lake.at(tmp_path / "lake"), settle=3600.0)
    assert w.poll() == 0  # just appeared, nobody has it open, but it may still grow
    shutil.copy(shared_data("pcap", "nfstream", "dhcp.pcap"), directory / "b.pcap")
    assert w.poll() == 1  # a.pcap: the writer has moved on to b.pcap
    w.sink.close()


def test_restart_after_a_crash_continues_open_flows_and_skips_done_files(split_capture: Path, tmp_path: Path) -> None:
    lake = Lake.at(tmp_path / "lake")
    later_day = split_capture / "2016-08-29"
    parked = tmp_path / "parked"
    shutil.move(later_day, parked)
    crashed = watcher(split_capture, lake, settle=0.0)
    assert crashed.poll() == 2
    crashed.sink.close()  # flows written so far are durable; the open flow is only in the cache snapshot
    del crashed  # no finish(): as if killed
    shutil.move(parked, later_day)
    resumed = watcher(split_capture, lake, settle=0.0)
    assert resumed.poll() == 2
    resumed.finish()
    resumed.sink.close()
    table = lake_flows(lake)
    assert table is not None and table.num_rows == 1 and packets_in(lake) == 19


def test_files_that_are_not_captures_are_reported_and_left_alone(tmp_path: Path) -> None:
    directory = tmp_path / "captures"
    directory.mkdir()
    (directory / "README.txt").write_text("not a capture")
    w = watcher(directory, Lake.at(tmp_path / "lake"), settle=0.0)
    follow(w, once=True)
    w.sink.close()
    assert w.files_metered == 0 and any("not captures" in note for note in w.notes())


def test_gzip_copy_of_a_metered_file_is_not_metered_again(tmp_path: Path) -> None:
    import gzip

    directory = tmp_path / "captures"
    directory.mkdir()
    capture = directory / "a.pcap"
    shutil.copy(shared_data("pcap", "nfstream", "google_ssl.pcap"), capture)
    lake = Lake.at(tmp_path / "lake")
    w = watcher(directory, lake, settle=0.0)
    assert w.poll() == 1
    (directory / "a.pcap.gz").write_bytes(gzip.compress(capture.read_bytes()))  # what tcpdump -z gzip leaves
    capture.unlink()
    assert w.poll() == 0
    w.finish()
    w.sink.close()
    assert packets_in(lake) == 28 and any("gzip copies" in note for note in w.notes())


def test_a_broken_capture_is_reported_and_not_retried(tmp_path: Path) -> None:
    directory = tmp_path / "captures"
    directory.mkdir()
    head = shared_data("pcap", "nfstream", "google_ssl.pcap").read_bytes()[:24]
    (directory / "broken.pcap.gz").write_bytes(b"\x1f\x8b" + b"not really gzip")
    (directory / "b.pcap").write_bytes(head + b"\xff" * 40)  # a header, then a garbage record
    lake = Lake.at(tmp_path / "lake")
    w = watcher(directory, lake, settle=0.0)
    assert w.poll() == 1  # b.pcap: metered up to the garbage, which is counted
    w.finish()
    w.sink.close()
    assert [entry.split(":")[0] for entry in w.unreadable] == ["broken.pcap.gz"]
    assert w.skips.total == 1
    again = watcher(directory, lake, settle=0.0)
    assert again.poll() == 0  # neither is retried
    again.sink.close()


def _files_metered(lake: Lake) -> int:
    """How many files a running watcher has recorded as metered (its state file in the lake)."""
    for path in (lake.root / STATE_DIR).glob("*.json"):
        try:
            return len(json.loads(path.read_text())["done"])
        except (OSError, ValueError, KeyError):
            return 0
    return 0


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_watch_command_stops_cleanly_and_exports_open_flows(
    split_capture: Path, tmp_path: Path, stop_signal: int
) -> None:
    lake = Lake.at(tmp_path / "lake")
    command = [sys.executable, "-m", "flowscope", "--lake", str(lake.root), "watch", str(split_capture),
               "--settle", "0", "--poll", "0.2", "--idle", "120"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while _files_metered(lake) < 4 and time.monotonic() < deadline:  # all four metered, its flow still open
            time.sleep(0.2)
        process.send_signal(stop_signal)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "1 flows from 4 capture file(s)" in output
    assert packets_in(lake) == 19


def test_watch_once_to_a_file_and_the_lake(split_capture: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from flowscope.cli import main

    lake, copy = tmp_path / "lake", tmp_path / "flows.csv"
    args = ["--lake", str(lake), "watch", str(split_capture), "--once", "--to", "lake", "-o", str(copy)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert packets_in(Lake.at(lake)) == 19
    rows = copy.read_text().splitlines()
    assert len(rows) == 2 and rows[0].startswith('"type"')


class Killed(Exception):
    """Stands for SIGKILL at one point of recording a file (the objects are dropped, nothing is closed)."""


def lake_watcher(directory: Path, lake: Lake) -> CaptureWatcher:
    """A watcher into the lake destination, which commits the watch state's token with the flows."""
    from flowscope.sinks.fanout import position_stores
    from flowscope.sinks.registry import DestinationContext, open_destination

    sink = open_destination("lake", DestinationContext(lake=lake))
    options = MeterOptions(idle=120, active=1800)
    return CaptureWatcher(directory, lake, sink, options, settle=0.0, stores=position_stores(sink))


@pytest.mark.parametrize("point", ["after the commit", "before the commit"])
def test_a_kill_while_recording_a_file_meters_it_once(split_capture: Path, tmp_path: Path, point: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Issue 16: a kill after the flows' commit and before the state's rename metered the file again (3 of 20
    random kills); the state is now pending until the destination commits its token."""
    import flowscope.capture.watch as watch

    lake = Lake.at(tmp_path / "lake")
    first = lake_watcher(split_capture, lake)
    recorded = []
    real_replace, real_flush = watch.os.replace, first._flush

    def replace(source: object, target: object) -> None:
        promotion = str(source).endswith(".pending.json")  # the state's rename, after the commit
        if promotion and point == "after the commit" and len(recorded) == 1:
            raise Killed
        real_replace(source, target)  # type: ignore[arg-type]
        if promotion:
            recorded.append(target)

    def flush(checkpoint: object) -> None:
        if point == "before the commit" and len(recorded) == 1:
            raise Killed
        real_flush(checkpoint)  # type: ignore[arg-type]

    monkeypatch.setattr(watch.os, "replace", replace)
    monkeypatch.setattr(first, "_flush", flush)
    with pytest.raises(Killed):
        first.poll(final=True)
    monkeypatch.undo()
    assert list((lake.root / STATE_DIR).glob("*.pending.json"))
    second = lake_watcher(split_capture, lake)
    assert second.poll(final=True) == (2 if point == "after the commit" else 3)
    second.finish()
    second.sink.close()
    assert packets_in(lake) == 19
    assert not list((lake.root / STATE_DIR).glob("*.pending.json"))
