"""Crash loops: SIGKILL a flowscope command at a random point, restart it, compare what its destination holds
with the truth. One runner for every destination; each destination is a small ``BatchTarget`` or
``StreamTarget`` (the test module declares them).

Two shapes of command:

- **Batch** (``read``, ``read -o``, ``watch --once``, ``materialize``, ``consume --exit-idle``): each iteration
  starts from a fresh destination, runs the command, kills it after a random delay drawn from [0, the time an
  uninterrupted run took], then runs it again to the end; the destination must then hold every row exactly
  once (``Tally``: lost 0, duplicates 0) unless the target states another bound.
- **Stream** (``collect --to ...``): one destination for the whole loop; each iteration starts the
  collector, sends IPFIX flows with unique ids (the ``bytes`` column) for a random time, and kills it the
  moment the sender stops (a stream's crash loses what it had not flushed: flows sent during the last
  ``--flush`` seconds plus a decode margin, ``StreamTarget.window``). The last run is stopped with SIGTERM,
  which flushes everything. Then: no id stored twice, and every lost id was sent within ``window`` seconds
  of a kill.

``report()`` is the figure docs/RELIABILITY.md records (iterations, kills, max lost, duplicates).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
FLOWSCOPE = [sys.executable, "-m", "flowscope"]


@dataclass
class Tally:
    """What a destination holds against the truth."""

    expected: int
    stored: int
    distinct: int

    @property
    def lost(self) -> int:
        return self.expected - self.distinct

    @property
    def duplicates(self) -> int:
        return self.stored - self.distinct


@dataclass
class Result:
    name: str
    iterations: int = 0
    kills: int = 0
    """Runs actually killed mid-way (a run that ended before its random kill time is not counted)."""
    max_lost: int = 0
    max_lost_seconds: float | None = None
    """Streams: the longest time before a kill over which sent flows were lost (compare with ``--flush``)."""
    duplicates: int = 0
    bound: str = "0"
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def report(self) -> str:
        return (
            f"{self.name}: {self.iterations} iterations, {self.kills} killed mid-run, max lost {self.max_lost} "
            f"(bound {self.bound})"
            + (f", lost at most the last {self.max_lost_seconds:.2f} s" if self.max_lost_seconds is not None else "")
            + f", duplicates {self.duplicates}, {self.seconds:.0f} s"
            + (f"; FAILURES: {' | '.join(self.failures)}" if self.failures else "")
        )


def run_to_end(command: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=timeout)


def timed_run(command: list[str], ready: Callable[[], bool] | None) -> tuple[int, str, float, float]:
    """Run to the end: (exit code, stderr, seconds until ``ready()`` first held, seconds in all)."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = None if ready is not None else 0.0
    deadline = started + 300
    while process.poll() is None and time.monotonic() < deadline:
        if seen is None and ready is not None and ready():
            seen = time.monotonic() - started
        time.sleep(0.005)
    if process.poll() is None:
        process.kill()
    _, err = process.communicate()
    total = time.monotonic() - started
    return process.returncode, err, total if seen is None else seen, total


def kill_after(command: list[str], delay: float, ready: Callable[[], bool] | None = None) -> bool:
    """Start ``command``, wait ``delay`` seconds (after ``ready()`` holds, when given), SIGKILL it.

    Returns whether it was still running when killed. The delay is the random point of the crash, not a
    condition anything waits for.
    """
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if ready is not None:
            deadline = time.monotonic() + 120
            while process.poll() is None and not ready() and time.monotonic() < deadline:
                time.sleep(0.005)
        deadline = time.monotonic() + delay
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(min(0.005, max(0.0, deadline - time.monotonic())))
        killed = process.poll() is None
        if killed:
            process.send_signal(signal.SIGKILL)
        return killed
    finally:
        process.wait()


