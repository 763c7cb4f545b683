"""Following a capture directory: meter each capture file once it is complete, exactly once.

A file is complete when no process holds it open (Linux: ``/proc/*/fd``) and either a newer
capture file exists (tcpdump has moved on) or its size and modification time have not changed
for ``settle`` seconds. Files are metered in rotation order (per-day subfolders included) through
one flow meter, so a flow continuing into the next file stays one flow.

With ``records="packets"`` every packet is stored as a row of the ``packets`` table instead
(``capture.packet_records``); nothing is held between files then.

Progress lives in the lake (``LAKE/.watch/<directory id>.json``) with a snapshot of the flow cache:
after a restart no file is metered twice and flows that were open continue. Recording a file is two
steps around the destinations' flush: the new state and snapshot are written as *pending* first, then
the flush commits the file's flows together with the pending state's token as a checkpoint position
in every destination that stores positions (the lake's ledger, PostgreSQL), then the pending state
replaces the state. A restart that finds a pending state keeps it only if a destination committed its
token: a crash at any point meters a file once. (The state used to be saved after the flush: a kill in
between, the time to write the cache snapshot, metered the file again in 3 of 20 random kills, issue 16.)
Destinations without positions (files, Kafka, ClickHouse, Elasticsearch) still get that file again after
such a crash: at least once. A clean stop (Ctrl-C) exports every open flow.

Loss before the files (``capture.drops``): pcapng files' interface statistics are read on the way and
summed into ``drops["pcapng statistics"]``; a live tcpdump (``capture.live``) adds its own counters.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from flowscope.capture.drops import CaptureDrops, FileStatistics
from flowscope.capture.files import is_capture, iter_packet_batches, natural_key
from flowscope.capture.meter import FlowMeter
from flowscope.capture.options import MeterOptions
from flowscope.capture.packet_records import packet_table
from flowscope.capture.pcapng import InterfaceStatistics
from flowscope.capture.source import meter_notes
from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError
from flowscope.lake.layout import Lake, fsync_dir
from flowscope.pipeline import Checkpoint, PositionStore, Sink
from flowscope.readers.registry import head_bytes
from flowscope.schema import FLOWS, PACKETS
from flowscope.stopping import ctrl_c_after

STATE_DIR = ".watch"
DEFAULT_POLL = 1.0
DEFAULT_SETTLE = 5.0


def open_files() -> set[str] | None:
    """Paths any process holds open (from /proc/*/fd), or None where /proc cannot tell."""
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return None
    held: set[str] = set()
    with os.scandir(proc) as entries:
        pids = [entry.name for entry in entries if entry.name.isdigit()]
    for pid in pids:
        try:
            with os.scandir(f"/proc/{pid}/fd") as fds:
                for fd in fds:
                    try:
                        held.add(os.readlink(fd.path))
                    except OSError:  # closed meanwhile
                        continue
        except OSError:  # process gone or not ours to see
            continue
    return held


@dataclass
class FileSeen:
    size: int
    mtime_ns: int
    stable_since: float


@dataclass
class WatchState:
    """Files already metered, by path relative to the watched directory, with the identity they had."""

    done: dict[str, list[int]] = field(default_factory=dict)
    cache_file: str | None = None

    def is_done(self, relative: str, stat: os.stat_result) -> bool:
        return self.done.get(relative) == [stat.st_ino, stat.st_size, stat.st_mtime_ns]

    def mark(self, relative: str, stat: os.stat_result) -> None:
        self.done[relative] = [stat.st_ino, stat.st_size, stat.st_mtime_ns]


class StateStore:
    """The watch state and flow-cache snapshot of one directory, kept atomically in the lake."""

    def __init__(self, lake: Lake, directory: Path, records: str = FLOWS, stores: Sequence[PositionStore] = ()) -> None:
        # packet records of a folder are another product than its flows: their own state, so neither skips the other
        key = str(directory.resolve()) + ("" if records == FLOWS else f"\0{records}")
        identity = hashlib.sha1(key.encode()).hexdigest()[:16]
        self.folder = lake.root / STATE_DIR
        self.path = self.folder / f"{identity}.json"
        self.pending = self.folder / f"{identity}.pending.json"
        self.identity = identity
        self.key = f"watch:{identity}"
        """The checkpoint position naming this directory (no "/": never taken for a Kafka topic's)."""
        self.stores = stores

    def _settle_pending(self) -> None:
        """A pending state whose token a destination committed becomes the state; any other is dropped."""
        if not self.pending.exists():
            return
        try:
            raw = json.loads(self.pending.read_text())
        except (OSError, ValueError):
            raw = {}
        token = raw.get("token")
        if token is not None and any(store.positions().get(self.key) == token for store in self.stores):
            os.replace(self.pending, self.path)
            fsync_dir(self.folder)
            return
        current = json.loads(self.path.read_text()).get("cache_file") if self.path.exists() else None
        if raw.get("cache_file") and raw["cache_file"] != current:
            (self.folder / raw["cache_file"]).unlink(missing_ok=True)
        self.pending.unlink()

    def load(self, meter: FlowMeter) -> WatchState:
        self._settle_pending()
        if not self.path.exists():
            return WatchState()
        try:
            raw = json.loads(self.path.read_text())
            state = WatchState(done={k: list(v) for k, v in raw["done"].items()}, cache_file=raw.get("cache_file"))
            if state.cache_file:
                with np.load(self.folder / state.cache_file) as arrays:
                    meter.restore(dict(arrays))
        except (OSError, ValueError, KeyError) as exc:
            raise FlowscopeError(f"watch state {self.path} is unreadable ({exc}); move it away to start over") from exc
        return state

    def save(self, state: WatchState, meter: FlowMeter, flush: Callable[[Checkpoint | None], None]) -> None:
        """Snapshot the cache under a new name and write the state as pending; ``flush`` the destinations
        with its token (the commit point where they store positions); then make it the state by one rename."""
        self.folder.mkdir(parents=True, exist_ok=True)
        previous = state.cache_file
        state.cache_file = None
        token = str(time.time_ns())
        if len(meter.cache):
            state.cache_file = f"{self.identity}.cache-{token}.npz"
            # allow_pickle is numpy's default, named so that mypy knows none of the arrays is meant for it
            _write_atomically(
                self.folder / state.cache_file, lambda handle: np.savez(handle, allow_pickle=True, **meter.state())
            )
        text = json.dumps({"done": state.done, "cache_file": state.cache_file, "token": token}, sort_keys=True)
        _write_atomically(self.pending, lambda handle: handle.write(text.encode()))
        flush(Checkpoint(positions={self.key: token}) if self.stores else None)
        os.replace(self.pending, self.path)
        fsync_dir(self.folder)
        if previous and previous != state.cache_file:
            (self.folder / previous).unlink(missing_ok=True)


def _write_atomically(path: Path, write: Callable[[Any], object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


class CaptureWatcher:
    """Meters the complete capture files of ``directory`` into ``sink`` (any destination; state stays in the lake)."""

    def __init__(
        self,
        directory: Path,
        lake: Lake,
        sink: Sink,
        options: MeterOptions,
        *,
        settle: float = DEFAULT_SETTLE,
        on_flows: Callable[[Path, int], None] | None = None,
        workers: int = 1,
        records: str = FLOWS,
        stores: Sequence[PositionStore] = (),
    ) -> None:
        """``records``: ``flows`` (metered) or ``packets`` (one row per packet); ``on_flows(file, rows)`` is told
        the rows each file gave; ``stores``: the destinations among ``sink``'s that commit checkpoint positions
        with their data."""
        self.directory = directory
        self.workers = workers
        self.records = records
        self.sink = sink
        self.settle = settle
        self.tunnels = options.tunnels
        self.skips = Skips(unit="packets")
        self.meter = FlowMeter(options, self.skips)
        self.store = StateStore(lake, directory, records, stores)
        self.state = self.store.load(self.meter)
        self.on_flows = on_flows
        self.files_metered = 0
        self.rows_written = 0
        """Rows of ``records`` written (flows or packets)."""
        self.not_captures: list[str] = []
        self.unreadable: list[str] = []
        self.compressed_copies = 0
        self.parallel_notes: list[str] = []
        self.file_statistics = FileStatistics()
        self.drops: dict[str, CaptureDrops] = {}
        """Loss before the files, per counting source (pcapng statistics, a live tcpdump's report)."""
        self._seen: dict[str, FileSeen] = {}

    def candidates(self) -> Iterator[tuple[Path, str, os.stat_result]]:
        """Capture files not metered yet, in rotation order."""
        found = [p for p in self.directory.rglob("*") if p.is_file() and not p.name.startswith(".")]
        for path in sorted(found, key=lambda p: natural_key(p.relative_to(self.directory))):
            relative = str(path.relative_to(self.directory))
            try:
                stat = path.stat()
            except FileNotFoundError:  # rotated away (e.g. compressed) since the listing
                continue
            if not self.state.is_done(relative, stat) and relative not in self.not_captures:
                yield path, relative, stat

    def complete(self, files: list[tuple[Path, str, os.stat_result]], *, final: bool) -> list[int]:
        """Indexes of the files that are finished; ``final`` (nothing writes any more) skips the settle wait."""
        held = open_files()
        now = time.monotonic()
        newest = max((stat.st_mtime_ns for _, _, stat in files), default=0)
        ready = []
        for index, (path, relative, stat) in enumerate(files):
            seen = self._seen.get(relative)
            if seen is None or (seen.size, seen.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
                seen = self._seen[relative] = FileSeen(stat.st_size, stat.st_mtime_ns, now)
            if held is not None and str(path.resolve()) in held:
                continue
            moved_on = stat.st_mtime_ns < newest
            if final or moved_on or now - seen.stable_since >= self.settle:
                ready.append(index)
        return ready

    def poll(self, *, final: bool = False) -> int:
        """Meter every file that is complete now; returns how many were metered."""
        files = list(self.candidates())
        ready = [files[index] for index in self.complete(files, final=final)]
        if self.workers > 1 and len(ready) > 1 and self.records == FLOWS:  # packet rows need no stitching
            from flowscope.jobs.watch import meter_together  # the scale-out stage builds on this one

            if meter_together(self, [(path, relative) for path, relative, _ in ready]):
                return len(ready)
        metered = 0
        for path, relative, _ in ready:
            metered += self.meter_file(path, relative)
        return metered

    def meter_file(self, path: Path, relative: str) -> bool:
        """Meter one complete file and record it; False if it was not metered (not a capture, a copy)."""
        stat: os.stat_result | None = None
        try:
            stat = path.stat()
            if relative.endswith(".gz") and relative[: -len(".gz")] in self.state.done:
                # compressed after rotation (tcpdump -z gzip) once already metered: same packets
                self.compressed_copies += 1
                self._commit(relative, stat)
                return False
            if not is_capture(head_bytes(path, 64)):
                self.not_captures.append(relative)
                return False
            flows = 0
            packets = self.records == PACKETS
            statistics = InterfaceStatistics()
            for batch in iter_packet_batches([path], tunnels=self.tunnels, skips=self.skips, statistics=statistics):
                flows += self.write(packet_table(batch) if packets else self.meter.add(batch))
            self.count_drops(statistics.latest)
        except (FlowscopeError, OSError) as exc:
            # a broken or vanished file must not stop the watch, nor be retried forever
            self.unreadable.append(f"{relative}: {exc}")
            if stat is not None:
                self._commit(relative, stat)
            return False
        with ctrl_c_after():
            self._commit(relative, stat)
            self.files_metered += 1
        if self.on_flows is not None:
            self.on_flows(path, flows)
        return True

    def count_drops(self, per_interface: dict[str, dict[str, int]]) -> None:
        """Account a metered file's pcapng statistics (``InterfaceStatistics.latest``), files in rotation order."""
        self.file_statistics.add_file(per_interface)
        drops = self.file_statistics.drops
        if drops is not None:
            self.drops[drops.source] = drops

    def finish(self) -> None:
        """Export every open flow (clean stop) and record that nothing is left in the cache."""
        for flows in self.meter.flush():
            self.write(flows)
        self._commit(None, None)

    def notes(self) -> list[str]:
        notes = meter_notes(self.meter)
        if self.not_captures:
            notes.append(f"{len(self.not_captures)} file(s) are not captures and were ignored: {self.not_captures[:3]}")
        if self.unreadable:
            notes.append(f"{len(self.unreadable)} capture file(s) could not be read to the end: {self.unreadable[:3]}")
        if self.compressed_copies:
            notes.append(f"{self.compressed_copies} gzip copies of files already metered were not metered again")
        return notes + self.parallel_notes

    def write(self, flows: pa.Table) -> int:
        if flows.num_rows:
            self.sink.write(flows)
            self.rows_written += flows.num_rows
        return flows.num_rows

    def _commit(self, relative: str | None, stat: os.stat_result | None) -> None:
        """Make the flows durable and record the file (and the cache snapshot) as done, in one commit."""
        self.commit([(relative, stat)] if relative is not None and stat is not None else [])

    def commit(self, files: list[tuple[str, os.stat_result]]) -> None:
        """Make the flows durable and record the files (and the cache snapshot) as done, in one commit."""
        for relative, stat in files:
            self.state.mark(relative, stat)
        self.store.save(self.state, self.meter, self._flush)

    def _flush(self, checkpoint: Checkpoint | None) -> None:
        if checkpoint is None:
            self.sink.flush()
        else:
            self.sink.flush(checkpoint)


def follow(
    watcher: CaptureWatcher,
    *,
    poll: float = DEFAULT_POLL,
    stop: threading.Event | None = None,
    once: bool = False,
    producing: Callable[[], bool] | None = None,
    stop_producer: Callable[[], None] | None = None,
) -> None:
    """Poll until ``stop`` is set, Ctrl-C, or (``once``) the directory is drained; then flush everything.

    ``producing`` (e.g. "is our tcpdump still running?") returning False ends the loop. On the
    way out ``stop_producer`` runs first, so the files it was writing are closed and metered too.
    """
    stop = stop or threading.Event()
    try:
        while not stop.is_set():
            still_producing = producing() if producing is not None else True
            watcher.poll(final=once or not still_producing)
            if once or not still_producing:
                break
            stop.wait(poll)
    except KeyboardInterrupt:
        pass
    finally:
        if stop_producer is not None:
            stop_producer()
        watcher.poll(final=True)
        watcher.finish()
