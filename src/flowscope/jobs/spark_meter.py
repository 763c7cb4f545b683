"""``flowscope spark meter``: rotated capture files metered on a Spark cluster, equal to ``flowscope read DIR``.

The data path (docs/SCALING.md):

1. the driver lists the capture files in rotation order (``flowscope read``'s order: per-day
   subfolders included, natural numbers) and cuts them into contiguous *runs* of about equal bytes;
2. each run is one Spark task: ``mapInArrow`` over a DataFrame of runs meters its files with
   flowscope's own readers and meter from an empty flow cache (``jobs.runs.meter_run``) and returns
   its final flows and its ``RunState`` as Arrow IPC values; Spark keeps them (memory, then disk);
3. the driver stitches the runs' states in order (``jobs.stitch.Stitcher``: flows crossing a run
   boundary become the flows one meter makes, timeouts respected), then fetches the final flows
   run by run and writes everything with flowscope's sinks. The lake's ingest ledger records the
   files in the same commit, so a rerun adds nothing, and every destination of the registry works.

Inputs the stitcher refuses (``NotStitchable``: times that go back between files, the flow cache
limit reached, a fragment whose first part is in the previous run; no rotation produces them) are
metered again as one run in one task, from the flows carried in (exact, not parallel), with a note.

Why the driver writes, not Spark (measured in BENCHMARKS.md, "Spark"): stitching is sequential and
needs every run's state on one process anyway, and writing through flowscope's sinks keeps the
lake's layout, file names, ledger and recovery instead of a second writer that would bypass them.
The executors do the expensive part (decoding and metering); the driver stitches and writes.
Executors must read the same paths as the driver (a shared mount: NFS, CephFS, a FUSE bucket) and
have flowscope installed (docs/SCALING.md).
"""

from __future__ import annotations

import functools
import io
import itertools
import json
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from flowscope.capture.files import iter_packet_batches
from flowscope.capture.meter import FlowMeter
from flowscope.capture.options import MeterOptions
from flowscope.capture.source import capture_inputs, counter_notes, ignored_note
from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError
from flowscope.jobs.runs import RunState, ipc_buffer, read_ipc
from flowscope.jobs.stitch import Carry, NotStitchable, Stitcher, meter_run
from flowscope.lake.ledger import Ledger
from flowscope.pipeline import RunStats, Sink, run
from flowscope.readers.inputs import Inputs, open_inputs
from flowscope.readers.options import ReadOptions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

RUNS_PER_CORE = 2
"""Runs per executor core: more than one evens out runs of unequal packet mixes (each run costs a task and
the stitching of its head, the flows of its first ``idle`` seconds)."""
PIECE_BYTES = 64 << 20
"""A value travels in pieces of at most this size (Spark's binary values are Arrow binary: 32-bit offsets)."""
TASKS_SCHEMA = "run int, paths array<string>, carry binary"
PIECES_SCHEMA = "run int, value int, kind string, data binary"
FLOWS, STATE, CARRY, SKIPS = "flows", "state", "carry", "skips"


def plan_runs(files: Sequence[Path], runs: int) -> list[list[Path]]:
    """``files`` cut into at most ``runs`` contiguous runs of about equal bytes (none empty)."""
    if not files:
        return []
    sizes = np.cumsum([max(1, path.stat().st_size) for path in files])
    targets = sizes[-1] * np.arange(1, runs) / runs
    cuts = np.unique(np.searchsorted(sizes, targets, side="left") + 1)
    cuts = cuts[(cuts > 0) & (cuts < len(files))]
    bounds = [0, *cuts.tolist(), len(files)]
    return [list(files[start:stop]) for start, stop in itertools.pairwise(bounds)]


def carry_bytes(carry: Carry) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **carry.state())
    return buffer.getvalue()


def carry_of(data: bytes, options: MeterOptions) -> Carry:
    meter = FlowMeter(options)
    with np.load(io.BytesIO(data)) as arrays:
        meter.restore(dict(arrays))
    return Carry.of_meter(meter)


