"""A full disk and refused writes (issue 16): one ``error:`` line and exit 2 (no traceback), the lake still
answers ``query`` and ``lake info``, and a later run with space stores every row exactly once.

The small disk is a tmpfs (mounting needs root: skipped otherwise, a failure under CI=true); a read-only
place is the same tmpfs remounted read-only (root writes through file modes, so chmod proves nothing).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import skip_or_fail
from tests.readers.test_inputs import write_flow_csv
from tests.reliability.crashloop import ENV, FLOWSCOPE, IdSender, _wait_listening, free_udp_port

pytestmark = pytest.mark.slow  # each runs flowscope several times in subprocesses (3-16 s)

ROWS = 20_000  # about 330 KB of Parquet per file: five fit on the 2 MiB disk, the sixth does not


class Disk:
    def __init__(self, path: Path) -> None:
        self.path = path

    def remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(self.path)], check=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    """A 2 MiB tmpfs, unmounted afterwards."""
    path = tmp_path / "disk"
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        skip_or_fail(f"cannot mount a tmpfs (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield Disk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def flowscope(lake: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*FLOWSCOPE, "--lake", str(lake), *args], env=ENV, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def assert_one_error(done: subprocess.CompletedProcess, reason: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {reason}"), done.stderr


def stored(lake: Path) -> tuple[int, int]:
    done = flowscope(lake, "query", "SELECT count(*), count(DISTINCT bytes) FROM flows", "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows, distinct = done.stdout.splitlines()[-1].split(",")
    return int(rows), int(distinct)


def test_a_full_disk_is_one_error_and_a_run_with_space_completes(disk: Disk, tmp_path: Path) -> None:
    inputs = [str(write_flow_csv(tmp_path / f"{i}.csv", ROWS, first_id=ROWS * i)) for i in range(8)]
    lake = disk.path / "lake"
    assert_one_error(flowscope(lake, "read", *inputs), "no space left on device")
    rows, distinct = stored(lake)
    assert rows == distinct and rows % ROWS == 0 and 0 < rows < 8 * ROWS  # whole inputs only
    assert flowscope(lake, "lake", "info").returncode == 0
    assert not list(lake.rglob("*.tmp"))  # the failed unit's staged files were removed
    disk.remount("size=64m")
    done = flowscope(lake, "read", *inputs)
    assert done.returncode == 0, done.stderr
    assert stored(lake) == (8 * ROWS, 8 * ROWS)


def test_a_read_only_lake_refuses_writes_in_one_line_and_still_answers_queries(disk: Disk, tmp_path: Path) -> None:
    lake = disk.path / "lake"
    assert flowscope(lake, "read", str(write_flow_csv(tmp_path / "a.csv", 1_000))).returncode == 0
    disk.remount("ro")
    assert_one_error(flowscope(lake, "read", str(write_flow_csv(tmp_path / "b.csv", 10, first_id=1_000))),
                     "read-only file system")  # fmt: skip
    assert stored(lake) == (1_000, 1_000)
    assert flowscope(lake, "lake", "info").returncode == 0
    assert flowscope(disk.path / "new-lake", "read", str(tmp_path / "a.csv")).returncode == 2


def test_an_unwritable_output_file_is_one_error(disk: Disk, tmp_path: Path) -> None:
    disk.remount("ro")
    done = flowscope(tmp_path / "lake", "read", str(write_flow_csv(tmp_path / "a.csv", 100)), "-o",
                     str(disk.path / "out.parquet"))  # fmt: skip
    assert_one_error(done, f"cannot write {disk.path / 'out.parquet'}")


def test_a_collector_on_a_full_disk_stops_with_one_error(disk: Disk) -> None:
    lake, port = disk.path / "lake", free_udp_port()
    command = [*FLOWSCOPE, "--lake", str(lake), "collect", "--listen", f"netflow://127.0.0.1:{port}", "--flush", "1"]
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_listening(lake, process)
        sender = IdSender(port)
        while process.poll() is None and sender.next_id < 2_000_000:  # 2 M flows are far more than 2 MiB
            try:
                sender.send_for(0.5, 500)
            except ConnectionRefusedError:  # the collector is gone: its socket closed
                break
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == ["error: no space left on device (what was committed before is intact)"], err
    assert "Traceback" not in err
