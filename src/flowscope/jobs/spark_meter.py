"""``flowscope spark meter``: rotated capture files metered on a Spark cluster, equal to ``flowscope read DIR``.

The data path (docs/SCALING.md):

1. the driver lists the capture files in rotation order (``flowscope read``'s order: per-day
   subfolders included, natural numbers) and cuts them into contiguous *runs* of about equal bytes;
2. each run is one Spark task: ``mapInArrow`` over a DataFrame of runs meters its files with
   flowscope's own readers and meter from an empty flow cache (``jobs.stitch``), and returns the
   partial result as Arrow IPC bytes;
3. the driver takes the partial results in run order and stitches them (flows crossing a run
   boundary become the flows one meter would have made, timeouts respected) and writes the flows
   with flowscope's sinks: the lake's ingest ledger records the files in the same commit, so a
   rerun adds nothing, and every destination of the registry works.

Why the driver writes, not Spark (measured in BENCHMARKS.md, "Spark"): the stitch is sequential
by nature and needs every run's boundary flows on one process anyway, and writing through
flowscope's sinks keeps the lake's layout, file names, ledger and recovery instead of a second
writer that would bypass them. The executors do the expensive part (decoding and metering, about
95% of ``read``'s time); the driver's share is stitching and writing finished flows.
Executors must read the same paths as the driver (a shared mount: NFS, CephFS, a FUSE bucket).
"""

from __future__ import annotations

import functools
import itertools
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from flowscope.capture.options import MeterOptions
from flowscope.errors import FlowscopeError
from flowscope.jobs import partials
from flowscope.lake.ledger import Ledger
from flowscope.pipeline import RunStats, Sink, run
from flowscope.readers.inputs import Inputs, open_inputs
from flowscope.readers.options import ReadOptions

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

RUNS_PER_CORE = 2
"""Runs per executor core: more than one evens out runs of unequal packet mixes (a run costs a task start
and its boundary flows, about 0.1 s and a few thousand flows)."""
PIECE_BYTES = 64 << 20
"""A partial result travels as binary values of at most this size (Arrow binary offsets are 32-bit)."""
RUNS_SCHEMA = "run int, paths array<string>"
PIECES_SCHEMA = "run int, piece int, data binary"


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


def meter_runs(batches: Iterator[pa.RecordBatch], options: dict[str, Any]) -> Iterator[pa.RecordBatch]:
    """On an executor: each run's files metered from an empty cache, the partial result in pieces."""
    meter = MeterOptions(**options)
    for batch in batches:
        runs = batch.column("run").to_pylist()
        for run_index, paths in zip(runs, batch.column("paths").to_pylist(), strict=True):
            data = partials.meter_run([Path(p) for p in paths], meter)
            starts = range(0, max(1, len(data)), PIECE_BYTES)
            yield pa.RecordBatch.from_pydict(
                {
                    "run": pa.array([run_index] * len(starts), pa.int32()),
                    "piece": pa.array(range(len(starts)), pa.int32()),
                    "data": pa.array([data[s : s + PIECE_BYTES] for s in starts], pa.binary()),
                }
            )


def metered_runs(spark: SparkSession, runs: Sequence[Sequence[Path]], options: MeterOptions) -> Iterator[bytes]:
    """The partial results of ``runs`` (metered in parallel on the executors), in run order.

    The results are kept by Spark (memory, then disk) and fetched one run at a time, so the driver
    holds one run's partial result, not all of them.
    """
    if not runs:
        return
    from pyspark import StorageLevel

    rows = [(index, [str(path.resolve()) for path in paths]) for index, paths in enumerate(runs)]
    frame = spark.sparkContext.parallelize(rows, len(rows)).toDF(RUNS_SCHEMA)  # one run per task, in order
    pieces = frame.mapInArrow(functools.partial(meter_runs, options=asdict(options)), PIECES_SCHEMA)
    pieces = pieces.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        pieces.count()  # every run metered at once; the iterator below then only fetches
        current, gathered = 0, list[bytes]()
        for row in pieces.toLocalIterator():
            if row.run != current:
                yield b"".join(gathered)
                current, gathered = row.run, []
            gathered.append(bytes(row.data))
        yield b"".join(gathered)
    finally:
        pieces.unpersist()


class SparkCaptureSource:
    """``capture.source.CaptureSource``'s twin (a ``pipeline.Source``): the same flows, metered on Spark."""

    def __init__(self, spark: SparkSession, paths: Sequence[Path], options: MeterOptions, runs: int | None) -> None:
        self.spark = spark
        self.options = options
        self.files, self.ignored = partials.capture_inputs(paths)
        self.runs = plan_runs(self.files, runs or RUNS_PER_CORE * spark.sparkContext.defaultParallelism)
        self.stitcher = partials.Stitcher(options)
        self.skips = self.stitcher.skips
        self._total = sum(path.stat().st_size for path in self.files)
        self._done = 0

    def __iter__(self) -> Iterator[pa.Table]:
        for run_files, partial in zip(self.runs, metered_runs(self.spark, self.runs, self.options), strict=True):
            yield from self.stitcher.add(partial)
            self._done += sum(path.stat().st_size for path in run_files)
        yield from self.stitcher.finish()

    def progress(self) -> tuple[int, int | None]:
        return self._done, self._total

    @property
    def notes(self) -> list[str]:
        notes = self.stitcher.notes()
        if self.ignored:
            notes.append(f"{len(self.ignored)} file(s) in the given folders are not captures: {self.ignored[:3]}")
        return notes


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

    flowscope(["spark", "meter", *(sys.argv[1:] if argv is None else argv)], prog_name="flowscope spark meter")


if __name__ == "__main__":
    main()
