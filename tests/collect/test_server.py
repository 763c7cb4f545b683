"""The collector runtime: listen specs, sequence accounting, metrics, and a live collector on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import urllib.request

import numpy as np
import pyarrow.parquet as pq
import pytest
from tests.collect.live import (
    exporters_json,
    flowscope_json,
    free_port,
    lake_totals,
    start_collector,
    stop,
    wait_for_health,
)
from tests.conftest import shared_data

from flowscope.collect.datagrams import Datagrams, sender_addresses, unpack
from flowscope.collect.health import Health, group_rows, merge_snapshots, sequence_accounting
from flowscope.collect.metrics import render
from flowscope.collect.packed import merge_packed, packed_count
from flowscope.collect.receive import BatchReceiver, Listen
from flowscope.collect.sflow import decode_sflow
from flowscope.errors import FlowscopeError

SFLOW_BIN = ("raw", "goflow2", "sflow_TestExpandedSFlowDecode_data.bin")  # 5 flow samples, agent 1.2.3.4


def accounting(sequences, steps=None, expected=None):
    sequences = np.array(sequences, np.int64)
    steps = np.ones(len(sequences), np.int64) if steps is None else np.array(steps, np.int64)
    result = sequence_accounting(
        np.zeros(len(sequences), np.int64),
        sequences,
        steps,
        np.array([expected or 0]),
        np.array([expected is not None]),
    )
    return {key: int(value[0]) for key, value in result.items()}


@pytest.mark.parametrize(
    ("sequences", "steps", "expected", "result"),
    [
        ([1, 2, 3, 4], None, None, {"missing": 0, "late": 0, "resets": 0, "next": 5}),
        ([1, 3, 2, 4], None, None, {"missing": 1, "late": 1, "resets": 0, "next": 5}),
        ([1, 2, 5, 6], None, None, {"missing": 2, "late": 0, "resets": 0, "next": 7}),
        ([1, 2, 5, 6], None, 0, {"missing": 3, "late": 0, "resets": 0, "next": 7}),
        ([0xFFFFFFFE, 0xFFFFFFFF, 0, 2], None, None, {"missing": 1, "late": 0, "resets": 0, "next": 3}),
        ([10, 15, 20, 30], [5, 5, 5, 5], None, {"missing": 5, "late": 0, "resets": 0, "next": 35}),
        ([5_000_000, 5_000_001, 3, 4], None, None, {"missing": 0, "late": 0, "resets": 1, "next": 5}),
        ([7, 7], None, None, {"missing": 0, "late": 1, "resets": 0, "next": 8}),
    ],
)
def test_sequence_accounting(sequences, steps, expected, result):
    assert accounting(sequences, steps, expected) == result


def test_sequence_accounting_keeps_groups_apart():
    result = sequence_accounting(
        np.array([0, 1, 0, 1, 0]),
        np.array([1, 100, 2, 102, 3]),
        np.ones(5, np.int64),
        np.zeros(2, np.int64),
        np.zeros(2, bool),
    )
    assert result["missing"].tolist() == [0, 1]
    assert result["next"].tolist() == [4, 103]


def sflow_payload(sequence: int, agent: bytes = bytes([192, 0, 2, 1])) -> bytes:
    """The goflow2 expanded-sample datagram with another agent address and datagram sequence number."""
    payload = bytearray(shared_data(*SFLOW_BIN).read_bytes())
    payload[8:12] = agent
    payload[16:20] = struct.pack(">I", sequence)
    return bytes(payload)


def test_health_counts_gaps_across_batches():
    health = Health()
    for sequences in ([1, 2, 3], [5, 6], [4]):
        payloads = [sflow_payload(s) for s in sequences]
        batch = Datagrams(payloads, np.zeros((len(payloads), 16), np.uint8), np.arange(len(payloads)))
        health.observe("sflow", decode_sflow(batch))
    merged = merge_snapshots([health.snapshot()])
    (exporter,) = merged["exporters"]
    assert exporter["exporter"] == "192.0.2.1"
    assert exporter["datagrams"] == 6
    assert exporter["flows"] == 30
    # Datagram 4 came after 5 and 6: missing then late, so nothing is lost in the end.
    assert exporter["lost"].get("datagrams", 0) == 0
    assert exporter["late"]["datagrams"] == 1
    text = render(merged)
    assert 'flowscope_collector_flows_total{protocol="sflow",exporter="192.0.2.1"} 30' in text
    assert "# TYPE flowscope_collector_socket_drops_total counter" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("netflow://0.0.0.0:2055", Listen("netflow", "0.0.0.0", 2055)),
        ("ipfix://127.0.0.1:4739", Listen("netflow", "127.0.0.1", 4739)),
        ("sflow://[::1]:6343", Listen("sflow", "::1", 6343)),
        ("sflow://127.0.0.1", Listen("sflow", "127.0.0.1", 6343)),
    ],
)
def test_listen_parse(text, expected):
    assert Listen.parse(text) == expected


@pytest.mark.parametrize("text", ["udp://1.2.3.4:5", "netflow:/x", "sflow://1.2.3.4:99999"])
def test_listen_parse_rejects(text):
    with pytest.raises(FlowscopeError):
        Listen.parse(text)


def test_batch_receiver_reads_many_datagrams_per_call():
    receiver_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver_socket.bind(("127.0.0.1", 0))
    receiver_socket.settimeout(1.0)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    try:
        for index in range(50):
            sender.sendto(bytes([index]) * (index + 1), receiver_socket.getsockname())
        receiver = BatchReceiver(receiver_socket, batch=64)
        batches = [receiver.receive()]
        while sum(map(packed_count, batches)) < 50:
            batches.append(receiver.receive())
        got = unpack(merge_packed(batches))
        assert [len(p) for p in got.payloads] == list(range(1, 51))
        assert {bytes(row) for row in got.exporters} == {bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1])}
        assert receiver.receive(wait=False) is None
    finally:
        receiver_socket.close()
        sender.close()


def test_sender_addresses_of_ipv6():
    names = np.zeros((1, 128), np.uint8)
    names[0, 0] = socket.AF_INET6
    names[0, 8:24] = np.frombuffer(socket.inet_pton(socket.AF_INET6, "2001:db8::7"), np.uint8)
    assert bytes(sender_addresses(names)[0]) == socket.inet_pton(socket.AF_INET6, "2001:db8::7")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_live_collector_flushes_on_signal_and_reports_health(tmp_path, signum):
    lake = tmp_path / "lake"
    port, metrics_port = free_port(), free_port(socket.SOCK_STREAM)
    copy = tmp_path / "copy.parquet"  # a second destination: the lake and a file get the same flows
    collector = start_collector(
        lake,
        "--listen",
        f"sflow://127.0.0.1:{port}",
        "--metrics",
        f"127.0.0.1:{metrics_port}",
        "--to",
        "lake",
        "--to",
        str(copy),
    )
    try:
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        expected = decode_sflow(Datagrams([sflow_payload(1)], np.zeros((1, 16), np.uint8), np.zeros(1)))
        bytes_per_datagram = sum(expected.flows.column("bytes").to_pylist())
        # Wait until the socket is bound (health appears once the first second has passed).
        wait_for_health(lake, lambda h: bool(h["listeners"]))
        sequences = [s for s in range(1, 201) if s not in (50, 51)]  # two datagrams "lost" by the exporter
        for sequence in sequences:
            sender.sendto(sflow_payload(sequence), ("127.0.0.1", port))
        sender.sendto(b"\x00\x00\x00\x05garbage", ("127.0.0.1", port))
        health = wait_for_health(lake, lambda h: sum(e["datagrams"] for e in h["exporters"]) == len(sequences) + 1)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    finally:
        code, stderr = stop(collector, signum)
    assert code == 0, stderr
    summary = next(line for line in stderr.splitlines() if line.startswith("stopped"))
    assert summary.startswith(f"stopped; rows written: {5 * len(sequences):,} flows")  # as people read it, no dict
    agent = next(e for e in health["exporters"] if e["exporter"] == "192.0.2.1")
    assert agent["lost"]["datagrams"] == 2
    assert agent["flows"] == 5 * len(sequences)
    garbage = next(e for e in health["exporters"] if e["exporter"] == "127.0.0.1")
    assert garbage["errors"] == {"sFlow datagram shorter than its header": 1}
    assert 'flowscope_collector_sequence_lost{protocol="sflow",exporter="192.0.2.1",unit="datagrams"} 2' in metrics
    assert "flowscope_collector_socket_receive_buffer_bytes" in metrics
    totals = lake_totals(lake)
    assert (totals["flows"], totals["bytes"]) == (5 * len(sequences), bytes_per_datagram * len(sequences))
    final = flowscope_json(lake, "exporters")
    assert final is not None, "flowscope exporters failed"
    assert final["rows_written"] == {"flows": 5 * len(sequences)}
    written = pq.read_table(copy)
    assert (written.num_rows, sum(written.column("bytes").to_pylist())) == (totals["flows"], totals["bytes"])


@pytest.mark.slow
def test_workers_share_the_port(tmp_path):
    lake = tmp_path / "lake"
    port = free_port()
    collector = start_collector(lake, "--listen", f"sflow://127.0.0.1:{port}", "--workers", "2")
    senders = []
    try:
        wait_for_health(lake, lambda h: h["listeners"].get(f"sflow://127.0.0.1:{port}", {}).get("processes") == 2)
        for agent in range(8):  # several source ports, so the kernel spreads them over both workers
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            senders.append(sender)
            for sequence in range(1, 51):
                sender.sendto(sflow_payload(sequence, bytes([192, 0, 2, 10 + agent])), ("127.0.0.1", port))
        health = wait_for_health(lake, lambda h: sum(e["datagrams"] for e in h["exporters"]) == 400)
    finally:
        code, stderr = stop(collector, signal.SIGTERM)
        for sender in senders:
            sender.close()
    assert code == 0, stderr
    assert len(health["exporters"]) == 8
    assert all(not e["lost"].get("datagrams") for e in health["exporters"])
    assert lake_totals(lake)["flows"] == 400 * 5


def test_collect_rejects_a_port_in_use(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "flowscope",
                "--lake",
                str(tmp_path),
                "collect",
                "--listen",
                f"netflow://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
    assert result.returncode == 2
    assert "cannot listen on" in result.stderr
    assert "Traceback" not in result.stderr


def test_group_rows_tells_rows_apart():
    rows = np.array([[1, 2, 3], [4, 5, 6], [1, 2, 3], [7, 8, 9], [4, 5, 6]], np.uint8)
    first, group = group_rows(rows)
    assert group.tolist()[0] == group.tolist()[2] and group.tolist()[1] == group.tolist()[4]
    assert len(set(group.tolist())) == 3
    assert sorted(rows[first].tolist()) == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    same_first, same_group = group_rows(np.ones((4, 16), np.uint8))
    assert same_first.tolist() == [0] and same_group.tolist() == [0, 0, 0, 0]


@pytest.mark.slow
def test_netflow_listener_learns_templates_and_shows_them(tmp_path):
    from flowscope.collect.encoder import IPV4_TEMPLATE, encode, synthetic_columns

    lake = tmp_path / "lake"
    port = free_port()
    payloads = encode(10, IPV4_TEMPLATE, synthetic_columns(2400), records_per_datagram=24)
    collector = start_collector(lake, "--listen", f"netflow://127.0.0.1:{port}")
    try:
        wait_for_health(lake, lambda h: bool(h["listeners"]))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for payload in payloads:
                sender.sendto(payload, ("127.0.0.1", port))
        health = wait_for_health(lake, lambda h: sum(e["flows"] for e in h["exporters"]) == 2400)
    finally:
        code, stderr = stop(collector, signal.SIGTERM)
    assert code == 0, stderr
    (exporter,) = health["exporters"]
    assert (exporter["protocol"], exporter["exporter"], exporter["datagrams"]) == ("netflow", "127.0.0.1", 100)
    assert exporter["lost"].get("flows", 0) == 0
    templates = flowscope_json(lake, "templates")
    assert templates is not None, "flowscope templates failed"
    assert [(t["exporter"], t["version"], t["template_id"], t["field_count"]) for t in templates] == [
        ("127.0.0.1", 10, 256, len(IPV4_TEMPLATE))
    ]
    assert lake_totals(lake)["flows"] == 2400
    assert exporters_json(lake)["templates"] == {"known": 1, "held_sets": 0}


def test_bad_input_is_logged_at_most_once_per_reason_per_interval(caplog):
    from flowscope.collect.server import RateLimitedLog
    from flowscope.diagnostics import Skips

    limiter = RateLimitedLog(every=3600)
    skips = Skips()
    skips.add("not sFlow version 5", 3, "version 4")
    with caplog.at_level("WARNING", logger="flowscope.collect"):
        limiter.add("sflow", skips)
        limiter.add("sflow", skips)
        limiter.add("sflow", skips)
        assert len(caplog.records) == 1
        limiter.emit(force=True)
    assert [r.getMessage() for r in caplog.records] == [
        "3 skipped, sflow: not sFlow version 5 (e.g. version 4)",
        "6 skipped, sflow: not sFlow version 5 (e.g. version 4)",
    ]


def test_exporters_command_shows_the_latest_run(tmp_path):
    from click.testing import CliRunner

    from flowscope.cli import main

    lake = tmp_path / "lake"
    old, new = Health(), Health()
    for health, sequences in ((old, [1, 2]), (new, [1, 2, 4])):
        payloads = [sflow_payload(s) for s in sequences]
        health.observe(
            "sflow",
            decode_sflow(Datagrams(payloads, np.zeros((len(payloads), 16), np.uint8), np.ones(3)[: len(payloads)])),
        )
    old.started_ns -= 10**9
    old.save(lake, "host-w0", run_id="old run")
    new.save(lake, "host-main", run_id="new run")
    result = CliRunner().invoke(main, ["--lake", str(lake), "exporters", "--format", "json"])
    assert result.exit_code == 0, result.output
    (exporter,) = json.loads(result.output)["exporters"]
    assert (exporter["exporter"], exporter["datagrams"], exporter["lost"]["datagrams"]) == ("192.0.2.1", 3, 1)
    table = CliRunner().invoke(main, ["--lake", str(lake), "exporters"])
    assert table.exit_code == 0, table.output
    assert "192.0.2.1" in table.output
    empty = CliRunner().invoke(main, ["--lake", str(tmp_path / "none"), "exporters"])
    assert empty.exit_code == 2
    assert "no collector health" in empty.output


def test_ipfix_data_held_for_its_template_is_not_counted_as_lost():
    from flowscope.collect.dispatch import decode_netflow
    from flowscope.collect.encoder import IPV4_TEMPLATE, encode, synthetic_columns
    from flowscope.collect.state import NetflowState

    payloads = encode(10, IPV4_TEMPLATE, synthetic_columns(24 * 7), records_per_datagram=24)
    state, health = NetflowState(), Health()
    exporter = np.zeros((1, 16), np.uint8)
    exporter[0, 10:] = [0xFF, 0xFF, 192, 0, 2, 5]
    for order in ([1, 2, 3], [0], [4, 5, 6]):  # data first; the template rides in datagram 0
        batch = Datagrams([payloads[i] for i in order], np.repeat(exporter, len(order), 0), np.arange(len(order)))
        health.observe("netflow", decode_netflow(batch, state))
    (item,) = merge_snapshots([health.snapshot()])["exporters"]
    assert item["flows"] == 24 * 7
    assert item["lost"].get("flows", 0) == 0


def test_options_data_records_are_not_counted_as_flows():
    """Health counts flow records as flows; an exporter's options data (here a sampling rate in every
    datagram) is not a flow, though IPFIX sequence numbers count it (RFC 7011 section 3.1): no loss either."""
    from tests.collect.test_netflow_protocol import SIMPLE, ipfix, options_template, set_, simple_record, template

    from flowscope.collect.dispatch import decode_netflow
    from flowscope.collect.state import NetflowState

    templates = ipfix(options_template(400, [(10, 4)], [(34, 4)]), template(256, *SIMPLE))
    payloads, sequence = [templates], 0
    for index in range(50):
        records = b"".join(simple_record("10.0.0.1", "10.0.0.2", 100, 1) for _ in range(index % 7 + 1))
        payloads.append(ipfix(set_(400, struct.pack(">II", 3, 100)), set_(256, records), sequence=sequence))
        sequence += 1 + index % 7 + 1
    exporter = np.zeros((len(payloads), 16), np.uint8)
    exporter[:, 10:] = [0xFF, 0xFF, 192, 0, 2, 5]
    decoded = decode_netflow(Datagrams(payloads, exporter, np.arange(len(payloads))), NetflowState())
    health = Health()
    health.observe("netflow", decoded)
    (item,) = merge_snapshots([health.snapshot()])["exporters"]
    assert item["flows"] == decoded.flows.num_rows == sum(index % 7 + 1 for index in range(50))
    assert item["datagrams"] == 51
    assert item["lost"].get("flows", 0) == 0 and item["late"].get("flows", 0) == 0
