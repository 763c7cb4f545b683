"""Ctrl-C during ``read INPUT --workers 2`` (a folder's runs or one file's spans), checked the same way for both."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowscope.cli import main
from flowscope.jobs import runs


def assert_ctrl_c_stops_the_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capture: Path) -> None:
    """Ctrl-C once both workers are metering: they are stopped, nothing is published, the spool is removed."""
    started: list[int] = []
    metering = runs.meter_run

    def slow(paths, options, *, index=0, **kwargs):
        (tmp_path / f"ready{index}").touch()
        time.sleep(60)
        return metering(paths, options, index=index, **kwargs)

    def interrupted(self, processes, inbox, credits):  # Ctrl-C once both workers are metering
        deadline = time.monotonic() + 30
        while not all((tmp_path / f"ready{index}").exists() for index in (0, 1)) and time.monotonic() < deadline:
            time.sleep(0.05)
        started.extend(process.pid for process, _ in processes)
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr("flowscope.jobs.pool.meter_run", slow)
    monkeypatch.setattr("flowscope.jobs.pool.Workers._gather", interrupted)
    shared = tmp_path / "shm"
    shared.mkdir()
    monkeypatch.setattr("flowscope.jobs.pool.SHARED_MEMORY", shared)
    result = CliRunner().invoke(main, ["--lake", str(tmp_path / "lake"), "read", str(capture), "--workers", "2"])
    assert result.exit_code != 0
    assert len(started) == 2 and not any(_alive(pid) for pid in started)
    assert not list((tmp_path / "lake").rglob("*.parquet"))
    assert not list(shared.iterdir())  # the workers' spool is removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
