"""The Kafka destination against a real broker (tansu): keys, delivery accounting, the broker being down."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from tests.helpers import flows

from flowscope import addresses
from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError
from flowscope.kafka.formats import FORMATS
from flowscope.kafka.sink import KafkaSink
from flowscope.kafka.url import parse


def _exporters(table: pa.Table, count: int) -> pa.Table:
    ids = np.arange(table.num_rows) % count
    column = addresses.from_ipv4((0xC0000200 + ids).astype(np.uint32))
    return table.set_column(table.schema.get_field_index("sampler_address"), "sampler_address", column)


def consume_all(bootstrap: str, topic: str, expected_messages: int, seconds: float = 30.0) -> list:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{topic}", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000})  # fmt: skip
    consumer.subscribe([topic])
    got: list = []
    deadline = time.monotonic() + seconds
    try:
        while len(got) < expected_messages and time.monotonic() < deadline:
            got += [m for m in consumer.consume(1000, 0.5) if m.error() is None]
    finally:
        consumer.close()
    return got


@pytest.mark.integration
@pytest.mark.parametrize("fmt", ["goflow2", "arrow"])
def test_flows_arrive_keyed_by_exporter(kafka: str, topic: str, fmt: str) -> None:
    table = _exporters(flows(3000), 3)
    sink = KafkaSink(parse(f"kafka://{kafka}/{topic}?format={fmt}&per_message=500"))
    sink.write(table)
    sink.close()
    assert sink.deliveries.flows == 3000 and sink.deliveries.failed_flows == 0
    messages = consume_all(kafka, topic, sink.deliveries.messages)
    assert len(messages) == sink.deliveries.messages == 6  # 1000 flows per exporter, 500 per message
    partitions: dict[bytes, set[int]] = {}
    decoded = []
    for message in messages:
        partitions.setdefault(message.key(), set()).add(message.partition())
        part = FORMATS[fmt].decode([message.value()], Skips())
        texts = set(addresses.format_text(part.column("sampler_address")).to_pylist())
        assert texts == {message.key().decode()}  # one exporter per message, the key says which
        decoded.append(part)
    assert sorted(partitions) == [b"192.0.2.0", b"192.0.2.1", b"192.0.2.2"]
    assert all(len(p) == 1 for p in partitions.values())  # an exporter's flows stay in one partition
    back = pa.concat_tables(decoded)
    assert sorted(back.column("bytes").to_pylist()) == sorted(table.column("bytes").to_pylist())
    assert pc.sum(back.column("packets")).as_py() == pc.sum(table.column("packets")).as_py()


@pytest.mark.integration
def test_broker_down_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("flowscope.kafka.sink.CONNECT_SECONDS", 1.0)
    with pytest.raises(FlowscopeError, match="cannot reach the Kafka broker"):
        KafkaSink(parse("kafka://127.0.0.1:1/flows"))


@pytest.mark.integration
@pytest.mark.slow
def test_undelivered_flows_are_reported_never_dropped(kafka: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.kafka.broker import tansu, tansu_binary

    monkeypatch.setattr("flowscope.kafka.sink.MESSAGE_TIMEOUT_MS", 1500)
    binary = tansu_binary()
    assert binary is not None  # the session fixture skipped already when it is missing
    with tansu(binary) as bootstrap:
        sink = KafkaSink(parse(f"kafka://{bootstrap}/lost?key=none"))
        sink.write(flows(10))
        sink.flush()
    sink.write(flows(700))  # the broker is gone
    with pytest.raises(FlowscopeError, match="700 flows in 3 messages not delivered"):
        sink.flush()
    assert sink.deliveries.flows == 10
    assert "700 flows NOT delivered" in sink.notes()[0]
    sink.abort()


def test_bad_urls_are_clear_errors() -> None:
    for url, message in [("kafka://h:1", "kafka://HOST:PORT/TOPIC"), ("kafka://h:1/t?format=x", "unknown format"),
                         ("kafka://h:1/t?key=nope", "not a flow column"), ("kafka://h:1/t?per_message=0", "positive"),
                         ("kafka://h:1/t?colour=1", "unknown option")]:  # fmt: skip
        with pytest.raises(FlowscopeError, match=message):
            parse(url)
