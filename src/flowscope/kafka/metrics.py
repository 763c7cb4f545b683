"""Prometheus metrics of ``flowscope consume`` (``--metrics HOST:PORT``), in the collector's exposition format.

The consume loop refreshes a snapshot at every flush (lag needs a broker round trip, so it is not asked
for per scrape); the endpoint renders the latest one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowscope.collect.metrics import MetricFamily

if TYPE_CHECKING:
    from flowscope.kafka.source import KafkaSource

PREFIX = "flowscope_consumer_"


def snapshot(source: KafkaSource) -> dict:
    """What the endpoint shows, taken from the source between polls (never from another thread)."""
    return {
        "topic": source.url.topic,
        "messages": source.messages,
        "bytes": source.bytes,
        "flows": source.flows,
        "skips": dict(source.skips.counts),
        "positions": dict(source.positions),
        "lag": source.lag(),
    }


def merge(snapshots: list[dict]) -> dict:
    """The snapshots of ``consume --workers`` as one: counters added up, partitions side by side (a
    partition belongs to one worker at a time; a worker drops a revoked one from its next snapshot)."""
    merged: dict = {"topic": "", "messages": 0, "bytes": 0, "flows": 0, "skips": {}, "positions": {}, "lag": {}}
    for one in snapshots:
        merged["topic"] = one["topic"]
        for counter in ("messages", "bytes", "flows"):
            merged[counter] += one[counter]
        for reason, count in one["skips"].items():
            merged["skips"][reason] = merged["skips"].get(reason, 0) + count
        merged["positions"].update(one["positions"])
        merged["lag"].update(one["lag"])
    return merged


def render(snapshot: dict) -> str:
    families = {
        name: MetricFamily(name, kind, help_text, PREFIX)
        for name, kind, help_text in (
            ("messages_total", "counter", "Kafka messages consumed."),
            ("bytes_total", "counter", "Bytes of Kafka message values consumed."),
            ("flows_total", "counter", "Flows decoded and written to the destinations."),
            ("skipped_total", "counter", "Messages (or parts) skipped, per reason."),
            ("position", "gauge", "Next offset to read per partition, as flushed with the data."),
            ("lag_messages", "gauge", "Messages behind the partition's high watermark."),
        )
    }
    topic = snapshot.get("topic", "")
    families["messages_total"].add(snapshot.get("messages", 0), topic=topic)
    families["bytes_total"].add(snapshot.get("bytes", 0), topic=topic)
    families["flows_total"].add(snapshot.get("flows", 0), topic=topic)
    for reason, count in sorted(snapshot.get("skips", {}).items()):
        families["skipped_total"].add(count, topic=topic, reason=reason)
    for key, offset in sorted(snapshot.get("positions", {}).items()):
        families["position"].add(offset, topic=topic, partition=key.rpartition("/")[2])
    for key, lag in sorted(snapshot.get("lag", {}).items()):
        families["lag_messages"].add(lag, topic=topic, partition=key.rpartition("/")[2])
    return "\n".join(line for family in families.values() for line in family.lines()) + "\n"
