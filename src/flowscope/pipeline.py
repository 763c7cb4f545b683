"""The data path: a source yields Arrow batches of flows, transforms map batches, a sink consumes them.

Every input (captures, exports, CSVs, nfdump files) is a ``Source``; every output
(the lake, files, databases) is a ``Sink``. ``run`` is the only loop that joins them,
so progress, counting and clean shutdown live in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from flowscope.diagnostics import Skips
from flowscope.schema import conform

Batch = pa.Table | pa.RecordBatch
Transform = Callable[[pa.Table], pa.Table]


class Source(Protocol):
    """Yields flow batches; counts what it skipped and how far through its input it is."""

    skips: Skips

    def __iter__(self) -> Iterator[Batch]: ...

    def progress(self) -> tuple[int, int | None]:
        """(input bytes consumed, total input bytes or None when unknown, e.g. a stream)."""
        ...


class Sink(Protocol):
    """Consumes flow batches; ``close`` makes everything written durable."""

    def write(self, batch: pa.Table) -> None: ...

    def close(self) -> None: ...


@dataclass
class RunStats:
    batches: int = 0
    rows: int = 0


def run(
    source: Iterable[Batch],
    sink: Sink,
    transforms: Sequence[Transform] = (),
    on_batch: Callable[[pa.Table], None] | None = None,
) -> RunStats:
    """Drive ``source`` through ``transforms`` into ``sink``; the sink is closed even on error or Ctrl-C."""
    stats = RunStats()
    try:
        for batch in source:
            table = conform(batch)
            for transform in transforms:
                table = transform(table)
            if table.num_rows:
                sink.write(table)
            stats.batches += 1
            stats.rows += table.num_rows
            if on_batch is not None:
                on_batch(table)
    finally:
        sink.close()
    return stats
