"""``flowscope spark meter --stream``: Structured Streaming's file source follows a capture directory.

Which files. The file source lists the directory (per-day subfolders included) and hands every new
file to exactly one micro-batch, recorded in its log under ``CHECKPOINT/spark``. Spark ignores names
that start with ``.`` (and ``_``), so a mover that writes ``.x.pcap`` and renames it to ``x.pcap``
publishes complete files only. tcpdump writes in place, so a file handed over may still grow: it
waits in the *pending* list until it is complete, which is when a later file of the rotation exists
(tcpdump has moved on) or no process on the driver's machine holds it open (Linux ``/proc``; where
tcpdump runs on another machine, the first rule or the rename convention applies). Files are metered
in rotation order (``flowscope read``'s), so a complete file waits behind an incomplete earlier one.

What "exactly" means per micro-batch. A micro-batch meters its complete files (runs on the executors,
stitched on the driver, as batch mode does) starting from the flows the previous micro-batch left
open. Those open flows, the meter's clock and its fragment table are not written: they are the
*carried* state, kept in ``CHECKPOINT/flowscope``. A flow therefore continues across micro-batches as
it continues across files, and the flows written by all micro-batches of a directory, once the last
open ones are exported (``--once``, or a clean stop), are exactly ``flowscope read DIR``'s. A clean
stop (Ctrl-C, SIGTERM) meters the pending files and exports every open flow, as ``watch`` does; a
later restart starts with an empty cache.

Every file once across restarts, also after SIGKILL. A step (a micro-batch's work) is:

1. its *intent* (step number, Spark batch id, files, final or not) saved with the state it starts from;
2. its flows written, and the sink flushed with the step number as the stream's position (the lake
   commits it in its ledger with the files: ``pipeline.PositionStore``);
3. the state saved: pending files, the new carried state, the step done, no intent.

Every save is one atomic rename. After a crash the intent is redone from its saved state: metering is
deterministic, so the carried state is rebuilt exactly, and the flows are written again only if the
destination's position shows they were not (a destination without positions, a database or Kafka,
may get that one step twice: at least once there). Spark replays a micro-batch it had not marked
done; a batch id the state has passed is skipped.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from flowscope.capture.files import natural_key
from flowscope.capture.options import MeterOptions
from flowscope.capture.source import capture_inputs
from flowscope.capture.watch import open_files
from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError
from flowscope.jobs.spark_meter import SparkMeter, carry_bytes, carry_of, spark_notes, task_error
from flowscope.lake.layout import publish
from flowscope.pipeline import Checkpoint, PositionStore, Sink, Transform, prepare

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SPARK_DIR = "spark"
STATE_DIR = "flowscope"
FILE_SCHEMA = "path string, modificationTime timestamp, length long, content binary"
"""The binaryFile source's schema; only ``path`` is selected, so file contents are never read by Spark."""
NEVER_TOO_OLD = "36500d"
"""The file source ignores files older than ``maxFileAge`` (7 days by default) relative to the newest: an old
capture published late must still be metered."""


@dataclass
class Intent:
    step: int
    batch: int
    files: list[str]
    final: bool


@dataclass
class StreamState:
    step: int = 0
    """Steps completed (a step's flows carry ``step`` as the stream's position)."""
    batch: int = -1
    """The last Spark micro-batch handled."""
    pending: list[str] = field(default_factory=list)
    files: int = 0
    ignored: list[str] = field(default_factory=list)
    carried: str | None = None
    """The file holding the open flows (in the state folder), none when no flow is open."""
    intent: Intent | None = None


class StateStore:
    """``CHECKPOINT/flowscope``: the state (JSON) and the carried flows, each saved by one atomic rename."""

    def __init__(self, checkpoint: Path) -> None:
        self.folder = checkpoint / STATE_DIR
        self.path = self.folder / "state.json"

    def load(self) -> tuple[StreamState, bytes | None]:
        if not self.path.exists():
            return StreamState(), None
        try:
            raw = json.loads(self.path.read_text())
            intent = raw.pop("intent")
            state = StreamState(**raw, intent=Intent(**intent) if intent else None)
            carried = (self.folder / state.carried).read_bytes() if state.carried else None
        except (OSError, ValueError, TypeError) as exc:
            raise FlowscopeError(f"stream state {self.path} is unreadable ({exc}); use a new --checkpoint") from exc
        return state, carried

    def save(self, state: StreamState) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write(self.path, json.dumps(asdict(state), indent=1).encode())

    def save_carried(self, state: StreamState, carried: bytes | None) -> None:
        """New carried flows under the step's name, then the state naming them (the commit), then the old file goes."""
        previous = state.carried
        state.carried = None if carried is None else f"carried-{state.step}.bin"
        if carried is not None and state.carried:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._write(self.folder / state.carried, carried)
        self.save(state)
        if previous and previous != state.carried:
            (self.folder / previous).unlink(missing_ok=True)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        publish(tmp, path)


