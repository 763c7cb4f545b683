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
        self._left: list[str] = []

    def write(self, batch: pa.Table) -> None:
        for sink in list(self.sinks):
            try:
                sink.write(batch)
            except BrokenPipeError:
                if not self._reader_left(sink):
                    raise

    def _reader_left(self, sink: Sink) -> bool:
        """Whether ``sink``, which failed on a broken pipe, is standard output, whose reader went away
        (``--to lake -o - | head``); it is then dropped and the other destinations go on. Alone, ``-o -`` ends
        the command there (quietly, as ``seq`` does); here that would drop what the others were asked to store
        (the lake, a file: aborted, nothing kept) and still exit 0."""
        if not getattr(sink, "on_stdout", False):
            return False
        sink.abort()
        self.sinks.remove(sink)
        self._left.append(f"{sink.name} closed by its reader; the other destinations got every row")
        return True

    def flush(self, checkpoint: Checkpoint | None = None) -> None:
        for sink in self.sinks:
            sink.flush(checkpoint)

    def close(self) -> None:
        pending = list(self.sinks)
        while pending:
            sink = pending.pop(0)
            try:
                sink.close()
            except BrokenPipeError:
                if not self._reader_left(sink):
                    self._abort(pending)
                    raise
            except BaseException:
                self._abort(pending)
                raise

    @staticmethod
    def _abort(sinks: Sequence[Sink]) -> None:
        for sink in sinks:
            sink.abort()

    def abort(self) -> None:
        self._abort(self.sinks)

    def kept(self) -> list[str]:
        return [line for sink in self.sinks for line in getattr(sink, "kept", list)()]

    def notes(self) -> list[str]:
        return self._left + [note for sink in self.sinks for note in getattr(sink, "notes", list)()]


def position_stores(sink: Sink) -> list[PositionStore]:
    """The destinations among ``sink``'s that store checkpoint positions with their data (the lake, PostgreSQL)."""
    sinks = sink.sinks if isinstance(sink, FanOut) else [sink]
    return [s for s in sinks if isinstance(s, PositionStore)]