class _Pieces:
    """A task's output rows: each value (an IPC stream, a JSON text) numbered, in pieces of at most PIECE_BYTES."""

    def __init__(self, run: int) -> None:
        self.run = run
        self.values = itertools.count()

    def __call__(self, kind: str, data: bytes | pa.Buffer) -> pa.RecordBatch:
        view = memoryview(data)
        starts = range(0, max(1, len(view)), PIECE_BYTES)
        value = next(self.values)
        return pa.RecordBatch.from_pydict(
            {
                "run": pa.array([self.run] * len(starts), pa.int32()),
                "value": pa.array([value] * len(starts), pa.int32()),
                "kind": pa.array([kind] * len(starts), pa.string()),
                "data": pa.array([bytes(view[s : s + PIECE_BYTES]) for s in starts], pa.binary()),
            }
        )


def meter_tasks(
    batches: Iterator[pa.RecordBatch], options: dict[str, Any], opens_stream: bool = False
) -> Iterator[pa.RecordBatch]:
    """On an executor: each task's run metered; its final flows and state (or, for a run given the carried
    flows, all its flows and the new carry) as Arrow IPC pieces. ``opens_stream``: nothing is open before run 0,
    so it keeps no head (``meter_run``'s ``opens_stream``)."""
    meter_options = MeterOptions(**options)
    for batch in batches:
        tasks = zip(*(batch.column(name).to_pylist() for name in ("run", "paths", "carry")), strict=True)
        for index, paths, carry in tasks:
            files, pieces = [Path(path) for path in paths], _Pieces(index)
            if carry is None:
                partial = meter_run(files, meter_options, index=index, opens_stream=opens_stream and index == 0)
                for table in partial.flows:
                    yield pieces(FLOWS, ipc_buffer(table))
                yield pieces(STATE, ipc_buffer(partial.state.to_arrow()))
            else:
                yield from _meter_whole(pieces, files, meter_options, carry)


def _meter_whole(pieces: _Pieces, files: list[Path], options: MeterOptions, carry: bytes) -> Iterator[pa.RecordBatch]:
    """One meter over all of ``files``, continuing from the carried flows (what ``NotStitchable`` inputs need)."""
    skips = Skips(unit="packets")
    meter = FlowMeter(options, skips)
    with np.load(io.BytesIO(carry)) as arrays:
        meter.restore(dict(arrays))
    for batch in iter_packet_batches(files, tunnels=options.tunnels, skips=skips):
        flows = meter.add(batch)
        if flows.num_rows:
            yield pieces(FLOWS, ipc_buffer(flows))
    counters = {"early_expired": meter.early_expired, "unmatched_fragments": meter.unmatched_fragments}
    info = {"counts": dict(skips.counts), "examples": skips.examples, **counters}
    yield pieces(SKIPS, json.dumps(info).encode())
    yield pieces(CARRY, carry_bytes(Carry.of_meter(meter)))


def _values(frame: DataFrame, kind: str, *, at_once: bool = False) -> Iterator[tuple[int, bytes]]:
    """(run, value) of ``kind`` in run order (a partition is a run, kept in the order its task wrote it), pieces
    joined: fetched in one Spark job (``at_once``: states, small), else a run at a time (one job per run, the next
    fetched while this one is used: flows, bounded memory on the driver)."""
    selected = frame.filter(frame.kind == kind)
    rows = iter(selected.collect()) if at_once else selected.toLocalIterator(prefetchPartitions=True)
    for (index, _), group in itertools.groupby(rows, key=lambda row: (row.run, row.value)):
        yield index, b"".join(bytes(row.data) for row in group)