@dataclass
class BatchTarget:
    """A command run to the end over a fresh destination per iteration."""

    name: str
    prepare: Callable[[Path], None]
    """Make a fresh destination (and inputs, if they are per iteration) in the iteration's directory."""
    command: Callable[[Path], list[str]]
    tally: Callable[[Path], Tally]
    ready: Callable[[Path], bool] | None = None
    """The command has started its work (e.g. the destination exists: interpreter start-up and imports are
    over). The kill comes at a uniform random time between this moment and the end of an uninterrupted
    run (timed on the baseline), so the kills fall on the work, not on the imports."""
    bound: str = "0"
    max_lost: int = 0
    max_duplicates: int = 0
    after_kill: Callable[[Path], list[str]] | None = None
    """Checks right after the kill (before the rerun); returns problems (e.g. a partial output file)."""


def batch_loop(target: BatchTarget, workdir: Path, iterations: int, seed: int = 16) -> Result:
    rng = random.Random(seed)
    result = Result(target.name, bound=target.bound)
    started = time.monotonic()
    baseline = workdir / "baseline"
    baseline.mkdir(parents=True)
    target.prepare(baseline)
    code, err, until_ready, duration = timed_run(
        target.command(baseline), (lambda: target.ready(baseline)) if target.ready is not None else None
    )
    if code != 0:
        result.failures.append(f"an uninterrupted run failed: {err[-1000:]}")
        return result
    truth = target.tally(baseline)  # targets whose truth is the uninterrupted run take it from this first call
    if truth.lost or truth.duplicates:
        result.failures.append(f"the uninterrupted run itself: lost {truth.lost}, duplicates {truth.duplicates}")
    for i in range(iterations):
        here = workdir / f"i{i}"
        here.mkdir()
        target.prepare(here)
        ready = (lambda: target.ready(here)) if target.ready is not None else None  # noqa: B023 (used at once)
        result.kills += kill_after(target.command(here), rng.uniform(0, duration - until_ready), ready)
        if target.after_kill is not None:
            result.failures += [f"iteration {i}: {p}" for p in target.after_kill(here)]
        rerun = run_to_end(target.command(here))
        result.iterations += 1
        if rerun.returncode != 0:
            result.failures.append(f"iteration {i}: the rerun exited {rerun.returncode}: {rerun.stderr[-1000:]}")
            continue
        tally = target.tally(here)
        result.max_lost = max(result.max_lost, tally.lost)
        result.duplicates += tally.duplicates
        if tally.lost > target.max_lost or tally.duplicates > target.max_duplicates:
            result.failures.append(f"iteration {i}: lost {tally.lost}, duplicates {tally.duplicates}")
    result.seconds = time.monotonic() - started
    return result


# ---- streams: collect -> destination ------------------------------------------------------------------------

