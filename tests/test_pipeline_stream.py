"""``pipeline.Stream``: what it holds for its writer thread is bounded in bytes, not only in batches."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
from tests.helpers import flows, wait_until

from flowscope.pipeline import Checkpoint, Stream


class BlockedSink:
    """A destination that takes nothing until ``release`` is set (a slow database, a full disk)."""

    name = "blocked"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.rows = 0

    def write(self, batch: pa.Table) -> None:
        self.release.wait()
        self.rows += batch.num_rows

    def flush(self, checkpoint: Checkpoint | None = None) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def test_a_slow_destination_holds_back_the_producer_by_bytes_queued() -> None:
    batch = flows(10_000)
    sink = BlockedSink()
    stream = Stream(sink, flush_seconds=None, queue_batches=64, queue_bytes=3 * batch.nbytes)
    written = []

    def produce() -> None:
        for _ in range(20):
            stream.write(batch)
            written.append(1)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    # one batch is in the sink's hands, three wait in the queue; the fifth write waits (64 by count alone)
    assert wait_until(lambda: len(written) == 4, timeout=30)
    assert not wait_until(lambda: len(written) > 4, timeout=0.5)
    sink.release.set()
    producer.join(timeout=60)
    stream.close()
    assert sink.rows == 20 * batch.num_rows


def test_one_batch_larger_than_the_bound_still_passes() -> None:
    sink = BlockedSink()
    sink.release.set()
    stream = Stream(sink, flush_seconds=None, queue_bytes=1)
    for _ in range(3):
        stream.write(pa.table({"x": np.arange(1000)}))
    stream.close()
    assert sink.rows == 3000
