"""``kafka://HOST:PORT/TOPIC`` as a destination: flows produced to a topic, every delivery accounted for.

- Keys: by exporter (``sampler_address``) unless the URL says ``key=COLUMN`` or ``key=none``; messages hold
  one key's flows (``flowscope.kafka.formats``), so an exporter's flows stay in order in one partition.
- Delivery: the producer is idempotent (librdkafka retries a failed send without duplicating or
  reordering it, until ``message.timeout.ms``); a message whose delivery report still says it failed with
  a retriable error is produced again, up to ``RESENDS`` times. Reports are counted in messages and flows.
- Memory: librdkafka's queue is capped (``QUEUE_KBYTES``); when it is full ``write`` serves delivery
  reports until there is room, so a slow broker slows the writer instead of growing the heap.
- Broker down: opening fails with one clear error. ``flush`` waits for every report; whatever was not
  delivered raises a ``FlowscopeError`` naming how many flows, and ``notes`` reports the totals: nothing
  is dropped silently. Kafka cannot store a checkpoint with the data, so ``flush`` ignores it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pyarrow as pa

from flowscope.errors import FlowscopeError
from flowscope.kafka.formats import FORMATS, to_messages
from flowscope.kafka.url import KafkaUrl, is_kafka, parse
from flowscope.pipeline import Checkpoint, table_of
from flowscope.schema import FLOWS
from flowscope.sinks.registry import Destination, DestinationContext, register

log = logging.getLogger(__name__)

QUEUE_KBYTES = 64 * 1024
"""librdkafka's in-flight cap (KiB): what a producer holds while the broker is slow or away."""
MESSAGE_TIMEOUT_MS = 30_000
"""How long librdkafka keeps retrying one message before reporting it failed."""
RESENDS = 2
CONNECT_SECONDS = 10.0


@dataclass
class Deliveries:
    """Delivery reports so far, in messages and flows."""

    messages: int = 0
    flows: int = 0
    failed_messages: int = 0
    failed_flows: int = 0
    resent: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def producer_config(url: KafkaUrl) -> dict[str, Any]:
    return {
        "bootstrap.servers": url.bootstrap,
        "enable.idempotence": True,
        "linger.ms": 20,
        "queue.buffering.max.kbytes": QUEUE_KBYTES,
        "message.timeout.ms": MESSAGE_TIMEOUT_MS,
        "message.max.bytes": 16 * 1024 * 1024,
        "log_level": 2,  # librdkafka's own lines only for errors: the sink reports failures itself
    }


class KafkaSink:
    """Produces batches to one topic (flows only: other tables have no Kafka format and are counted as left out)."""

    def __init__(self, url: KafkaUrl) -> None:
        from confluent_kafka import KafkaException, Producer

        self.url = url
        self.name = url.text
        self.format = FORMATS[url.format]
        self.format.prepare()
        self.deliveries = Deliveries()
        self.produced_flows = 0
        self.left_out: dict[str, int] = {}
        self._pending = 0
        self._resend: list[tuple[bytes, bytes | None, int, int]] = []
        self._producer = Producer(producer_config(url))
        try:
            self._producer.list_topics(timeout=CONNECT_SECONDS)
        except KafkaException as exc:
            raise FlowscopeError(f"{url.text}: cannot reach the Kafka broker ({exc.args[0].str()})") from None

    def write(self, batch: pa.Table) -> None:
        table = table_of(batch)
        if table != FLOWS:
            self.left_out[table] = self.left_out.get(table, 0) + batch.num_rows
            return
        messages = to_messages(batch, self.format, self.url.key, self.url.per_message)
        for value, key, flows in zip(messages.values, messages.keys, messages.flows.tolist(), strict=True):
            self.produce(value, key, flows)
        self.produced_flows += int(messages.flows.sum())
        self.serve()

    def serve(self) -> None:
        """Serve delivery reports that arrived, and send again what failed with a retriable error."""
        self._producer.poll(0)
        self._send_again()

    def _send_again(self) -> None:
        """Produce the messages whose delivery failed with a retriable error (not from inside a report)."""
        while self._resend:
            self.produce(*self._resend.pop())

    def produce(self, value: bytes, key: bytes | None, flows: int, attempt: int = 0) -> None:
        """Queue one message carrying ``flows`` flows (waits while the capped queue is full)."""
        report = partial(self._delivered, value, key, flows, attempt)
        while True:
            try:
                self._producer.produce(self.url.topic, value, key, on_delivery=report)
                self._pending += 1
                return
            except BufferError:  # the capped queue is full: serve reports until there is room
                self._producer.poll(0.1)

    def _delivered(self, value: bytes, key: bytes | None, flows: int, attempt: int, error: Any, _message: Any) -> None:
        self._pending -= 1
        if error is None:
            self.deliveries.messages += 1
            self.deliveries.flows += flows
            return
        if error.retriable() and attempt < RESENDS:
            self.deliveries.resent += 1
            self._resend.append((value, key, flows, attempt + 1))
            return
        self.deliveries.failed_messages += 1
        self.deliveries.failed_flows += flows
        reason = error.str()
        self.deliveries.errors[reason] = self.deliveries.errors.get(reason, 0) + 1

    def flush(self, checkpoint: Checkpoint | None = None) -> None:
        """Wait until every message produced so far is reported; raise if any was not delivered."""
        deadline = time.monotonic() + MESSAGE_TIMEOUT_MS / 1000 * (RESENDS + 1) + 5
        while (self._pending or self._resend) and time.monotonic() < deadline:
            self._send_again()
            self._producer.flush(1.0)
        if self._pending or self._resend or self.deliveries.failed_flows:
            raise FlowscopeError(f"{self.name}: {self._undelivered()}")

    def _undelivered(self) -> str:
        d = self.deliveries
        errors = "; ".join(f"{reason} ({count} messages)" for reason, count in d.errors.items())
        left = self._pending + len(self._resend)
        waiting = f", {left:,} messages still unreported" if left else ""
        return (
            f"{d.failed_flows:,} flows in {d.failed_messages:,} messages not delivered{waiting}"
            f" ({d.flows:,} flows delivered){': ' + errors if errors else ''}"
        )

    def close(self) -> None:
        self.flush()
        log.info("%s", "; ".join(self.notes()))

    def abort(self) -> None:
        """Stop waiting: what is still queued is purged and reported as not delivered."""
        self._producer.purge()
        self._producer.flush(1.0)
        if self._pending or self._resend or self.deliveries.failed_flows:
            log.warning("%s: %s", self.name, self._undelivered())

    def kept(self) -> list[str]:
        """After an abort: the messages delivered (a topic keeps what it took)."""
        return [f"{self.name} keeps the {self.deliveries.flows:,} flows delivered before"]

    def notes(self) -> list[str]:
        d = self.deliveries
        line = f"{self.name}: {d.flows:,} flows delivered in {d.messages:,} messages ({self.url.format})"
        if d.resent:
            line += f", {d.resent:,} messages sent again after a failed delivery"
        if d.failed_flows:
            line += f"; {d.failed_flows:,} flows NOT delivered"
        notes = [line]
        for table, rows in self.left_out.items():
            notes.append(f"{self.name}: {rows:,} {table} rows left out (no Kafka format)")
        return notes


def _open(url: str, context: DestinationContext) -> KafkaSink:
    return KafkaSink(parse(url))


register(
    Destination(
        "kafka",
        "kafka://HOST:PORT/TOPIC[?format=goflow2|goflow|arrow&key=COLUMN|none&per_message=N]",
        is_kafka,
        _open,
    )
)
