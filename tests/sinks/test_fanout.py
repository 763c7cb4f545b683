"""Several destinations: standard output's reader leaving (``| head``) stops only standard output."""

from __future__ import annotations

import pyarrow as pa
import pytest

from flowscope.pipeline import Checkpoint
from flowscope.sinks.fanout import FanOut

BATCH = pa.table({"n": [1, 2, 3]})


class Recording:
    def __init__(self, name: str, *, on_stdout: bool = False, breaks_at: str | None = None) -> None:
        self.name, self.on_stdout, self.breaks_at = name, on_stdout, breaks_at
        self.rows, self.closed, self.aborted = 0, False, False

    def write(self, batch: pa.Table) -> None:
        if self.breaks_at == "write":
            raise BrokenPipeError(32, "Broken pipe")
        self.rows += batch.num_rows

    def flush(self, checkpoint: Checkpoint | None = None) -> None: ...

    def close(self) -> None:
        if self.breaks_at == "close":
            raise BrokenPipeError(32, "Broken pipe")
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


@pytest.mark.parametrize("breaks_at", ["write", "close"])
def test_the_others_get_every_row(breaks_at: str) -> None:
    stdout = Recording("standard output", on_stdout=True, breaks_at=breaks_at)
    lake, file = Recording("lake"), Recording("x.csv")
    fanout = FanOut([lake, stdout, file])
    fanout.write(BATCH)
    fanout.write(BATCH)
    fanout.close()
    assert (lake.rows, lake.closed, file.rows, file.closed) == (6, True, 6, True)
    assert stdout.aborted and not stdout.closed
    assert fanout.notes() == ["standard output closed by its reader; the other destinations got every row"]


def test_a_broken_pipe_elsewhere_fails_the_run() -> None:
    """A database socket or a worker pipe breaking is an error, and the destinations not closed are aborted."""
    broken, after = Recording("clickhouse", breaks_at="close"), Recording("lake")
    fanout = FanOut([broken, after])
    with pytest.raises(BrokenPipeError):
        fanout.close()
    assert after.aborted and not after.closed
    with pytest.raises(BrokenPipeError):
        FanOut([Recording("kafka", breaks_at="write"), after]).write(BATCH)
