"""Raw export datagrams through Kafka, for collector scale-out: N receivers -> Kafka -> M decoding consumers.

``collect --raw-to kafka://...`` publishes what its sockets received, undecoded; ``consume --raw`` decodes
it as the collector would (NetFlow v5/v9/IPFIX with templates, sFlow). A Kafka message carries one
exporter's datagrams of one receive batch, keyed by the exporter's address, so an exporter's templates
and sequence numbers stay in order in one partition:

    "FSRAW1"  protocol (1 byte: 0 netflow, 1 sflow)  exporter (16 bytes, IPv4-mapped)
    then per datagram: receive time (int64 ns, big-endian)  length (uint32, big-endian)  payload

Template state (``collect/state.py``) is kept by the consumer and saved in the lake at every checkpoint,
as the collector saves it; templates are scoped per exporter, and an exporter lives in one partition.
Exporter health (datagrams, sequence loss, decode errors, templates: ``collect/health.py``) is the
decoding side's, so the consumer accounts it as the collector does and saves it with the templates;
``flowscope exporters`` shows the latest run (all its workers), collector or consumer.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from flowscope import addresses
from flowscope.collect.datagrams import Datagrams, Decoded
from flowscope.collect.dispatch import decode_netflow
from flowscope.collect.health import Health, save_health
from flowscope.collect.sflow import decode_sflow
from flowscope.collect.state import NetflowState
from flowscope.diagnostics import Skips
from flowscope.kafka.sink import KafkaSink
from flowscope.kafka.url import KafkaUrl
from flowscope.pipeline import tag
from flowscope.schema import INTERFACE_COUNTERS

log = logging.getLogger(__name__)

MAGIC = b"FSRAW1"
PROTOCOLS = ("netflow", "sflow")
_HEADER = len(MAGIC) + 1 + 16
_RECORD = 12  # receive time + length


def pack(protocol: str, datagrams: Datagrams) -> tuple[list[bytes], list[bytes], list[int]]:
    """One Kafka message value per exporter of the batch, its key (the exporter as text), its datagram count."""
    if not len(datagrams):
        return [], [], []
    exporters, group = np.unique(datagrams.exporters, axis=0, return_inverse=True)
    lengths = np.fromiter(map(len, datagrams.payloads), np.int64, len(datagrams))
    heads = np.empty((len(datagrams), _RECORD), np.uint8)
    heads[:, :8] = datagrams.received_ns.astype(">i8").view(np.uint8).reshape(-1, 8)
    heads[:, 8:] = lengths.astype(">u4").view(np.uint8).reshape(-1, 4)
    head_bytes = [row.tobytes() for row in heads]
    prefix = MAGIC + bytes([PROTOCOLS.index(protocol)])
    values, keys, counts = [], [], []
    texts = addresses.format_text(addresses.from_ipv6_bytes(exporters)).to_pylist()
    for index, exporter in enumerate(exporters):
        rows = np.flatnonzero(group.reshape(-1) == index).tolist()
        parts = [prefix, exporter.tobytes()]
        for row in rows:
            parts += (head_bytes[row], datagrams.payloads[row])
        values.append(b"".join(parts))
        keys.append(texts[index].encode())
        counts.append(len(rows))
    return values, keys, counts


@dataclass
class Unpacked:
    """The datagrams of some raw messages, per protocol."""

    by_protocol: dict[str, Datagrams] = field(default_factory=dict)


def unpack(values: list[bytes], skips: Skips) -> Unpacked:
    """Raw message values -> datagrams per protocol; a value that is not one is counted and skipped."""
    collected: dict[str, tuple[list[bytes], list[np.ndarray], list[int]]] = {p: ([], [], []) for p in PROTOCOLS}
    for value in values:
        if len(value) < _HEADER or not value.startswith(MAGIC) or value[len(MAGIC)] >= len(PROTOCOLS):
            skips.add("not a raw datagram message")
            continue
        protocol = PROTOCOLS[value[len(MAGIC)]]
        exporter = np.frombuffer(value, np.uint8, 16, len(MAGIC) + 1)
        payloads, exporters, times = collected[protocol]
        at, end = _HEADER, len(value)
        while at < end:  # one step per datagram, as the collector's own unpacking of a receive batch
            if at + _RECORD > end:
                skips.add("raw datagram record cut short")
                break
            received = int.from_bytes(value[at : at + 8], "big", signed=True)
            length = int.from_bytes(value[at + 8 : at + 12], "big")
            if at + _RECORD + length > end:
                skips.add("raw datagram record cut short")
                break
            payloads.append(value[at + _RECORD : at + _RECORD + length])
            exporters.append(exporter)
            times.append(received)
            at += _RECORD + length
    out = Unpacked()
    for protocol, (payloads, exporters, times) in collected.items():
        if payloads:
            out.by_protocol[protocol] = Datagrams(payloads, np.stack(exporters), np.array(times, np.int64))
    return out


class RawProducer:
    """``collect --raw-to``: publishes each receive batch, one message per exporter."""

    def __init__(self, url: KafkaUrl) -> None:
        self.sink = KafkaSink(url)
        self.name = f"{url.text} (raw datagrams)"
        self.datagrams = 0

    def send(self, protocol: str, datagrams: Datagrams) -> None:
        for value, key, count in zip(*pack(protocol, datagrams), strict=True):
            self.sink.produce(value, key, count)
        self.datagrams += len(datagrams)
        self.sink.serve()

    def flush(self) -> None:
        self.sink.flush()

    def close(self) -> None:
        self.sink.flush()
        delivered = self.sink.deliveries.flows
        log.info("%s: %s datagrams published, %s delivered", self.name, f"{self.datagrams:,}", f"{delivered:,}")


class RawDecoder:
    """``consume --raw``: decodes raw messages with template state kept across batches and saved in the lake."""

    def __init__(self, lake_root: str | None, health_name: str = "consume", run_id: str = "") -> None:
        """``health_name``: this process's health file in the lake; ``run_id``: shared by one run's workers."""
        self.lake_root = lake_root
        self.state = NetflowState.open(lake_root)
        self.health = Health()
        self.health_name = f"{socket.gethostname()}-{health_name}"
        self.run_id = run_id

    def __call__(self, values: list[bytes], skips: Skips) -> list[pa.Table]:
        tables = []
        for protocol, datagrams in unpack(values, skips).by_protocol.items():
            decoded: Decoded = decode_sflow(datagrams) if protocol == "sflow" else decode_netflow(datagrams, self.state)
            skips.merge(decoded.skips)
            self.health.observe(protocol, decoded)
            if decoded.flows.num_rows:
                tables.append(decoded.flows)
            if decoded.counters is not None and decoded.counters.num_rows:
                tables.append(tag(decoded.counters, INTERFACE_COUNTERS))
        return tables

    def save(self) -> None:
        """At a checkpoint: the templates learnt up to its positions, and the exporters' health."""
        if self.lake_root is not None:
            save_health(self.lake_root, self.health, self.health_name, run_id=self.run_id, state=self.state)
