"""The first frame: Ctrl-C while the command line is still importing is one line and exit 130, not an import
traceback; a standard output closed at start is one error line where something is written to it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

import pytest

from flowscope import launch


class InterruptedImport:
    """A finder that behaves as Ctrl-C arriving while ``flowscope.cli`` is being imported."""

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name == "flowscope.cli":
            raise KeyboardInterrupt
        return None


def test_an_interrupt_during_start_up_is_one_line_and_exit_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delitem(sys.modules, "flowscope.cli", raising=False)
    monkeypatch.setattr(sys, "meta_path", [InterruptedImport(), *sys.meta_path])
    with pytest.raises(SystemExit) as stopped:
        launch.run()
    assert stopped.value.code == 130
    assert capsys.readouterr().err == "interrupted before the command started; nothing was written\n"


def _run_with_stdout_closed(args: list[str]) -> subprocess.CompletedProcess[str]:
    """The command line as a shell runs it with ``>&-``: file descriptor 1 closed before Python starts."""
    code = "import os, sys; os.close(1); os.execv(sys.executable, [sys.executable, '-c', sys.argv[1], *sys.argv[2:]])"
    entry = "import sys; from flowscope.launch import run; sys.argv[0] = 'flowscope'; run()"
    return subprocess.run([sys.executable, "-c", code, entry, *args], capture_output=True, text=True, timeout=120)


def test_a_closed_standard_output_is_one_error_line_where_it_is_written(tmp_path: Path) -> None:
    lake = ["--lake", str(tmp_path / "lake")]
    made = subprocess.run(
        [sys.executable, "-m", "flowscope", "-q", *lake, "demo", "--flows", "100", "--packets", "100"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    into_file = _run_with_stdout_closed([*lake, "query", "SELECT 1 AS one", "-o", str(tmp_path / "one.csv")])
    assert into_file.returncode == 0, into_file.stderr  # nothing for standard output: runs as usual
    failed = _run_with_stdout_closed([*lake, "query", "SELECT 1 AS one"])
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines()[-1] == "error: standard output is closed: nothing can be written to it"
    assert "Traceback" not in failed.stderr
