"""sFlow v5 decoding against akvorado's and goflow2's test expectations, tshark, and malformed input."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import require_tool, shared_data

from flowscope import addresses
from flowscope.capture.files import iter_packet_batches
from flowscope.collect.datagrams import Datagrams, Decoded
from flowscope.collect.sflow import decode_sflow
from flowscope.diagnostics import Skips


def capture_datagrams(path: Path) -> Datagrams:
    """The UDP payloads of a capture, with source address and capture time, as a datagram batch."""
    payloads, sources, times = [], [], []
    for batch in iter_packet_batches([path], skips=Skips()):
        for row in np.flatnonzero((batch.proto == 17) & (batch.l4_offset >= 0)).tolist():
            payloads.append(batch.payload(row))
            sources.append(batch.src_addr[row])
            times.append(batch.ts_ns[row])
    return Datagrams(payloads, np.array(sources, np.uint8).reshape(-1, 16), np.array(times, np.int64))


def raw_datagram(payload: bytes) -> Datagrams:
    return Datagrams([payload], np.zeros((1, 16), np.uint8), np.zeros(1, np.int64))


def flow_rows(decoded) -> list[dict]:
    rows = decoded.flows.to_pylist()
    for row in rows:
        for key in ("src_addr", "dst_addr", "sampler_address", "next_hop"):
            if row[key] is not None:
                row[key] = addresses.format_one(row[key])
    return rows


def subset(row: dict, expected: dict) -> dict:
    return {key: row[key] for key in expected}


def akvorado(name: str):
    return decode_sflow(capture_datagrams(shared_data("sflow", "akvorado", name)))


# Expected values from akvorado's outlet/flow/decoder/sflow/root_test.go (see SOURCE.md). Two deliberate
# differences: vlan_id is the switch's VLAN (extended switch record, source side first) and, for QinQ,
# the outermost tag; akvorado's separate src/dst VLAN columns do not exist in the flow schema.
SSH_V6 = {
    "sampling_rate": 1024,
    "in_if": 27,
    "out_if": 28,
    "vlan_id": 100,
    "src_addr": "2a0c:8880:2:0:185:21:130:38",
    "dst_addr": "2a0c:8880:2:0:185:21:130:39",
    "sampler_address": "172.16.0.3",
    "bytes": 1500,
    "packets": 1,
    "etype": 0x86DD,
    "proto": 6,
    "src_port": 46026,
    "dst_port": 22,
    "src_mac": 40057391053392,
    "dst_mac": 40057381862408,
    "ip_ttl": 64,
    "ip_tos": 8,
    "tcp_flags": 0x10,
}


def test_akvorado_basic_five_flow_samples():
    decoded = akvorado("data-1140.pcap")
    rows = flow_rows(decoded)
    assert len(rows) == 5
    for index in (0, 2, 4):
        assert subset(rows[index], SSH_V6) == SSH_V6
    routed = {
        "sampling_rate": 1024,
        "src_addr": "104.26.8.24",
        "dst_addr": "45.90.161.46",
        "next_hop": "45.90.161.46",
        "in_if": 49001,
        "out_if": 25,
        "vlan_id": 100,
        "src_as": 13335,
        "dst_as": 39421,
        "bytes": 421,
        "etype": 0x0800,
        "proto": 6,
        "src_port": 443,
        "dst_port": 56876,
        "src_mac": 216372595274807,
        "dst_mac": 191421060163210,
        "ip_ttl": 59,
        "tcp_flags": 0x18,
    }
    assert subset(rows[1], routed) == routed
    aspath = {
        "in_if": 28,
        "out_if": 49001,
        "vlan_id": 100,
        "src_as": 39421,
        "dst_as": 26615,
        "src_addr": "45.90.161.148",
        "dst_addr": "191.87.91.27",
        "next_hop": "31.14.69.110",
        "bytes": 40,
        "src_port": 55658,
        "dst_port": 5555,
        "src_mac": 138617863011056,
        "dst_mac": 216372595274807,
        "ip_ttl": 255,
        "tcp_flags": 0x2,
    }
    assert subset(rows[3], aspath) == aspath
    assert all(row["type"] == "sflow_v5" for row in rows)
    assert not decoded.skips.counts
    datagram = decoded.messages.filter(decoded.messages.column("stream").to_numpy() == 0).to_pylist()
    assert [(m["version"], m["records"], m["status"]) for m in datagram] == [(5, 5, "ok")]
    assert decoded.messages.num_rows == 1 + 5  # plus one sample-sequence row per flow sample


@pytest.mark.parametrize(
    "name", ["data-local-interface.pcap", "data-discard-interface.pcap", "data-multiple-interfaces.pcap"]
)
def test_akvorado_special_output_interfaces_read_as_zero(name):
    (row,) = flow_rows(akvorado(name))
    assert subset(row, SSH_V6) == {**SSH_V6, "out_if": 0}


def test_akvorado_expanded_flow_sample():
    (row,) = flow_rows(akvorado("data-sflow-expanded-sample.pcap"))
    expected = {
        "sampling_rate": 1000,
        "in_if": 29001,
        "out_if": 1285816721,
        "src_addr": "52.52.52.52",
        "dst_addr": "53.53.53.53",
        "sampler_address": "49.49.49.49",
        "next_hop": "54.54.54.54",
        "src_as": 203476,
        "dst_as": 203361,
        "vlan_id": 809,
        "bytes": 104,
        "etype": 0x0800,
        "proto": 6,
        "src_port": 22,
        "dst_port": 52237,
        "tcp_flags": 0x18,
        "ip_ttl": 61,
        "ip_tos": 8,
        "src_mac": 0x948ED30A713B,
        "dst_mac": 0x22421F4A9FCD,
    }
    assert subset(row, expected) == expected


def test_akvorado_ipv4_data_and_sampled_ethernet():
    (row,) = flow_rows(akvorado("data-sflow-ipv4-data.pcap"))
    expected = {
        "sampling_rate": 256,
        "in_if": 0,
        "out_if": 182,
        "vlan_id": 3001,
        "src_addr": "50.50.50.50",
        "dst_addr": "51.51.51.51",
        "sampler_address": "49.49.49.49",
        "bytes": 1344,
        "etype": 0x0800,
        "proto": 17,
        "src_port": 46622,
        "dst_port": 58631,
        "src_mac": 1094287164743,
        "dst_mac": 1101091482116,
        "ip_ttl": 64,
    }
    assert subset(row, expected) == expected


def test_akvorado_raw_ipv4_headers():
    rows = flow_rows(akvorado("data-sflow-raw-ipv4.pcap"))
    assert [
        (r["src_addr"], r["dst_addr"], r["bytes"], r["proto"], r["ip_ttl"], r["ip_tos"], r["out_if"]) for r in rows
    ] == [
        ("69.58.92.107", "92.222.186.1", 32, 1, 64, 8, 2),
        ("69.58.92.107", "92.222.184.1", 32, 1, 64, 8, 2),
    ]
    assert {r["sampler_address"] for r in rows} == {"172.19.64.116"}
    assert {r["src_mac"] for r in rows} == {None} or {r["src_mac"] for r in rows} == {0}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "data-icmpv4.pcap",
            {
                "src_addr": "203.0.113.4",
                "dst_addr": "203.0.113.5",
                "bytes": 84,
                "proto": 1,
                "icmp_type": 8,
                "icmp_code": 0,
                "dst_mac": 0xD25B45EE5ECF,
                "src_mac": 0xE2EFC68F8CD4,
                "ip_ttl": 64,
                "sampling_rate": 1,
            },
        ),
        (
            "data-icmpv6.pcap",
            {
                "src_addr": "fe80::d05b:45ff:feee:5ecf",
                "dst_addr": "2001:db8::",
                "bytes": 72,
                "proto": 58,
                "icmp_type": 135,
                "src_mac": 0xD25B45EE5ECF,
                "dst_mac": 0xE2EFC68F8CD4,
                "ip_ttl": 255,
                "etype": 0x86DD,
            },
        ),
        (
            "data-qinq.pcap",
            {
                "sampling_rate": 4096,
                "in_if": 369098852,
                "out_if": 369098851,
                "src_addr": "49.49.49.2",
                "dst_addr": "49.49.49.109",
                "sampler_address": "172.17.128.58",
                "bytes": 80,
                "proto": 6,
                "src_mac": 0x4CAEA3520FF6,
                "dst_mac": 0x000110621493,
                "ip_ttl": 62,
                "tcp_flags": 16,
                "src_port": 32017,
                "dst_port": 443,
                "vlan_id": 1062,
            },
        ),
        (
            # Not decapsulated: the outer VXLAN packet is the flow (akvorado decapsulates only on request).
            "data-encap-vxlan.pcap",
            {"src_addr": "192.168.108.40", "dst_addr": "192.168.15.14", "proto": 17, "dst_port": 4789},
        ),
    ],
)
def test_akvorado_single_samples(name, expected):
    (row,) = flow_rows(akvorado(name))
    assert subset(row, expected) == expected


def test_goflow2_raw_payloads():
    data = shared_data("raw", "goflow2")
    basic = decode_sflow(raw_datagram((data / "sflow_TestSFlowDecode_data.bin").read_bytes()))
    (row,) = flow_rows(basic)
    assert subset(
        row,
        {
            "src_addr": "172.16.32.254",
            "dst_addr": "172.16.32.241",
            "sampling_rate": 2048,
            "proto": 1,
            "in_if": 1194,
            "out_if": 1043,
        },
    ) == {
        "src_addr": "172.16.32.254",
        "dst_addr": "172.16.32.241",
        "sampling_rate": 2048,
        "proto": 1,
        "in_if": 1194,
        "out_if": 1043,
    }
    expanded = decode_sflow(raw_datagram((data / "sflow_TestExpandedSFlowDecode_data.bin").read_bytes()))
    assert expanded.flows.num_rows == 5
    assert set(expanded.flows.column("sampling_rate").to_pylist()) == {16383}
    assert not expanded.skips.counts
    for name in ("EgressQueue", "ExtendedACL", "ExtendedFunction"):
        drops = decode_sflow(raw_datagram((data / f"sflow_TestSFlowDecodeDrop{name}_data.bin").read_bytes()))
        assert drops.flows.num_rows == 0
        assert drops.skips.counts == {"sFlow discarded-packet samples (drop notifications, not traffic)": 1}
        assert drops.messages.column("status").to_pylist() == ["ok"]


def tshark_samples(path: Path) -> list[dict]:
    """tshark's decoding of each datagram: agent, sequence, per-sample fields and the sampled headers' fields."""
    fields = [
        "sflow_245.agent",
        "sflow_245.sequence_number",
        "sflow.flow_sample.sampling_rate",
        "sflow.flow_sample.input_interface",
        "sflow.flow_sample.input_interface_value",
        "sflow.flow_sample.output_interface_format",
        "sflow.flow_sample.output_interface.format",
        "sflow.flow_sample.output_interface_value",
        "sflow_245.srcAS",
        "ip.src",
        "ipv6.src",
        "ip.len",
        "ipv6.plen",
    ]
    command = [require_tool("tshark"), "-r", str(path), "-d", "udp.port==6343,sflow", "-T", "json"]
    for field in fields:
        command += ["-e", field]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    return [packet["_source"]["layers"] for packet in json.loads(output)]


@pytest.mark.integration
@pytest.mark.parametrize(
    "path",
    [
        *(
            ("sflow", "akvorado", p.name)
            for p in sorted(
                Path(__file__).parents[2].parent.joinpath("shared", "testdata", "sflow", "akvorado").glob("*.pcap")
            )
        ),
        ("pcap", "tcpdump", "sflow_expanded.pcap"),
    ],
)
def test_matches_tshark(path):
    capture = shared_data(*path)
    decoded = decode_sflow(capture_datagrams(capture))
    rows = flow_rows(decoded)
    layers = tshark_samples(capture)
    assert len(layers) == 1  # each file holds one datagram
    (layer,) = layers
    datagram = decoded.messages.to_pylist()[0]
    assert addresses.format_one(datagram["exporter"]) == layer["sflow_245.agent"][0]
    assert datagram["sequence"] == int(layer["sflow_245.sequence_number"][0])
    assert [r["sampling_rate"] for r in rows] == [int(v) for v in layer["sflow.flow_sample.sampling_rate"]]
    inputs = layer.get("sflow.flow_sample.input_interface", []) + layer.get(
        "sflow.flow_sample.input_interface_value", []
    )
    assert [r["in_if"] for r in rows] == [0 if int(v) == 0x3FFFFFFF else int(v) for v in inputs]
    values = layer["sflow.flow_sample.output_interface_value"]
    # Compact samples name the format field with an underscore, expanded ones with a dot.
    formats = layer.get("sflow.flow_sample.output_interface_format") or layer.get(
        "sflow.flow_sample.output_interface.format", ["0"] * len(values)
    )
    outputs = zip(formats, values, strict=True)
    assert [r["out_if"] for r in rows] == [int(v) if f == "0" and int(v) != 0x3FFFFFFF else 0 for f, v in outputs]
    # Bytes are the sampled packets' IP lengths (tshark: ip.len, or IPv6 payload length + 40), each one of them.
    lengths = Counter(int(v) for v in layer.get("ip.len", [])[1:]) + Counter(
        int(v) + 40 for v in layer.get("ipv6.plen", [])
    )
    assert not Counter(r["bytes"] for r in rows) - lengths
    assert {int(v) for v in layer.get("sflow_245.srcAS", []) if v != "0"} <= {r["src_as"] for r in rows}
    # tshark lists the collector packet's own source first, then each sampled header's (and, for tunnels, the
    # inner packet's): every sampled source must be among them in order.
    sampled_sources = layer.get("ip.src", [])[1:] + layer.get("ipv6.src", [])
    for row in rows:
        assert row["src_addr"] in sampled_sources


# A hand-built datagram (sFlow v5 spec layout) with one compact counter sample holding a generic interface
# counter record and an Ethernet counter record (the latter is not stored).
def counter_datagram(sequence: int = 7) -> bytes:
    generic = struct.pack(
        ">IIQIIQIIIIIIQIIIIII",
        3,
        6,
        10_000_000_000,
        1,
        3,
        123_456_789_012,
        1000,
        20,
        30,
        4,
        5,
        6,
        987_654_321_098,
        2000,
        21,
        31,
        7,
        8,
        0,
    )
    ethernet = bytes(52)
    records = struct.pack(">II", 1, len(generic)) + generic + struct.pack(">II", 2, len(ethernet)) + ethernet
    sample = struct.pack(">III", 42, (0 << 24) | 3, 2) + records
    header = struct.pack(">II4sIIII", 5, 1, bytes([192, 0, 2, 9]), 1, sequence, 1000, 1)
    return header + struct.pack(">II", 2, len(sample)) + sample


def test_counter_samples_become_interface_counter_rows():
    decoded = decode_sflow(raw_datagram(counter_datagram()))
    assert decoded.flows.num_rows == 0
    (row,) = decoded.counters.to_pylist()
    assert addresses.format_one(row["sampler_address"]) == "192.0.2.9"
    expected = {
        "sub_agent_id": 1,
        "sequence_num": 42,
        "source_id_type": 0,
        "source_id_index": 3,
        "if_index": 3,
        "if_type": 6,
        "if_speed": 10_000_000_000,
        "if_status": 3,
        "in_octets": 123_456_789_012,
        "in_ucast_pkts": 1000,
        "in_errors": 5,
        "out_octets": 987_654_321_098,
        "out_discards": 7,
        "out_errors": 8,
    }
    assert subset(row, expected) == expected
    assert not decoded.skips.counts
    streams = decoded.messages.column("stream").to_pylist()
    assert streams == [0, 2]


def test_several_datagrams_decode_as_one_batch():
    one = (shared_data("raw", "goflow2") / "sflow_TestExpandedSFlowDecode_data.bin").read_bytes()
    batch = Datagrams([one, counter_datagram(), one], np.zeros((3, 16), np.uint8), np.array([1, 2, 3]))
    decoded = decode_sflow(batch)
    assert decoded.flows.num_rows == 10
    assert decoded.counters.num_rows == 1
    datagrams = decoded.messages.filter(decoded.messages.column("stream").to_numpy() == 0)
    assert datagrams.column("records").to_pylist() == [5, 0, 5]


def test_bad_datagrams_are_counted_never_raised():
    good = (shared_data("raw", "goflow2") / "sflow_TestExpandedSFlowDecode_data.bin").read_bytes()
    rng = np.random.default_rng(4)
    payloads = [good[:cut] for cut in range(0, len(good), 7)]
    for _ in range(300):
        mutated = bytearray(good)
        for position in rng.integers(0, len(good), 8):
            mutated[position] = int(rng.integers(0, 256))
        payloads.append(bytes(mutated))
    payloads += [
        b"",
        b"\x00\x00\x00\x09" + bytes(40),
        struct.pack(">II", 5, 7) + bytes(40),
        struct.pack(">IIIIIII", 5, 1, 0, 0, 0, 0, 0xFFFFFFFF),
    ]
    batch = Datagrams(payloads, np.zeros((len(payloads), 16), np.uint8), np.zeros(len(payloads), np.int64))
    decoded = decode_sflow(batch)
    statuses = decoded.messages.filter(decoded.messages.column("stream").to_numpy() == 0).column("status")
    assert len(statuses) == len(payloads)
    assert {
        "sFlow datagram shorter than its header",
        "not sFlow version 5",
        "sFlow agent address type unknown",
        "sFlow sample list cut short",
    } <= set(statuses.to_pylist())
    assert decoded.skips.total > 0
    assert decoded.flows.num_rows <= 5 * len(payloads)


def test_ipv6_agent_and_expanded_counter_sample():
    """Hand-built per the sFlow v5 spec: IPv6 agent address, one expanded counter sample (format 4)."""
    agent = socket.inet_pton(socket.AF_INET6, "2001:db8::9")
    generic = struct.pack(
        ">IIQIIQIIIIIIQIIIIII", 7, 6, 1_000_000_000, 1, 3, 10, 1, 2, 3, 4, 5, 6, 20, 7, 8, 9, 10, 11, 1
    )
    records = struct.pack(">II", 1, len(generic)) + generic
    sample = struct.pack(">IIII", 9, 0, 70_000, 1) + records  # expanded: type and index in separate words
    header = struct.pack(">II16sIIII", 5, 2, agent, 3, 11, 500, 1)
    decoded = decode_sflow(raw_datagram(header + struct.pack(">II", 4, len(sample)) + sample))
    (row,) = decoded.counters.to_pylist()
    assert addresses.format_one(row["sampler_address"]) == "2001:db8::9"
    assert (row["sub_agent_id"], row["sequence_num"], row["source_id_index"], row["if_index"]) == (3, 9, 70_000, 7)
    assert (row["in_octets"], row["out_octets"], row["promiscuous_mode"]) == (10, 20, 1)
    (datagram,) = decoded.messages.filter(decoded.messages.column("stream").to_numpy() == 0).to_pylist()
    assert (addresses.format_one(datagram["exporter"]), datagram["domain"], datagram["sequence"]) == (
        "2001:db8::9",
        3,
        11,
    )
    assert not decoded.skips.counts


def test_sflow_and_netflow_results_concatenate():
    """sFlow message rows carry two more columns (sample sequences); merging with NetFlow's keeps both."""
    from flowscope.collect.dispatch import decode_netflow
    from flowscope.collect.state import NetflowState

    data = shared_data("raw", "goflow2")
    netflow = decode_netflow(raw_datagram((data / "nfv5_TestDecodeNetFlowV5_data.bin").read_bytes()), NetflowState())
    sflow = decode_sflow(raw_datagram((data / "sflow_TestExpandedSFlowDecode_data.bin").read_bytes()))
    merged = Decoded.concat([netflow, sflow])
    assert merged.flows.num_rows == netflow.flows.num_rows + 5
    assert merged.messages.num_rows == netflow.messages.num_rows + sflow.messages.num_rows
    assert merged.messages.column("stream").null_count == netflow.messages.num_rows
