"""A Kafka topic as a consumer-group source: decoded batches plus the positions they reach.

Where a partition starts is decided by the destination, not by Kafka: on every (re)assignment each
partition is sought to the position the lake's ingest ledger recorded with the data
(``start_positions``, ``{"topic/partition": next offset}``), else to the group's committed offset, else
to the start or the end of the partition (``from_beginning``). The consumer loop (``flowscope consume``)
flushes its destinations with ``Checkpoint(positions=source.positions)`` and only then commits the
offsets to Kafka (for lag tools and destinations without a ledger). So a lake holds every message once
whatever happens to the consumer or its group; correctness never rests on Kafka commits, transactions
or watermarks (which tansu, for one, gets wrong).

A message that does not decode is counted by reason (``skips``) and passed: a poison message never
blocks its partition.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError
from flowscope.kafka.formats import FORMATS
from flowscope.kafka.url import KafkaUrl
from flowscope.pipeline import table_of
from flowscope.schema import FLOWS

log = logging.getLogger(__name__)

BATCH_MESSAGES = 2_000
"""Kafka messages per poll (goflow2: up to 256 flows each from flowscope, one from GoFlow2)."""
SESSION_TIMEOUT_MS = 6_000
"""A group's first join waits about half of this on tansu; a dead member's partitions move after it."""


def position_key(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


class KafkaSource:
    """Polls one topic as a member of ``group`` and decodes what arrives."""

    def __init__(
        self,
        url: KafkaUrl,
        group: str,
        *,
        from_beginning: bool = False,
        start_positions: Callable[[], dict[str, Any]] | None = None,
        before_revoke: Callable[[], None] | None = None,
        decoder: Callable[[list[bytes], Skips], list[pa.Table]] | None = None,
    ) -> None:
        """``decoder``: message values -> tables (default: the URL's format; ``kafka.raw`` for datagrams)."""
        from confluent_kafka import Consumer, KafkaException

        self.url = url
        fmt = FORMATS[url.format]
        if decoder is None:
            fmt.prepare()
        self.decoder = decoder or (lambda values, skips: [fmt.decode(values, skips)])
        self.skips = Skips(unit="messages")
        self.positions: dict[str, int] = {}
        """Next offset per assigned partition that has delivered data since assignment."""
        self.assigned: set[str] = set()
        self.settled = False
        """The group gave this member its share (possibly none) and no rebalance is under way."""
        self.messages = 0
        self.bytes = 0
        self.flows = 0
        self._start_positions = start_positions or dict
        self._before_revoke = before_revoke
        self._consumer = Consumer(
            {
                "bootstrap.servers": url.bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest" if from_beginning else "latest",
                "session.timeout.ms": SESSION_TIMEOUT_MS,
                "fetch.max.bytes": 64 * 1024 * 1024,
                "max.partition.fetch.bytes": 16 * 1024 * 1024,  # default 1 MiB: ~12 k flows per partition a fetch
                "log_level": 2,
            }
        )
        try:
            self._consumer.list_topics(timeout=10)
        except KafkaException as exc:
            self._consumer.close()
            raise FlowscopeError(f"{url.text}: cannot reach the Kafka broker ({exc.args[0].str()})") from None
        self._consumer.subscribe([url.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        recorded = self._start_positions()
        for partition in partitions:
            key = position_key(partition.topic, partition.partition)
            if key in recorded:
                partition.offset = int(recorded[key])
            self.assigned.add(key)
        consumer.assign(partitions)
        self.settled = True
        log.info("assigned %s", ", ".join(f"{p.partition}@{p.offset}" for p in partitions) or "nothing")

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """Before another member takes them: everything read from them is flushed with its positions."""
        self.settled = False
        if self._before_revoke is not None:
            self._before_revoke()
        for partition in partitions:
            key = position_key(partition.topic, partition.partition)
            self.positions.pop(key, None)
            self.assigned.discard(key)
        consumer.unassign()

    def poll(self, timeout: float) -> list[pa.Table]:
        """The decoded rows of the messages that arrived within ``timeout`` (flows; raw datagrams may add
        ``interface_counters`` batches)."""
        messages = self._consumer.consume(BATCH_MESSAGES, timeout)
        if not messages:
            return []
        values = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise FlowscopeError(f"{self.url.text}: {error.str()}")
                continue  # librdkafka recovers from the others by itself
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            if topic is None or partition is None or offset is None:
                continue
            key = position_key(topic, partition)
            if offset < self.positions.get(key, 0):  # already read (a late duplicate after a seek)
                continue
            self.positions[key] = offset + 1
            value = message.value()
            if value is None:
                self.skips.add("message without a value")
                continue
            values.append(value)
            self.bytes += len(value)
        self.messages += len(values)
        tables = self.decoder(values, self.skips) if values else []
        self.flows += sum(t.num_rows for t in tables if table_of(t) == FLOWS)
        return tables

    def commit(self, positions: dict[str, int]) -> None:
        """Tell Kafka how far the destinations have the data (after they flushed it); failures only logged."""
        from confluent_kafka import KafkaException, TopicPartition

        offsets = [
            TopicPartition(topic, int(partition), offset)
            for key, offset in positions.items()
            for topic, _, partition in [key.rpartition("/")]
        ]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("%s: offsets not committed to Kafka (%s); the lake ledger keeps them", self.url.text, exc)

    def lag(self) -> dict[str, int]:
        """Messages behind the partition's end, per assigned partition (from the broker's high watermark)."""
        from confluent_kafka import TopicPartition

        lags = {}
        for key in sorted(self.assigned):
            topic, _, partition = key.rpartition("/")
            try:
                _, high = self._consumer.get_watermark_offsets(TopicPartition(topic, int(partition)), timeout=2)
            except Exception:  # lag is informative: a broker that cannot say is not an error
                continue
            position = self.positions.get(key)
            if position is not None:
                lags[key] = max(0, high - position)
        return lags

    def close(self) -> None:
        started = time.monotonic()
        self._consumer.close()
        log.debug("consumer closed in %.1f s", time.monotonic() - started)
