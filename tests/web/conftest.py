"""A real ``flowscope serve`` for the console's integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.collect.live import free_port

from helpers import wait_until


def serve(lake: Path, *args: str) -> Iterator[str]:
    """``flowscope serve`` on a free 127.0.0.1 port (wrapped in ``timeout``), its base URL; stopped by PID."""
    port = free_port(socket.SOCK_STREAM)
    command = [sys.executable, "-m", "flowscope", "--lake", str(lake), "serve", "--listen", f"127.0.0.1:{port}"]
    process = subprocess.Popen(["timeout", "-s", "INT", "600", *command, *args], stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}/"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(base + "api/store", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return process.poll() is not None  # stop waiting when it died

    try:
        assert wait_until(answers, timeout=30) and process.poll() is None, process.stderr and process.stderr.read()
        yield base
    finally:
        os.kill(process.pid, signal.SIGINT)
        process.wait(timeout=30)
