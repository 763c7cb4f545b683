"""``flowscope consume --workers N``, ``--enrich`` and ``--anonymize``: against a tansu broker."""

from __future__ import annotations

import signal
import socket
import urllib.request
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from tests.collect.live import free_port
from tests.helpers import flows, wait_until
from tests.kafka.live import finish, lake_ids, start_consumer

from flowscope import addresses
from flowscope.kafka.sink import KafkaSink
from flowscope.kafka.url import parse

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _produce(bootstrap: str, topic: str, table: pa.Table, key: str = "none") -> None:
    sink = KafkaSink(parse(f"kafka://{bootstrap}/{topic}?key={key}&per_message=64"))
    sink.write(table)
    sink.close()


def _from_exporters(n: int, exporters: int = 4) -> pa.Table:
    """``n`` flows from ``exporters`` exporters (192.0.2.1-): keyed by exporter, they spread over the partitions."""
    table = flows(n)
    exporters = addresses.from_ipv4((0xC0000201 + np.arange(n) % exporters).astype(np.uint32))
    return table.set_column(table.schema.get_field_index("sampler_address"), "sampler_address", exporters)


def test_workers_share_the_partitions_and_add_up(kafka: str, topic: str, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    n = 20_000
    _produce(kafka, topic, _from_exporters(n), key="sampler_address")
    consumer = start_consumer(lake, kafka, topic, "--workers", "2", "--exit-idle", "3", "--flush", "0.5")
    _, err = finish(consumer)
    assert consumer.returncode == 0, err
    assert f"{n:,} flows from" in err and "(2 workers)" in err
    assert np.array_equal(np.sort(lake_ids(lake)), np.arange(n, dtype=np.uint64))


def test_a_stop_signal_reaches_every_worker(kafka: str, topic: str, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    n = 5_000
    _produce(kafka, topic, _from_exporters(n), key="sampler_address")
    metrics = f"http://127.0.0.1:{free_port(socket.SOCK_STREAM)}/metrics"
    consumer = start_consumer(lake, kafka, topic, "--workers", "2", "--flush", "0.3",
                              "--metrics", metrics.removeprefix("http://").removesuffix("/metrics"))  # fmt: skip
    assert wait_until(lambda: lake_ids(lake).shape[0] == n, timeout=90), "the workers did not read the topic"
    # the parent serves the workers' metrics added up
    total = f'flowscope_consumer_flows_total{{topic="{topic}"}} {n}'
    assert wait_until(lambda: total in _scrape(metrics), timeout=30), _scrape(metrics)
    consumer.send_signal(signal.SIGTERM)
    _, err = finish(consumer)
    assert consumer.returncode == 0, err
    assert f"{n:,} flows from" in err  # every worker flushed and reported before the parent exited
    assert lake_ids(lake).shape[0] == n


def _scrape(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()
    except OSError:
        return ""


def test_consume_enriches(kafka: str, topic: str, tmp_path: Path) -> None:
    config = tmp_path / "enrich.toml"
    config.write_text('[exporters."192.0.2.1"]\nname = "agent-1"\ngroup = "lab"\n')
    _produce(kafka, topic, _from_exporters(400))
    lake = tmp_path / "lake"
    consumer = start_consumer(lake, kafka, topic, "--exit-idle", "2", "--enrich", str(config))
    _, err = finish(consumer)
    assert consumer.returncode == 0, err
    rows = duckdb.sql(
        "SELECT exporter_name, exporter_group, count(*) FROM read_parquet(?, union_by_name = true) "
        "GROUP BY ALL ORDER BY ALL NULLS LAST",
        params=[f"{lake}/flows/**/*.parquet"],
    ).fetchall()
    assert rows == [("agent-1", "lab", 100), (None, None, 300)]


def test_consume_anonymizes(kafka: str, topic: str, tmp_path: Path) -> None:
    from flowscope.transforms.anonymize import Anonymizer

    key = tmp_path / "key"
    key.write_text("ab" * 32)
    table = flows(500)
    _produce(kafka, topic, table)
    lake = tmp_path / "lake"
    consumer = start_consumer(lake, kafka, topic, "--exit-idle", "2", "--anonymize", str(key))
    _, err = finish(consumer)
    assert consumer.returncode == 0, err
    stored = duckdb.sql(
        "SELECT bytes, src_addr FROM read_parquet(?) ORDER BY bytes", params=[f"{lake}/flows/**/*.parquet"]
    ).fetchnumpy()
    expected = Anonymizer(bytes.fromhex("ab" * 32))(table)
    assert stored["bytes"].tolist() == list(range(500))
    assert stored["src_addr"].tolist() == expected.column("src_addr").to_pylist()
    assert stored["src_addr"].tolist() != table.column("src_addr").to_pylist()


def test_a_worker_without_partitions_still_exits_idle(kafka: str, topic: str, tmp_path: Path) -> None:
    """One partition, two workers: the group gives one of them nothing, and ``--exit-idle`` stops it too."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka})  # kept while its future is awaited
    admin.create_topics([NewTopic(topic, num_partitions=1)])[topic].result(timeout=30)
    _produce(kafka, topic, flows(1_000))
    lake = tmp_path / "lake"
    # idle for 10 s: both workers are in the group before the first could stop (tansu's first join takes ~3 s)
    consumer = start_consumer(lake, kafka, topic, "--workers", "2", "--exit-idle", "10")
    _, err = finish(consumer)
    assert consumer.returncode == 0, err
    assert "1,000 flows from" in err and "(2 workers)" in err
    assert "assigned nothing" in err, err  # the case under test: a settled member with an empty share
    assert np.array_equal(np.sort(lake_ids(lake)), np.arange(1_000, dtype=np.uint64))
