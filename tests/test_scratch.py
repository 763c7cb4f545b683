"""Scratch folders: a folder of a process that is gone is removed by the next one of its kind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from flowscope.scratch import alive, owned_folder


def _host() -> str:
    return socket.gethostname().replace("-", "_")


def test_a_dead_owners_folder_goes_a_live_ones_and_other_hosts_stay(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    dead = tmp_path / f".spill-{_host()}.{dead_pid}-abc"
    live = tmp_path / f".spill-{_host()}.{os.getpid()}-def"
    other_host = tmp_path / f".spill-elsewhere.{dead_pid}-ghi"
    other_kind = tmp_path / f".other-{_host()}.{dead_pid}-jkl"
    for folder in (dead, live, other_host, other_kind):
        (folder / "0.arrows").parent.mkdir()
        (folder / "0.arrows").write_bytes(b"x")
    made = owned_folder(tmp_path, ".spill-")
    assert made.is_dir() and made.name.startswith(f".spill-{_host()}.{os.getpid()}-")
    assert not dead.exists()
    assert live.exists() and other_host.exists() and other_kind.exists()


def test_alive() -> None:
    assert alive(os.getpid())
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert not alive(int(gone.stdout))