RECORDS_PER_DATAGRAM = 24


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class IdSender:
    """IPFIX datagrams whose flows carry consecutive ids in ``bytes``; remembers when each id was sent."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", port))
        self.next_id = 0
        self.sequence = 0
        self.sent_at: list[tuple[int, float]] = []
        """(first id of a datagram, monotonic time it was sent)."""

    def send_for(self, seconds: float, rate: float) -> None:
        """``rate`` datagrams/s for ``seconds``, the template in every 20th datagram."""
        from flowscope.collect.encoder import IPV4_TEMPLATE, encode, synthetic_columns

        count = max(1, int(seconds * rate))
        columns = synthetic_columns(count * RECORDS_PER_DATAGRAM, seed=self.next_id)
        columns[1] = np.arange(self.next_id, self.next_id + count * RECORDS_PER_DATAGRAM)  # octets = the id
        payloads = encode(10, IPV4_TEMPLATE, columns, records_per_datagram=RECORDS_PER_DATAGRAM, template_every=20)
        started = time.monotonic()
        for i, payload in enumerate(payloads):
            due = started + i / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            data = bytearray(payload)  # the sequence number continues across the collector's restarts
            data[8:12] = ((self.sequence + i * RECORDS_PER_DATAGRAM) % (1 << 32)).to_bytes(4, "big")
            self.sock.send(data)
            self.sent_at.append((self.next_id + i * RECORDS_PER_DATAGRAM, time.monotonic()))
        self.next_id += count * RECORDS_PER_DATAGRAM
        self.sequence += count * RECORDS_PER_DATAGRAM

    def lost_before(self, kill: float, since: float, lost: set[int]) -> float:
        """Seconds between the first datagram sent to the run killed at ``kill`` (started after ``since``)
        that lost a flow, and the kill."""
        times = [at for first, at in self.sent_at if since < at <= kill and first in lost]
        return kill - min(times) if times else 0.0

    def sent_between(self, start: float, end: float) -> set[int]:
        ids: set[int] = set()
        for first, at in self.sent_at:
            if start <= at <= end:
                ids.update(range(first, first + RECORDS_PER_DATAGRAM))
        return ids


@dataclass
class StreamTarget:
    """``collect --to URL``: ``ids()`` reads back the ``bytes`` of every stored flow."""

    name: str
    destination: Callable[[Path], list[str]]
    """The ``--to`` options (empty: the lake) for a work directory."""
    ids: Callable[[Path], np.ndarray]
    flush: float = 1.0
    window: float = 4.0
    """Seconds before a kill within which a sent flow may be lost: ``--flush`` + decode and write latency."""
    rate: float = 500.0
    """Datagrams per second sent (12,000 flows/s)."""


def stream_loop(target: StreamTarget, workdir: Path, iterations: int, seed: int = 16) -> Result:
    rng = random.Random(seed)
    result = Result(target.name, bound=f"flows sent in the last {target.window:g} s before a kill")
    started = time.monotonic()
    lake = workdir / "lake"
    port = free_udp_port()
    sender = IdSender(port)
    kills: list[float] = []
    command = [*FLOWSCOPE, "-q", "--lake", str(lake), "collect", "--listen", f"netflow://127.0.0.1:{port}",
               "--flush", str(target.flush), *target.destination(workdir)]  # fmt: skip
    log = open(workdir / "collect.err", "a")  # noqa: SIM115 (closed below)
    try:
        for i in range(iterations + 1):
            process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=log)
            try:
                if not _wait_listening(lake, process):
                    result.failures.append(f"iteration {i}: the collector did not start")
                    break
                sender.send_for(rng.uniform(0.5, 3.0), target.rate)
                if i < iterations:
                    process.send_signal(signal.SIGKILL)
                    kills.append(time.monotonic())
                    result.kills += 1
                    process.wait()
                    result.iterations += 1
                else:
                    process.send_signal(signal.SIGTERM)
                    if process.wait(timeout=120) != 0:
                        result.failures.append(f"the last run exited {process.returncode} after SIGTERM")
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    finally:
        log.close()
    ids = target.ids(workdir)
    unique, counts = np.unique(ids, return_counts=True)
    result.duplicates = int((counts > 1).sum())
    lost = set(range(sender.next_id)) - set(unique.tolist())
    allowed: set[int] = set()
    for kill in kills:
        allowed |= sender.sent_between(kill - target.window, kill)
    per_kill = [len(lost & sender.sent_between(kill - target.window, kill)) for kill in kills]
    result.max_lost = max(per_kill, default=0)
    previous = [0.0, *kills[:-1]]
    result.max_lost_seconds = max(
        (sender.lost_before(kill, since, lost) for kill, since in zip(kills, previous, strict=True)), default=0.0
    )
    beyond = lost - allowed
    if beyond:
        result.failures.append(f"{len(beyond)} flows lost outside the bound (first id {min(beyond)})")
    if result.duplicates:
        result.failures.append(f"{result.duplicates} flows stored twice")
    result.seconds = time.monotonic() - started
    return result


def _wait_listening(lake: Path, process: subprocess.Popen, timeout: float = 120) -> bool:
    """Until the collector saved its first health snapshot (it has bound its socket) or ended."""
    import json

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        for path in (lake / "_collector").glob("health-*.json"):
            try:
                if json.loads(path.read_text()).get("pid") == process.pid:
                    return True
            except (OSError, ValueError):
                continue
        time.sleep(0.05)
    return False
