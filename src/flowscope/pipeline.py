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

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from flowscope.diagnostics import Skips
from flowscope.schema import conform

Batch = pa.Table | pa.RecordBatch
Transform = Callable[[pa.Table], pa.Table]

FLOWS = "flows"
_TABLE_KEY = b"flowscope.table"


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
    ``abort`` discards whatever is not yet published: a failed run leaves nothing half-done.
    """

    name: str

    def write(self, batch: pa.Table) -> None: ...

    def flush(self, checkpoint: Checkpoint | None = None) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


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
    flushed at a checkpoint before stays.
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
    except BaseException:
        sink.abort()
        raise
    sink.close()
    return stats
