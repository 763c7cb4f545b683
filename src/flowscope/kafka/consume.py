"""The consumer loop: a topic into destinations, positions committed with the data, Kafka told after.

Every ``flush_seconds`` (and before partitions are revoked, and at the end) the destinations are
flushed with ``Checkpoint(positions=...)``. The destinations that store the positions atomically with
their data (``PositionStore``: the lake in its ledger commit, PostgreSQL in the rows' transaction) are
where a (re)assigned partition resumes, so each of them gets every message exactly once. With several,
a partition resumes at the smallest of their positions: one that is ahead (it committed a flush the
other did not, the process dying in between) receives again what lies between, at most one flush
interval of that partition. Other destinations get at least once: after a crash they may receive
again what was read since their last flush (at most ``flush_seconds`` of traffic). Offsets are
committed to Kafka only after a flush returned."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowscope.kafka.source import KafkaSource
from flowscope.kafka.url import KafkaUrl
from flowscope.pipeline import Checkpoint, PositionStore, Sink, Stream, Transform

if TYPE_CHECKING:
    from flowscope.kafka.raw import RawDecoder

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
JOIN_WARNING_SECONDS = 60.0
"""A member still waiting for its share after this long says so (a broker's group may be stuck rebalancing)."""


@dataclass
class ConsumeStats:
    messages: int = 0
    flows: int = 0
    flushes: int = 0


def recorded_positions(stores: Sequence[PositionStore], topic: str) -> dict[str, int]:
    """Where the destinations' data of ``topic`` ends, per partition (the lowest when they disagree)."""
    merged: dict[str, int] = {}
    for store in stores:
        for key, offset in store.positions().items():
            if key.rpartition("/")[0] == topic:
                merged[key] = min(int(offset), merged.get(key, int(offset)))
    return merged


def consume(
    url: KafkaUrl,
    group: str,
    sink: Sink,
    *,
    stores: Sequence[PositionStore] = (),
    transforms: Sequence[Transform] = (),
    from_beginning: bool = False,
    flush_seconds: float = 5.0,
    exit_idle: float | None = None,
    stop: threading.Event | None = None,
    on_flush: Callable[[KafkaSource], None] | None = None,
    raw: RawDecoder | None = None,
) -> tuple[ConsumeStats, KafkaSource]:
    """Consume until ``stop`` is set (or nothing arrived for ``exit_idle`` seconds after assignment)."""
    stop = stop or threading.Event()
    stats = ConsumeStats()
    stream = Stream(sink, transforms, flush_seconds=None)
    source: KafkaSource | None = None

    committed: dict[str, int] = {}

    def checkpoint() -> None:
        """Flush the destinations with the positions reached; nothing to do when nothing new was read."""
        assert source is not None
        positions = dict(source.positions)
        if positions == committed:
            return
        stream.flush(Checkpoint(positions=positions))
        if raw is not None:
            raw.save()  # the templates learnt up to these positions
        committed.clear()
        committed.update(positions)
        source.commit(positions)
        stats.flushes += 1
        if on_flush is not None:
            on_flush(source)

    try:
        source = KafkaSource(
            url,
            group,
            from_beginning=from_beginning,
            start_positions=lambda: recorded_positions(stores, url.topic),
            before_revoke=checkpoint,
            decoder=raw,
        )
        unsettled_since = last_flush = last_data = time.monotonic()
        warned = False
        while not stop.is_set():
            tables = source.poll(POLL_SECONDS)
            now = time.monotonic()
            for table in tables:
                stream.write(table)
                last_data = now
            if source.settled:
                unsettled_since, warned = now, False
            else:
                last_data = now  # the idle clock runs only while the group is settled (an empty share counts)
                if not warned and now - unsettled_since >= JOIN_WARNING_SECONDS:
                    log.warning("%s: no partitions assigned for %.0f s: group %s is still rebalancing",
                                url.text, now - unsettled_since, group)  # fmt: skip
                    warned = True
            if now - last_flush >= flush_seconds:
                checkpoint()
                last_flush = now
            if exit_idle is not None and now - last_data >= exit_idle:
                break
        checkpoint()
        stream.close()
    except BaseException:
        stream.abort()
        raise
    finally:
        if source is not None:
            stats.messages = source.messages
            stats.flows = source.flows
            source.close()
    return stats, source
