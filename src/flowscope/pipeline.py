"""The data path: a source yields Arrow batches, transforms map batches, a sink consumes them.

Every input (captures, exports, CSVs, nfdump files, Kafka topics) is a ``Source``; every output
(the lake, files, databases, Kafka) is a ``Sink`` opened from a destination URL by
``flowscope.sinks.registry``. ``run`` is the one loop that joins them for finite inputs;
``Streamer`` is its twin for long-running sources (collector, watch), which must also flush
on a timer while no data arrives.

Batches are flow-schema tables unless tagged for a second table of the catalogue
(``tag``/``table_of``: the name travels in the Arrow schema metadata, so it survives every
hop that keeps the schema). A ``Checkpoint`` is what the data written so far stands for:
the inputs it completes (the lake records them in its ingest ledger in the same commit) or
the stream positions it reaches (Kafka offsets, stored with the data where the sink can).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias, runtime_checkable

import pyarrow as pa

from flowscope.diagnostics import Skips
from flowscope.schema import FLOWS, conform

Batch: TypeAlias = pa.Table | pa.RecordBatch
Transform = Callable[[pa.Table], pa.Table]

_TABLE_KEY = b"flowscope.table"
QUEUE_BYTES = 64 << 20
"""Batches a ``Stream`` holds for its writer thread, in bytes: as much as the collector's receive queue."""


def tag(batch: pa.Table, table: str) -> pa.Table:
    """``batch`` marked as rows of the catalogue table ``table`` (flows need no tag)."""
    metadata = dict(batch.schema.metadata or {})
    metadata[_TABLE_KEY] = table.encode()
    return batch.replace_schema_metadata(metadata)


def table_of(batch: Batch) -> str:
    """The catalogue table a batch belongs to: its tag, else ``flows``."""
    metadata = batch.schema.metadata or {}
    return metadata.get(_TABLE_KEY, FLOWS.encode()).decode()


@dataclass(frozen=True)
class InputRecord:
    """One input as the ingest ledger knows it: what it is (content digest, size) and how it was read."""

    name: str
    digest: str
    size: int
    sample: str
    """Hash of the first and last MiB: with the size, how a repeat is recognised without reading it all."""
    options: str
    """A fingerprint of the options that shape the output (same file, other options = another input)."""


@dataclass(frozen=True)
class Checkpoint:
    """What everything written before it stands for; handed to ``Sink.flush``."""

    inputs: tuple[InputRecord, ...] = ()
    positions: dict[str, Any] = field(default_factory=dict)
    """Stream positions (e.g. Kafka ``{"topic/partition": offset}``) reached by the data so far."""


class Source(Protocol):
    """Yields flow batches; counts what it skipped and how far through its input it is."""

    skips: Skips

    def __iter__(self) -> Iterator[Batch]: ...

    def progress(self) -> tuple[int, int | None]:
        """(input bytes consumed, total input bytes or None when unknown, e.g. a stream)."""
        ...


class Sink(Protocol):
    """A destination for batches.

    ``write`` may buffer. ``flush`` makes everything written so far durable (and, given a
    checkpoint, records what it stands for where the destination can do so atomically):
    after it returns, a consumer may commit its offsets. ``close`` flushes and releases.
    ``abort`` discards whatever is not yet published: a failed run leaves nothing half-done. A sink may also
    say what an aborted run leaves with it (``kept() -> list[str]``, one line per destination; see ``abort``).
    """

    name: str

    def write(self, batch: pa.Table) -> None: ...

    def flush(self, checkpoint: Checkpoint | None = None) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


@runtime_checkable
class PositionStore(Protocol):
    """A destination that stores ``Checkpoint.positions`` atomically with its data and reads them back.

    A stream consumer resumes each partition from here, so such a destination gets every message once.
    """

    def positions(self) -> dict[str, Any]:
        """The positions committed with the data so far (``{}`` before any)."""
        ...


@dataclass
class RunStats:
    batches: int = 0
    rows: int = 0
    rows_by_table: dict[str, int] = field(default_factory=dict)

    def count(self, table: pa.Table) -> None:
        self.batches += 1
        name = table_of(table)
        self.rows_by_table[name] = self.rows_by_table.get(name, 0) + table.num_rows
        if name == FLOWS:
            self.rows += table.num_rows


def prepare(batch: Batch, transforms: Sequence[Transform]) -> pa.Table:
    """A source's batch as sinks take it: flows conformed to the schema and transformed, other tables as they are."""
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    if table_of(table) != FLOWS:
        return table
    table = conform(table)
    for transform in transforms:
        table = transform(table)
    return table


def run(
    source: Iterable[Batch | Checkpoint],
    sink: Sink,
    transforms: Sequence[Transform] = (),
    on_batch: Callable[[pa.Table], None] | None = None,
) -> RunStats:
    """Drive ``source`` through ``transforms`` into ``sink``.

    A ``Checkpoint`` from the source flushes the sink with it. At the end the sink is closed
    (everything published); on an error or Ctrl-C it is aborted instead, so only what was
    flushed at a checkpoint before stays. That holds in ``close`` too, where a sink may still do
    the most work (a whole-input reduction's merge, a lake's last files): a Ctrl-C there left a
    file's staging copy behind. Every sink's ``abort`` may follow its own ``close``.
    """
    stats = RunStats()
    try:
        for item in source:
            if isinstance(item, Checkpoint):
                sink.flush(item)
                continue
            table = prepare(item, transforms)
            if table.num_rows:
                sink.write(table)
            stats.count(table)
            if on_batch is not None:
                on_batch(table)
        sink.close()
    except BaseException as exc:
        abort(sink, exc)
        raise
    return stats


