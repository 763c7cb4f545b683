"""Live capture: tcpdump writes rotating files into per-day folders, a watcher meters them into the lake.

tcpdump does the packet capture (it is the tool people trust for it and drops nothing it can
avoid); flowscope only ever reads finished files, so a slow metering pass never loses packets,
and what was captured survives a crash of flowscope. Rotated file names come from tcpdump's
strftime expansion in UTC; tcpdump cannot create folders, so the folders of today and tomorrow
are created ahead of time, on every poll.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flowscope.capture.watch import CaptureWatcher, follow
from flowscope.errors import FlowscopeError

ROUTE_TABLE = Path("/proc/net/route")
RTF_UP = 0x1
DAY_FORMAT = "%Y-%m-%d"
STOP_TIMEOUT = 10.0


def default_interface(route_table: Path = ROUTE_TABLE) -> str:
    """The interface of the IPv4 default route (destination 0.0.0.0, route up), lowest metric first."""
    try:
        lines = route_table.read_text().splitlines()[1:]
    except OSError as exc:
        raise FlowscopeError(f"cannot read {route_table} to find the default interface ({exc}); use -i") from exc
    routes = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 8 and fields[1] == "00000000" and int(fields[3], 16) & RTF_UP:
            routes.append((int(fields[6]), fields[0]))
    if not routes:
        raise FlowscopeError(f"no default route in {route_table}; name the interface with -i")
    return min(routes)[1]


@dataclass(frozen=True)
class Rotation:
    seconds: int = 60
    megabytes: int | None = None
    files: int | None = None
    snaplen: int | None = None


def tcpdump_command(tcpdump: str, interface: str, directory: Path, rotation: Rotation, bpf: str | None) -> list[str]:
    """tcpdump writing ``DIR/YYYY-MM-DD/IFACE-YYYYmmdd-HHMMSS.pcap``, a new file every ``seconds``."""
    if not interface or "/" in interface or interface in (".", "..") or "\0" in interface:
        raise FlowscopeError(f"{interface!r} is no interface name")  # it names the capture files, in DIR only
    pattern = directory / "%Y-%m-%d" / f"{interface}-%Y%m%d-%H%M%S.pcap"
    command = [tcpdump, "-i", interface, "-n", "-Z", "root", "--immediate-mode", "-B", "16384"]
    command += ["-w", str(pattern), "-G", str(rotation.seconds)]
    if rotation.megabytes:
        command += ["-C", str(rotation.megabytes)]
    if rotation.files:
        command += ["-W", str(rotation.files)]
    if rotation.snaplen:
        command += ["-s", str(rotation.snaplen)]
    if bpf:
        command += ["--", bpf]  # the filter can never be taken for an option (glibc's getopt permutes: "-z CMD")
    return command


def prepare_day_folders(directory: Path, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    for day in (now, now + timedelta(days=1)):
        (directory / day.strftime(DAY_FORMAT)).mkdir(parents=True, exist_ok=True)


class LiveCapture:
    """One tcpdump process and the watcher that meters its files."""

    def __init__(
        self,
        interface: str,
        directory: Path,
        watcher: CaptureWatcher,
        rotation: Rotation,
        bpf: str | None = None,
    ) -> None:
        tcpdump = shutil.which("tcpdump") or ("/usr/sbin/tcpdump" if Path("/usr/sbin/tcpdump").exists() else None)
        if tcpdump is None:
            raise FlowscopeError("tcpdump is not installed (apt-get install tcpdump)")
        self.interface = interface
        self.directory = directory
        self.watcher = watcher
        self.command = tcpdump_command(tcpdump, interface, directory, rotation, bpf)
        self.process: subprocess.Popen[bytes] | None = None
        self.stderr = b""

    def run(self, *, poll: float = 1.0, stop: threading.Event | None = None) -> int:
        """Capture and meter until Ctrl-C / ``stop`` / tcpdump exits; returns tcpdump's exit status.

        tcpdump runs in its own session so the terminal's Ctrl-C reaches only flowscope, which then
        stops tcpdump with SIGINT (it closes its file cleanly), meters the last files and flushes.
        """
        prepare_day_folders(self.directory)
        env = {**os.environ, "TZ": "UTC"}
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True
        )
        stderr_reader = threading.Thread(target=self._drain_stderr, daemon=True)
        stderr_reader.start()

        def still_capturing() -> bool:
            prepare_day_folders(self.directory)
            return self.process is not None and self.process.poll() is None

        try:
            follow(self.watcher, poll=poll, stop=stop, producing=still_capturing, stop_producer=self._stop_tcpdump)
        finally:
            self._stop_tcpdump()
            stderr_reader.join(timeout=2)
        status = self.process.returncode
        if status not in (0, -signal.SIGINT, None):
            message = self.stderr.decode(errors="replace").strip().splitlines()
            raise FlowscopeError(f"tcpdump failed (exit {status}): {message[-1] if message else 'no message'}")
        return status or 0

    def _drain_stderr(self) -> None:
        if self.process is not None and self.process.stderr is not None:
            self.stderr = self.process.stderr.read()

    def _stop_tcpdump(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
