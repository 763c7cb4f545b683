"""Both Kafka routes give the totals of ``collect`` straight into a lake: decoded flows (``collect --to kafka://``
then ``consume``) and raw datagrams (``collect --raw-to kafka://`` then ``consume --raw``)."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest
from tests.collect.live import free_port, lake_totals, start_collector, stop, wait_for_health, wait_until_quiet
from tests.kafka.live import finish, start_consumer

from flowscope.collect.encoder import IPFIX, IPV4_TEMPLATE, encode, synthetic_columns
from flowscope.collect.server import lake_health
from flowscope.lake.layout import Lake

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_collector_to_kafka_to_lake_equals_collector_to_lake(kafka: str, topic: str, tmp_path: Path) -> None:
    direct, via_kafka, via_raw = tmp_path / "direct", tmp_path / "via-kafka", tmp_path / "via-raw"
    port = free_port()
    collector = start_collector(direct, "--listen", f"netflow://127.0.0.1:{port}", "--to", "lake",
                                "--to", f"kafka://{kafka}/{topic}",
                                "--raw-to", f"kafka://{kafka}/{topic}-raw")  # fmt: skip
    datagrams = encode(IPFIX, IPV4_TEMPLATE, synthetic_columns(24_000))
    wait_for_health(direct, lambda h: bool(h["listeners"]))  # bound
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for index, datagram in enumerate(datagrams):
            sender.sendto(datagram, ("127.0.0.1", port))
            if index % 100 == 99:
                time.sleep(0.01)  # a gentle exporter: loopback drops what a busy collector cannot take
    wait_until_quiet(direct)
    code, err = stop(collector, signal.SIGINT)
    assert code == 0, err
    expected = lake_totals(direct)
    assert expected["flows"] == 24_000
    consumer = start_consumer(via_kafka, kafka, topic, "--exit-idle", "2")
    _, err = finish(consumer)
    assert consumer.returncode == 0, err
    assert lake_totals(via_kafka) == expected
    raw = start_consumer(via_raw, kafka, f"{topic}-raw", "--raw", "--exit-idle", "2")
    _, err = finish(raw)
    assert raw.returncode == 0, err
    assert lake_totals(via_raw) == expected
    assert (via_raw / "_collector" / "templates.json").exists()  # template state kept as the collector keeps it
    # exporter health (`flowscope exporters`) accounted by the decoding consumer as by the collector
    accounted = [{key: e[key] for key in ("exporter", "protocol", "datagrams", "flows", "lost", "errors")}
                 for e in lake_health(Lake.at(via_raw))["exporters"]]  # fmt: skip
    assert accounted == [{key: e[key] for key in ("exporter", "protocol", "datagrams", "flows", "lost", "errors")}
                         for e in lake_health(Lake.at(direct))["exporters"]]  # fmt: skip
    assert accounted[0]["datagrams"] == len(datagrams)