def task_error(exc: BaseException) -> str:
    """The line that says what went wrong in a failed Spark task: a ``FlowscopeError``'s message (an unreadable
    file), else the last line of the Python traceback, else the first line of the error."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "FlowscopeError: " in line:
            return line.partition("FlowscopeError: ")[2]
    python = [line for line in lines if re.match(r"^[A-Za-z_.]+(Error|Exception): ", line)]
    return python[-1] if python else (lines[0] if lines else type(exc).__name__)


def spark_notes(options: MeterOptions, early_expired: int, unmatched_fragments: int, whole: list[str]) -> list[str]:
    """What the user should know about metering on Spark (``SparkMeter``'s counters, or a stream's sums)."""
    notes = counter_notes(early_expired, options.max_flows, unmatched_fragments)
    if whole:
        notes.append(
            f"{len(whole)} time(s) these files could not be metered apart exactly ({whole[0]}): "
            "metered in one Spark task instead"
        )
    return notes


class SparkMeter:
    """Files of one rotation stream metered on Spark: the flows, and the stitcher's carry and counters after them."""

    def __init__(self, spark: SparkSession, options: MeterOptions, runs: int | None, carry: Carry | None = None):
        self.spark = spark
        self.options = options
        self.runs = runs or RUNS_PER_CORE * spark.sparkContext.defaultParallelism
        self.stitcher = Stitcher(options, carry)
        self.skips = Skips(unit="packets")
        self.early_expired = 0
        self.unmatched_fragments = 0
        self.whole: list[str] = []
        """Why runs were metered in one task instead (``NotStitchable``), once per time."""
        self.seconds = {"executors": 0.0, "stitching": 0.0}
        """Wall seconds of the jobs on the executors and of stitching on the driver (the rest of a run is
        fetching and writing the flows: where writing from the executors could save time)."""

    def meter(self, files: Sequence[Path]) -> Iterator[pa.Table]:
        """The flows of ``files`` that are settled given everything metered before (``finish`` exports the rest)."""
        runs = plan_runs(files, self.runs)
        if not runs:
            return
        pieces = self._job([(index, run, None) for index, run in enumerate(runs)])
        try:
            try:
                stitched = self._stitch(pieces)
            except NotStitchable as exc:
                self.whole.append(str(exc))
                stitched = None
            if stitched is not None:
                yield from (read_ipc(data) for _, data in _values(pieces, FLOWS))
                yield from stitched
                return
        finally:
            pieces.unpersist()
        yield from self._meter_whole(files)

    def finish(self) -> list[pa.Table]:
        """Every flow still open (the end of the input)."""
        return self.stitcher.finish()

    def notes(self) -> list[str]:
        return spark_notes(self.options, self.early_expired, self.unmatched_fragments, self.whole)

    def _job(self, tasks: list[tuple[int, list[Path], bytes | None]]) -> DataFrame:
        """The tasks metered on the executors (one task each, all at once), their results kept by Spark."""
        from pyspark import StorageLevel

        rows = [(index, [str(path.resolve()) for path in paths], carry) for index, paths, carry in tasks]
        frame = self.spark.sparkContext.parallelize(rows, len(rows)).toDF(TASKS_SCHEMA)
        opens_stream = not len(self.stitcher.carry.rows)
        metering = functools.partial(meter_tasks, options=asdict(self.options), opens_stream=opens_stream)
        pieces = frame.mapInArrow(metering, PIECES_SCHEMA)
        pieces = pieces.persist(StorageLevel.MEMORY_AND_DISK)
        started = time.perf_counter()
        try:
            pieces.count()
        except Exception as exc:  # a task failed: its Python error as one line, the Java stack under --debug
            pieces.unpersist()
            raise FlowscopeError(f"metering on Spark failed: {task_error(exc)}") from exc
        self.seconds["executors"] += time.perf_counter() - started
        return pieces

    def _stitch(self, pieces: DataFrame) -> list[pa.Table]:
        """Every run's state stitched in order: the flows crossing run boundaries, all of them before any flow is
        written, so that a ``NotStitchable`` input has written nothing (and leaves this meter as it was)."""
        started = time.perf_counter()
        stitcher = Stitcher(self.options, self.stitcher.carry)
        states = (RunState.from_arrow(read_ipc(data)) for _, data in _values(pieces, STATE, at_once=True))
        stitched = [table for state in states for table in stitcher.add(state)]
        self.seconds["stitching"] += time.perf_counter() - started
        self.stitcher = stitcher
        self.skips.merge(stitcher.skips)
        self.unmatched_fragments += stitcher.unmatched_fragments
        return stitched

    def _meter_whole(self, files: Sequence[Path]) -> Iterator[pa.Table]:
        carry = carry_bytes(self.stitcher.carry)
        pieces = self._job([(0, list(files), carry)])
        try:
            yield from (read_ipc(data) for _, data in _values(pieces, FLOWS))
            info = json.loads(next(_values(pieces, SKIPS, at_once=True))[1])
            for reason, count in info["counts"].items():
                self.skips.add(reason, count, info["examples"].get(reason))
            self.early_expired += info["early_expired"]
            self.unmatched_fragments += info["unmatched_fragments"]
            self.stitcher = Stitcher(
                self.options, carry_of(next(_values(pieces, CARRY, at_once=True))[1], self.options)
            )
        finally:
            pieces.unpersist()