def local_path(uri: str) -> str:
    """A path of the file source (``file:/x``) as a local path; flowscope's readers read mounted files only."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        raise FlowscopeError(f"{uri}: stream mode reads files on a mounted file system, not {parsed.scheme}://")
    return unquote(parsed.path)


class CaptureStream:
    """The micro-batch handler (``foreachBatch``) and the clean stop, writing to ``sink``."""

    def __init__(
        self,
        spark: SparkSession,
        directory: Path,
        checkpoint: Path,
        sink: Sink,
        options: MeterOptions,
        transforms: Sequence[Transform] = (),
        runs: int | None = None,
    ) -> None:
        self.spark = spark
        self.directory = directory.resolve()
        self.sink = sink
        self.options = options
        self.transforms = transforms
        self.runs = runs
        self.store = StateStore(checkpoint)
        self.key = "spark-meter:" + hashlib.sha1(str(checkpoint.resolve()).encode()).hexdigest()[:16]
        self.state, self.carried = self.store.load()
        self.flows_written = 0
        self.files_metered = 0
        self.skips = Skips(unit="packets")
        self.counters = {"early_expired": 0, "unmatched_fragments": 0}
        self.whole: list[str] = []
        self._stepping = threading.Lock()
        """A micro-batch runs in pyspark's callback thread; the clean stop waits for it before its own step."""
        if self.state.intent is not None:  # a step interrupted by a crash: redo it
            self._do(self.state.intent)

    def handle(self, frame: DataFrame, batch: int) -> None:
        """One micro-batch of new files (``foreachBatch``)."""
        if batch <= self.state.batch:  # replayed after a crash, already done
            return
        new = [local_path(row.path) for row in frame.select("path").collect()]
        self.step(new, batch=batch, final=False)

    def finish(self) -> None:
        """Clean stop: meter every pending file and export every open flow."""
        self.step([], batch=self.state.batch, final=True)

    def step(self, new: Sequence[str], *, batch: int, final: bool) -> None:
        with self._stepping:
            self._step(new, batch=batch, final=final)

    def _step(self, new: Sequence[str], *, batch: int, final: bool) -> None:
        candidates = sorted({*self.state.pending, *new}, key=lambda p: natural_key(Path(p).relative_to(self.directory)))
        ready = self._complete(candidates, final)
        if not ready and not final:
            self.state.pending, self.state.batch = candidates, batch
            self.store.save(self.state)
            return
        self.state.pending = candidates[len(ready) :]
        self.state.intent = Intent(self.state.step + 1, batch, ready, final)
        self.store.save(self.state)
        self._do(self.state.intent)

    def _complete(self, candidates: list[str], final: bool) -> list[str]:
        """The complete files at the head of ``candidates`` (rotation order)."""
        if final:
            return candidates
        held = open_files()
        ready = []
        for index, path in enumerate(candidates):
            moved_on = index + 1 < len(candidates)
            if not (moved_on or (held is not None and str(Path(path).resolve()) not in held)):
                break
            ready.append(path)
        return ready

    def _do(self, intent: Intent) -> None:
        """Meter the intent's files from the carried state, write unless written already, save the state."""
        written = isinstance(self.sink, PositionStore) and self.sink.positions().get(self.key, 0) >= intent.step
        files, ignored = capture_inputs([Path(p) for p in intent.files])
        carry = carry_of(self.carried, self.options) if self.carried else None
        metering = SparkMeter(self.spark, self.options, self.runs, carry)
        for table in metering.meter(files):
            self._write(table, skip=written)
        if intent.final:
            for table in metering.finish():
                self._write(table, skip=written)
        if not written:
            self.sink.flush(Checkpoint(positions={self.key: intent.step}))
        self.skips.merge(metering.skips)
        self.counters["early_expired"] += metering.early_expired
        self.counters["unmatched_fragments"] += metering.unmatched_fragments
        self.whole += metering.whole
        self.carried = None if intent.final else carry_bytes(metering.stitcher.carry)
        self.files_metered += len(files)
        self.state.files += len(files)
        self.state.ignored.extend(ignored)
        self.state.step, self.state.batch = intent.step, max(self.state.batch, intent.batch)
        self.state.intent = None
        self.store.save_carried(self.state, self.carried)

    def _write(self, table: Any, *, skip: bool) -> None:
        table = prepare(table, self.transforms)
        if table.num_rows and not skip:
            self.sink.write(table)
            self.flows_written += table.num_rows

    def notes(self) -> list[str]:
        notes = spark_notes(
            self.options, self.counters["early_expired"], self.counters["unmatched_fragments"], self.whole
        )
        if self.state.ignored:
            ignored = self.state.ignored
            notes.append(f"{len(ignored)} file(s) are not captures and were ignored: {ignored[:3]}")
        return notes


def follow(
    stream: CaptureStream, checkpoint: Path, *, once: bool, poll: float, stop: threading.Event | None = None
) -> None:
    """Run the streaming query until ``stop`` (or, ``once``, until the files there now are handled), then
    meter what is pending and export every open flow."""
    from pyspark.errors import StreamingQueryException

    source = (
        stream.spark.readStream.format("binaryFile")
        .schema(FILE_SCHEMA)
        .option("recursiveFileLookup", "true")
        .option("maxFileAge", NEVER_TOO_OLD)
        .load(stream.directory.as_uri())
        .select("path")
    )
    writer = source.writeStream.foreachBatch(stream.handle).option("checkpointLocation", str(checkpoint / SPARK_DIR))
    writer = writer.trigger(availableNow=True) if once else writer.trigger(processingTime=f"{poll} seconds")
    query = writer.start()
    stop = stop or threading.Event()
    try:
        while query.isActive and not stop.is_set():
            query.awaitTermination(1)
    except StreamingQueryException as exc:
        raise FlowscopeError(f"the stream failed: {task_error(exc)}") from exc
    finally:
        query.stop()
    stream.finish()
