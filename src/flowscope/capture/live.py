"""Live capture: tcpdump writes rotating files into per-day folders, a watcher meters them into the lake.

tcpdump does the packet capture (it is the tool people trust for it and drops nothing it can
avoid); flowscope only ever reads finished files, so a slow metering pass never loses packets,
and what was captured survives a crash of flowscope. Rotated file names come from tcpdump's
strftime expansion in UTC; tcpdump cannot create folders, so the folders of today and tomorrow
are created ahead of time, on every poll.

What tcpdump could not capture is never silent: its stderr is read line by line, it is asked for
its statistics (SIGUSR1, once it is listening) every ``STATS_EVERY`` seconds and prints them when it
stops; the latest figures go to ``watcher.drops`` (``capture.drops``), hence the summary, the health
records and the metrics.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flowscope.capture.drops import parse_tcpdump_statistics
from flowscope.capture.watch import CaptureWatcher, follow
from flowscope.errors import FlowscopeError

ROUTE_TABLE = Path("/proc/net/route")
RTF_UP = 0x1
DAY_FORMAT = "%Y-%m-%d"
STOP_TIMEOUT = 10.0
DEFAULT_BUFFER_KIB = 16384
"""tcpdump -B: the kernel's capture buffer (KiB); 16 MiB rides out metering pauses at a few Gbit/s."""
STATS_EVERY = 5.0
STDERR_KEPT = 8192
"""Bytes of tcpdump's stderr kept: its reports are cumulative, so the latest few lines say everything (a day of
reports every 5 s would be 2 MB, scanned on every poll)."""
LISTENING = b"listening on"
"""tcpdump's start-up line: printed once its signal handlers are set, so SIGUSR1 no longer kills it."""


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


def tcpdump_command(
    tcpdump: str,
    interface: str,
    directory: Path,
    rotation: Rotation,
    bpf: str | None,
    buffer_kib: int = DEFAULT_BUFFER_KIB,
) -> list[str]:
    """tcpdump writing ``DIR/YYYY-MM-DD/IFACE-YYYYmmdd-HHMMSS.pcap``, a new file every ``seconds``."""
    if not interface or "/" in interface or interface in (".", "..") or "\0" in interface:
        raise FlowscopeError(f"{interface!r} is no interface name")  # it names the capture files, in DIR only
    pattern = directory / "%Y-%m-%d" / f"{interface}-%Y%m%d-%H%M%S.pcap"
    command = [tcpdump, "-i", interface, "-n", "-Z", "root", "--immediate-mode", "-B", str(buffer_kib)]
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


def tcpdump_complaint(stderr: bytes) -> str:
    """The line of tcpdump's standard error that says what went wrong: its last ``tcpdump: ...`` line, which
    names the interface (``tcpdump: eth9: No such device exists``), not the bare ``(No such device exists)``
    that follows it; else the last line."""
    lines = stderr.decode(errors="replace").strip().splitlines()
    own = [line for line in lines if line.startswith("tcpdump: ")]
    return (own or lines or ["no message"])[-1]


class LiveCapture:
    """One tcpdump process and the watcher that meters its files."""

    def __init__(
        self,
        interface: str,
        directory: Path,
        watcher: CaptureWatcher,
        rotation: Rotation,
        bpf: str | None = None,
        buffer_kib: int = DEFAULT_BUFFER_KIB,
    ) -> None:
        tcpdump = shutil.which("tcpdump") or ("/usr/sbin/tcpdump" if Path("/usr/sbin/tcpdump").exists() else None)
        if tcpdump is None:
            raise FlowscopeError("tcpdump is not installed (apt-get install tcpdump)")
        self.interface = interface
        self.directory = directory
        self.watcher = watcher
        self.command = tcpdump_command(tcpdump, interface, directory, rotation, bpf, buffer_kib)
        self.source = f"tcpdump -i {interface}"
        self.process: subprocess.Popen[bytes] | None = None
        self.stderr = b""
        self._listening = threading.Event()
        self._asked = 0.0

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
            self._ask_statistics()
            self._take_statistics()
            return self.process is not None and self.process.poll() is None

        def stop_tcpdump() -> None:
            self._stop_tcpdump()
            stderr_reader.join(timeout=STOP_TIMEOUT)  # its final report: before the last files are metered
            self._take_statistics()

        try:
            follow(self.watcher, poll=poll, stop=stop, producing=still_capturing, stop_producer=stop_tcpdump)
        finally:
            stop_tcpdump()
        status = self.process.returncode
        if status not in (0, -signal.SIGINT, None):
            raise FlowscopeError(f"tcpdump failed (exit {status}): {tcpdump_complaint(self.stderr)}")
        return status or 0

    def _drain_stderr(self) -> None:
        if self.process is None or self.process.stderr is None:
            return
        for line in self.process.stderr:  # line by line: the statistics reports arrive while it runs
            self.stderr = (self.stderr + line)[-STDERR_KEPT:]
            if LISTENING in line:
                self._listening.set()

    def _ask_statistics(self) -> None:
        """SIGUSR1 makes tcpdump print its counters so far (not before it listens: it would die of it)."""
        process = self.process
        now = time.monotonic()
        if process is None or process.poll() is not None or not self._listening.is_set():
            return
        if now - self._asked >= STATS_EVERY:
            self._asked = now
            process.send_signal(signal.SIGUSR1)

    def _take_statistics(self) -> None:
        drops = parse_tcpdump_statistics(self.stderr.decode(errors="replace"), self.source)
        if drops is not None:
            self.watcher.drops[self.source] = drops

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
