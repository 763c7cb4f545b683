"""``flowscope consume``: a topic into the lake exactly once, also across a consumer killed with SIGKILL."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from tests.collect.live import free_port
from tests.helpers import flows
from tests.kafka.live import finish, lake_ids, start_consumer

from flowscope.kafka.sink import KafkaSink
from flowscope.kafka.url import parse

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _produce(bootstrap: str, topic: str, n: int, per_message: int, first_id: int = 0) -> None:
    sink = KafkaSink(parse(f"kafka://{bootstrap}/{topic}?key=none&per_message={per_message}"))
    for first in range(first_id, first_id + n, 50_000):
        sink.write(flows(min(50_000, first_id + n - first), first_id=first))
    sink.close()


def test_produced_flows_land_in_the_lake_exactly_once(kafka: str, topic: str, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _produce(kafka, topic, 5_000, 256)
    done = start_consumer(lake, kafka, topic, "--exit-idle", "2", "--flush", "0.5", "--status", "1",
                          "--metrics", f"127.0.0.1:{free_port(socket.SOCK_STREAM)}")  # fmt: skip
    _, err = finish(done)
    assert done.returncode == 0, err
    assert "5,000 flows from 20 messages" in err
    assert "lag: " in err
    assert sorted(lake_ids(lake).tolist()) == list(range(5_000))
    # a second run finds nothing new: it resumes where the lake's ledger says the data ends
    again = start_consumer(lake, kafka, topic, "--exit-idle", "2")
    _, err = finish(again)
    assert again.returncode == 0 and "0 flows from 0 messages" in err, err
    assert lake_ids(lake).shape[0] == 5_000


def test_a_consumer_killed_mid_stream_loses_and_duplicates_nothing(kafka: str, topic: str, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    n = 400_000
    _produce(kafka, topic, n, 16)
    first = start_consumer(lake, kafka, topic, "--flush", "0.2")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not lake_ids(lake).shape[0]:  # a first flush is published
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    landed = lake_ids(lake).shape[0]
    assert 0 < landed < n, f"the kill came too late or too early to test anything ({landed} flows)"
    second = start_consumer(lake, kafka, topic, "--exit-idle", "3", "--flush", "0.5")
    _, err = finish(second)
    assert second.returncode == 0, err
    ids = lake_ids(lake)
    assert ids.shape[0] == n
    assert np.array_equal(np.sort(ids), np.arange(n, dtype=np.uint64))


def test_goflow2_messages_are_consumed_exactly(kafka: str, topic: str, tmp_path: Path, flow_pb2: ModuleType) -> None:
    """Messages as GoFlow2 writes them (the official runtime, one length-delimited FlowMessage per Kafka message)."""
    from confluent_kafka import Producer
    from google.protobuf.internal.encoder import _VarintBytes

    producer = Producer({"bootstrap.servers": kafka})
    n = 2_000
    for i in range(n):
        body = flow_pb2.FlowMessage(type=4, bytes=i, packets=1, sampler_address=bytes([192, 0, 2, i % 3]),
                                    src_addr=bytes(15) + bytes([1]), time_flow_start_ns=1_700_000_000_000_000_000 + i,
                                    ).SerializeToString()  # fmt: skip
        producer.produce(topic, _VarintBytes(len(body)) + body, key=str(i % 3).encode())
        producer.poll(0)
    producer.produce(topic, b"\x05\x08")  # a poison message: counted and passed, never blocking its partition
    assert producer.flush(30) == 0
    lake = tmp_path / "lake"
    consumer = start_consumer(lake, kafka, topic, "--exit-idle", "2")
    _, err = finish(consumer)
    assert consumer.returncode == 0, err
    assert "1 messages skipped: length past the end of the message" in err
    assert np.array_equal(np.sort(lake_ids(lake)), np.arange(n, dtype=np.uint64))
