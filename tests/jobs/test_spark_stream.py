"""``flowscope spark meter --stream``: complete files only, each once across SIGKILL, equal to ``read DIR``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.jobs.lakes import assert_same_flows
from tests.jobs.spark_inputs import shared_rotated, synthetic_rotated

from flowscope.capture.options import MeterOptions
from flowscope.cli import main
from flowscope.jobs.spark_stream import STATE_DIR, CaptureStream, Intent, StateStore, StreamState, follow, local_path
from flowscope.lake import Lake
from flowscope.sinks.lake import LakeSink

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 240.0


def wait_for(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.2)


def flowscope(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def publish(source: Path, directory: Path) -> Path:
    """The mover's convention: written under a hidden name, then renamed into place."""
    final = directory / source.parent.name / source.name
    final.parent.mkdir(parents=True, exist_ok=True)
    hidden = final.with_name(f".{final.name}")
    shutil.copy(source, hidden)
    os.rename(hidden, final)
    return final


def state_of(checkpoint: Path) -> dict[str, Any]:
    path = checkpoint / STATE_DIR / "state.json"
    return json.loads(path.read_text()) if path.exists() else {"files": 0, "step": 0, "pending": []}


def seen(checkpoint: Path) -> int:
    """Files the stream has metered or holds pending."""
    state = state_of(checkpoint)
    return int(state["files"]) + len(state["pending"])


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return synthetic_rotated(tmp_path_factory.mktemp("rotated") / "captures", seconds=60)


@pytest.mark.slow
@pytest.mark.integration
def test_stream_once_equals_read_on_the_shared_captures(spark: Any, tmp_path: Path) -> None:
    directory = shared_rotated(tmp_path / "captures")
    checkpoint, lake = tmp_path / "checkpoint", tmp_path / "lake"
    options = ("--idle", "15", "--active", "40")
    output = flowscope("--lake", str(lake), "spark", "meter", str(directory), "--stream", "--once",
                       "--checkpoint", str(checkpoint), *options)  # fmt: skip
    flowscope("--lake", str(tmp_path / "read"), "read", str(directory), *options)
    assert_same_flows(tmp_path / "read", lake)
    assert "metered in one Spark task instead" in output


def test_state_store_round_trip_replaces_the_carried_file(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    assert store.load() == (StreamState(), None)
    state = StreamState(step=1, batch=0, pending=["/x/b"], files=3, intent=Intent(2, 1, ["/x/a"], False))
    store.save(state)
    assert store.load() == (state, None)
    state.intent = None
    store.save_carried(state, b"open flows")
    state.step = 2
    store.save_carried(state, b"later")
    assert store.load() == (state, b"later")
    assert sorted(p.name for p in (tmp_path / STATE_DIR).iterdir()) == ["carried-2.bin", "state.json"]


def test_local_paths_only() -> None:
    assert local_path("file:/data/day%201/cap-1.pcap") == "/data/day 1/cap-1.pcap"
    with pytest.raises(Exception, match="mounted file system"):
        local_path("hdfs://nn/captures/cap-1.pcap")


@pytest.mark.slow
@pytest.mark.integration
def test_files_published_by_rename_each_metered_once_dot_files_ignored(
    spark: Any, rotated: list[Path], tmp_path: Path
) -> None:
    directory, checkpoint = tmp_path / "captures", tmp_path / "checkpoint"
    for source in rotated[:3]:
        publish(source, directory)
    shutil.copy(rotated[0], directory / rotated[0].parent.name / ".unfinished.pcap")  # never published
    lake = Lake.at(tmp_path / "lake")
    sink = LakeSink(lake, transactional=True)
    stream = CaptureStream(spark, directory, checkpoint, sink, MeterOptions(), runs=3)
    stop = threading.Event()
    follower = threading.Thread(
        target=follow, args=(stream, checkpoint), kwargs={"once": False, "poll": 0.5, "stop": stop}
    )
    follower.start()
    try:
        for source in rotated[3:]:
            publish(source, directory)
            if source == rotated[len(rotated) // 2]:
                wait_for(lambda: state_of(checkpoint)["files"] > 3, "the stream to meter the first files")
        wait_for(lambda: state_of(checkpoint)["files"] == len(rotated), "every published file metered")
        assert state_of(checkpoint)["step"] >= 2  # more than one micro-batch, flows carried between them
    finally:
        stop.set()
        follower.join()
    sink.close()
    flowscope("--lake", str(tmp_path / "read"), "read", str(directory))
    assert_same_flows(tmp_path / "read", lake.root)


@pytest.mark.slow
@pytest.mark.integration
def test_killed_and_restarted_stream_meters_every_file_exactly_once(
    spark: Any, rotated: list[Path], tmp_path: Path
) -> None:
    directory, checkpoint, lake = tmp_path / "captures", tmp_path / "checkpoint", tmp_path / "lake"
    command = [sys.executable, "-m", "flowscope", "--lake", str(lake), "-q", "spark", "meter", str(directory)]
    command += ["--stream", "--checkpoint", str(checkpoint), "--master", "local[2]", "--poll", "0.5"]
    directory.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    job = subprocess.Popen(command, env=env, start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        published = 0
        for source in rotated:  # one file at a time, each seen by the stream before the next appears
            publish(source, directory)
            published += 1
            wait_for(lambda n=published: seen(checkpoint) >= n, "the stream to see the file")
            if state_of(checkpoint)["step"] >= 2:
                break
        os.killpg(job.pid, signal.SIGKILL)  # the Python driver and its JVM, mid-stream
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    assert 0 < published < len(rotated), "the job was killed before the last file"
    for source in rotated[published:]:
        publish(source, directory)
    flowscope(
        "--lake", str(lake), "spark", "meter", str(directory), "--stream", "--checkpoint", str(checkpoint), "--once"
    )
    assert state_of(checkpoint)["files"] == len(rotated)
    flowscope("--lake", str(tmp_path / "read"), "read", str(directory))
    assert_same_flows(tmp_path / "read", lake)


def test_a_file_still_written_waits_until_tcpdump_moves_on_or_closes_it(tmp_path: Path) -> None:
    directory = tmp_path / "captures"
    directory.mkdir()
    first, second = directory / "cap-1.pcap", directory / "cap-2.pcap"
    first.write_bytes(b"x")
    stream = CaptureStream(
        None, directory, tmp_path / "checkpoint", LakeSink(Lake.at(tmp_path / "lake")), MeterOptions()
    )
    with open(second, "wb"):  # as tcpdump holds its current file
        assert stream._complete([str(first), str(second)], final=False) == [str(first)]
        assert stream._complete([str(second)], final=False) == []
        assert stream._complete([str(second)], final=True) == [str(second)]
    assert stream._complete([str(second)], final=False) == [str(second)]  # closed: complete