class SparkCaptureSource:
    """``capture.source.CaptureSource``'s twin (a ``pipeline.Source``): the same flows, metered on Spark."""

    def __init__(self, spark: SparkSession, paths: Sequence[Path], options: MeterOptions, runs: int | None) -> None:
        self.files, self.ignored = capture_inputs(paths)
        self.metering = SparkMeter(spark, options, runs)
        self.runs = plan_runs(self.files, self.metering.runs)
        self.skips = self.metering.skips
        self._total = sum(path.stat().st_size for path in self.files)
        self._done = 0

    def __iter__(self) -> Iterator[pa.Table]:
        yield from self.metering.meter(self.files)
        self._done = self._total
        yield from self.metering.finish()

    def progress(self) -> tuple[int, int | None]:
        return self._done, self._total

    @property
    def notes(self) -> list[str]:
        return self.metering.notes() + ignored_note(self.ignored)


def plan_batch(
    spark: Callable[[], SparkSession],
    directory: Path,
    options: ReadOptions,
    ledgers: Sequence[Ledger],
    *,
    again: bool,
    runs: int | None,
) -> Inputs:
    """``flowscope read DIRECTORY``'s plan (units, ledger repeats, checkpoints), its captures metered on Spark.

    ``spark`` is called for the session only when there is something new to meter (a rerun starts no JVM).
    """
    plan = open_inputs([str(directory)], options, input_format="pcap", ledgers=ledgers, again=again)
    for index, unit in enumerate(plan.units):

        def open_on_spark(paths: Sequence[Path], read: ReadOptions) -> SparkCaptureSource:
            return SparkCaptureSource(spark(), paths, read.meter, runs)

        plan.units[index] = replace(unit, reader=replace(unit.reader, open=open_on_spark))
    return plan


def meter_batch(
    spark: Callable[[], SparkSession],
    directory: Path,
    sink: Sink,
    options: ReadOptions,
    ledgers: Sequence[Ledger],
    *,
    again: bool = False,
    runs: int | None = None,
    on_batch: Callable[[pa.Table], None] | None = None,
) -> tuple[RunStats, Inputs]:
    """Meter every capture file under ``directory`` into ``sink`` (opened transactional: the ledger commits the
    files with their flows)."""
    if not directory.is_dir():
        raise FlowscopeError(f"{directory}: not a directory")
    try:
        plan = plan_batch(spark, directory, options, ledgers, again=again, runs=runs)
    except BaseException:
        sink.abort()
        raise
    return run(plan, sink, options.transforms(), on_batch), plan


def main(argv: Sequence[str] | None = None) -> None:
    """``spark-submit [SPARK OPTIONS] .../flowscope/jobs/spark_meter.py INPUT_DIR [OPTIONS]``: the same job as
    ``flowscope spark meter INPUT_DIR [OPTIONS]``, its session (master, resources) configured by spark-submit."""
    from flowscope.cli import main as flowscope

    flowscope(["spark", "meter", *(sys.argv[1:] if argv is None else argv)], prog_name="flowscope")


if __name__ == "__main__":
    main()
