"""Several destinations at once (``--to A --to B``): every call goes to each.

Each destination keeps its own guarantee (the lake commits its ledger, a file publishes whole);
there is no transaction across them: a failure closing one aborts the others that are not closed yet.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from flowscope.pipeline import Checkpoint, PositionStore, Sink


class FanOut:
    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)
        self.name = " + ".join(sink.name for sink in self.sinks)

    def write(self, batch: pa.Table) -> None:
        for sink in self.sinks:
            sink.write(batch)

    def flush(self, checkpoint: Checkpoint | None = None) -> None:
        for sink in self.sinks:
            sink.flush(checkpoint)

    def close(self) -> None:
        for index, sink in enumerate(self.sinks):
            try:
                sink.close()
            except BaseException:
                for rest in self.sinks[index + 1 :]:
                    rest.abort()
                raise

    def abort(self) -> None:
        for sink in self.sinks:
            sink.abort()

    def kept(self) -> list[str]:
        return [line for sink in self.sinks for line in getattr(sink, "kept", list)()]

    def notes(self) -> list[str]:
        return [note for sink in self.sinks for note in getattr(sink, "notes", list)()]


def position_stores(sink: Sink) -> list[PositionStore]:
    """The destinations among ``sink``'s that store checkpoint positions with their data (the lake, PostgreSQL)."""
    sinks = sink.sinks if isinstance(sink, FanOut) else [sink]
    return [s for s in sinks if isinstance(s, PositionStore)]