def abort(sink: Sink, error: BaseException) -> None:
    """Abort ``sink`` because of ``error``. On Ctrl-C the ``KeyboardInterrupt`` takes what each destination
    keeps as notes (``sink.kept()``: a file nothing, the lake the inputs it committed, a database what it
    stored before), which the command line shows: what survives an interrupt differs by destination, and one
    sentence for all of them was untrue for some."""
    sink.abort()
    kept: Callable[[], list[str]] | None = getattr(sink, "kept", None)
    if isinstance(error, KeyboardInterrupt) and kept is not None:
        for line in kept():
            error.add_note(line)


class Stream:
    """``run``'s twin for long-running sources that push batches (the collector, ``watch``, consumers).

    A thread owns the sink: ``write`` queues a batch (at most ``queue_batches`` holding at most
    ``queue_bytes`` together, one batch always allowed, so memory in flight is bounded and a slow
    destination slows the producer instead of growing the heap; a count alone did not bound it: 64
    collector batches of 98 k decoded flows grew the collector by 560 MiB in a 60 s burst, issue 16),
    the thread transforms and writes it, and flushes the sink every ``flush_seconds`` while data
    arrived, also when the source is idle. Parquet and network writes release the GIL, so writing
    overlaps the producer's decoding on a second core. ``flush`` waits until everything queued is
    durable; ``close`` flushes and stops; an error in the thread aborts the sink and is raised
    to the producer on its next call. ``flush_seconds=None``: no timer, the producer's checkpoints
    are the only flushes (a Kafka consumer, whose positions must be committed with the data).
    """

    def __init__(
        self,
        sink: Sink,
        transforms: Sequence[Transform] = (),
        *,
        flush_seconds: float | None = 5.0,
        queue_batches: int = 64,
        queue_bytes: int = QUEUE_BYTES,
    ) -> None:
        self.sink = sink
        self.name = sink.name
        self.transforms = transforms
        self.flush_seconds = flush_seconds
        self.stats = RunStats()
        self.error: BaseException | None = None
        self._queue: queue.Queue[pa.Table | _Control] = queue.Queue(queue_batches)
        self.queue_bytes = queue_bytes
        self._queued_bytes = 0
        self._dequeued = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"write {sink.name}", daemon=True)
        self._thread.start()

    def write(self, batch: Batch) -> None:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        size = table.nbytes
        with self._dequeued:
            while self._queued_bytes and self._queued_bytes + size > self.queue_bytes:
                self._raise()
                if not self._thread.is_alive():
                    raise RuntimeError("the stream's writer thread has stopped")
                self._dequeued.wait(0.5)
            self._queued_bytes += size
        self._put(table)

    def flush(self, checkpoint: Checkpoint | None = None) -> None:
        """Block until everything written so far is durable (with ``checkpoint`` recorded where the sink can)."""
        done = _Control("flush", checkpoint)
        self._put(done)
        while not done.finished.wait(0.5) and self._thread.is_alive():
            pass
        self._raise()

    def _put(self, item: pa.Table | _Control) -> None:
        """Queue ``item``, waiting while the queue is full, unless the thread has failed."""
        while True:
            self._raise()
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full as full:
                if not self._thread.is_alive():
                    self._raise()
                    raise RuntimeError("the stream's writer thread has stopped") from full

    def close(self) -> None:
        """Write everything queued, close the sink, stop the thread (idempotent)."""
        if self._thread.is_alive():
            self._put(_Control("close"))
            self._thread.join()
        self._raise()

    def abort(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_Control("abort"))  # the thread is alive, so the queue drains
            self._thread.join()

    def notes(self) -> list[str]:
        notes: Callable[[], list[str]] = getattr(self.sink, "notes", list)
        return notes()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        dirty_since: float | None = None
        try:
            while True:
                timeout = (
                    None
                    if dirty_since is None or self.flush_seconds is None
                    else max(0.0, dirty_since + self.flush_seconds - time.monotonic())
                )
                try:
                    item = self._queue.get(timeout=timeout)
                except queue.Empty:
                    self.sink.flush()
                    dirty_since = None
                    continue
                if isinstance(item, _Control):
                    if item.action == "abort":
                        self.sink.abort()
                        return
                    if item.action == "close":
                        self.sink.close()
                        return
                    self.sink.flush(item.checkpoint)
                    dirty_since = None
                    item.finished.set()
                    continue
                with self._dequeued:
                    self._queued_bytes -= item.nbytes
                    self._dequeued.notify_all()
                table = prepare(item, self.transforms)
                if table.num_rows:
                    self.sink.write(table)
                    dirty_since = dirty_since if dirty_since is not None else time.monotonic()
                self.stats.count(table)
        except BaseException as exc:
            self.error = exc
            self.sink.abort()
            while True:  # release every producer waiting on a flush
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Control):
                    item.finished.set()


class _Control:
    """A request to the stream's thread, with an event the requester waits on."""

    def __init__(self, action: str, checkpoint: Checkpoint | None = None) -> None:
        self.action = action
        self.checkpoint = checkpoint
        self.finished = threading.Event()
