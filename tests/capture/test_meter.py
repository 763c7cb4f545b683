"""The vectorised flow meter against hand-made packets and a plain sequential meter."""

from __future__ import annotations

import base64
import hashlib
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from tests.capture.frame_builders import ether, icmp, ipv4, ipv6, pcap_file
from tests.capture.meter_helpers import address, make_batch, reference_flows, table_flows

from flowscope.addresses import format_text
from flowscope.capture import meter as meter_module
from flowscope.capture.meter import FlowMeter
from flowscope.capture.options import MeterOptions
from flowscope.capture.packets import PacketBatch
from flowscope.capture.source import CaptureSource
from flowscope.schema import FLOW_SCHEMA


def meter_all(batches: list[PacketBatch], settings: MeterOptions | None = None) -> tuple[pa.Table, FlowMeter]:
    meter = FlowMeter(settings or MeterOptions())
    tables = [meter.add(batch) for batch in batches]
    tables.extend(meter.flush())
    return pa.concat_tables(tables), meter


def tcp(ts: float, src: str, dst: str, sport: int, dport: int, size: int = 100, flags: int = 0x10) -> dict:
    return {"ts": ts, "src": src, "dst": dst, "sport": sport, "dport": dport, "size": size, "flags": flags}


def test_biflow_source_is_first_sender_and_counts_each_direction() -> None:
    packets = [
        tcp(1.0, "10.0.0.9", "10.0.0.1", 40000, 80, 60, 0x02),
        tcp(1.1, "10.0.0.1", "10.0.0.9", 80, 40000, 60, 0x12),
        tcp(1.2, "10.0.0.9", "10.0.0.1", 40000, 80, 52, 0x10),
        tcp(1.3, "10.0.0.1", "10.0.0.9", 80, 40000, 1500, 0x18),
    ]
    table, _ = meter_all([make_batch(packets)])
    assert table.schema.equals(FLOW_SCHEMA)
    [flow] = table.drop_columns(["time_received", "time_flow_start", "time_flow_end"]).to_pylist()
    assert flow["src_addr"] == address("10.0.0.9") and flow["src_port"] == 40000 and flow["dst_port"] == 80
    assert (flow["packets"], flow["bytes"], flow["packets_rev"], flow["bytes_rev"]) == (2, 112, 2, 1560)
    assert flow["tcp_flags"] == 0x1A
    assert flow["type"] == "pcap" and flow["proto"] == 6
    assert table.column("time_flow_start").cast("int64").to_pylist() == [1_000_000_000]
    assert table.column("time_flow_end").cast("int64").to_pylist() == [1_300_000_000]


def test_uniflow_meters_each_direction_on_its_own() -> None:
    packets = [tcp(1.0, "10.0.0.9", "10.0.0.1", 1, 2), tcp(1.1, "10.0.0.1", "10.0.0.9", 2, 1)]
    table, _ = meter_all([make_batch(packets)], MeterOptions(uniflow=True))
    assert table.num_rows == 2
    assert table.column("packets_rev").to_pylist() == [0, 0]


def test_link_bytes_counts_frame_lengths() -> None:
    packets = [tcp(1.0, "10.0.0.9", "10.0.0.1", 1, 2, 100)]
    table, _ = meter_all([make_batch(packets)], MeterOptions(link_bytes=True))
    assert table.column("bytes").to_pylist() == [114]


def test_idle_and_active_timeouts_split_like_a_sequential_meter() -> None:
    packets = [tcp(float(t), "10.0.0.1", "10.0.0.2", 5, 6) for t in range(0, 700, 10)]
    packets += [tcp(1000.0, "10.0.0.1", "10.0.0.2", 5, 6), tcp(1061.0, "10.0.0.1", "10.0.0.2", 5, 6)]
    table, _ = meter_all([make_batch(packets)], MeterOptions(active=300, idle=60))
    starts = sorted(table.column("time_flow_start").cast("int64").to_numpy() // 1_000_000_000)
    assert starts == [0, 300, 600, 1000, 1061]
    assert reference_flows(packets, idle=60, active=300) == table_flows(table)


def random_packets(count: int, seed: int, span: float = 2000.0) -> list[dict]:
    rng = random.Random(seed)
    hosts = [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(40)] + ["2001:db8::1", "2001:db8::2"]
    packets = []
    for _ in range(count):
        v6 = rng.random() < 0.1
        src, dst = rng.sample(hosts[-2:] if v6 else hosts[:6], 2)
        proto = rng.choice([6, 17, 58 if v6 else 1])
        sport, dport = (0, 0) if proto in (1, 58) else (rng.choice([1000, 1001, 53]), rng.choice([53, 80, 1000]))
        icmp_type = rng.choice([128, 129, 135, 136] if v6 else [8, 0, 3, 3, 11])
        ts = round(rng.uniform(0, span), 3)
        packets.append({"ts": ts, "src": src, "dst": dst, "sport": sport, "dport": dport, "proto": proto,
                        "icmp_type": icmp_type, "icmp_code": rng.choice([0, 1]) if icmp_type == 3 else 0,
                        "size": rng.randint(40, 1500), "vlan": rng.choice([0, 0, 0, 7])})  # fmt: skip
    return sorted(packets, key=lambda p: p["ts"])


@pytest.mark.parametrize("batch_size", [1, 7, 100, 5000])
def test_matches_sequential_meter_whatever_the_batching(batch_size: int) -> None:
    packets = random_packets(3000, seed=batch_size)
    batches = [make_batch(packets[i : i + batch_size]) for i in range(0, len(packets), batch_size)]
    table, meter = meter_all(batches, MeterOptions(active=300, idle=60))
    assert table_flows(table) == reference_flows(packets, idle=60, active=300)
    assert meter.packets == len(packets)


@pytest.mark.parametrize("batch_size", [13, 1000])
def test_uniflow_matches_sequential_meter(batch_size: int) -> None:
    packets = random_packets(2000, seed=100 + batch_size)
    batches = [make_batch(packets[i : i + batch_size]) for i in range(0, len(packets), batch_size)]
    table, _ = meter_all(batches, MeterOptions(active=300, idle=60, uniflow=True))
    assert table_flows(table) == reference_flows(packets, idle=60, active=300, uniflow=True)
    assert table.column("packets_rev").to_pylist() == [0] * table.num_rows


def test_out_of_order_packets_meter_by_time_not_arrival() -> None:
    early, late = ([tcp(t, "10.0.0.1", "10.0.0.2", 5, 6) for t in times] for times in ((1.0, 40.0), (20.0, 95.0)))
    # 95 s is 55 s after the last packet before it in time (40 s), though 75 s after the one before it in arrival
    table, _ = meter_all([make_batch(early), make_batch(late)], MeterOptions(idle=60))
    assert table.column("packets").to_pylist() == [4]


def test_hash_collisions_do_not_merge_different_flows(monkeypatch: pytest.MonkeyPatch) -> None:
    packets = random_packets(500, seed=3)
    expected = reference_flows(packets, idle=60, active=300)
    monkeypatch.setattr(meter_module, "_hash_words", lambda *columns: np.zeros(columns[0].shape[0], np.uint64))
    table, _ = meter_all([make_batch(packets[:250]), make_batch(packets[250:])])
    assert table_flows(table) == expected


def test_later_fragments_join_their_first_fragments_flow_across_batches() -> None:
    first = {**tcp(1.0, "10.0.0.1", "10.0.0.2", 53, 5353, 1500), "proto": 17, "frag_id": 7, "more_fragments": True}
    middle = {"ts": 1.0, "src": "10.0.0.1", "dst": "10.0.0.2", "proto": 17, "frag_id": 7, "frag_offset": 185,
              "more_fragments": True, "size": 1500}  # fmt: skip
    last = {**middle, "ts": 1.1, "frag_offset": 370, "more_fragments": False, "size": 300}
    orphan = {**middle, "frag_id": 8}
    meter = FlowMeter()
    tables = [meter.add(make_batch([first, middle])), meter.add(make_batch([last, orphan])), *meter.flush()]
    table = pa.concat_tables(tables)
    flows = sorted(zip(table.column("dst_port").to_pylist(), table.column("packets").to_pylist(), strict=True))
    assert flows == [(0, 1), (5353, 3)]
    assert meter.unmatched_fragments == 1


def test_full_cache_expires_oldest_flows_early_and_loses_nothing() -> None:
    packets = [tcp(float(i), "10.0.0.1", "10.0.0.2", 1000 + i, 80) for i in range(50)]
    packets += [tcp(50.0 + i, "10.0.0.1", "10.0.0.2", 1000 + i, 80) for i in range(50)]
    batches = [make_batch(packets[i : i + 10]) for i in range(0, 100, 10)]
    table, meter = meter_all(batches, MeterOptions(max_flows=20))
    assert meter.early_expired > 0
    assert meter.peak_flows <= 20
    assert sum(table.column("packets").to_pylist()) == 100
    assert table.num_rows > 50  # flows pushed out early come back as second records


def test_icmp_messages_are_keyed_by_type_and_code_and_exchanges_stay_one_biflow(tmp_path: Path) -> None:
    """A capture of different ICMP/ICMPv6 messages between two hosts: a neighbour solicitation and the
    advertisement are two flows (nfdump, ipfixprobe and YAF keep type and code in the key), each
    destination unreachable code is its own flow, and an echo request with its reply is one biflow (one
    per direction of pinging), a fragmented request included. Ports stay 0 as the schema has it."""
    a, b = "10.0.0.1", "10.0.0.2"
    echo = icmp(8, 0, b"ping" * 2)
    frames = [
        ipv6(icmp(135, 0, bytes(16)), 58, "2001:db8::1", "2001:db8::2"),
        ipv6(icmp(136, 0, bytes(16)), 58, "2001:db8::2", "2001:db8::1"),
        ipv4(echo, 1, a, b),
        ipv4(icmp(0, 0, b"ping" * 2), 1, b, a),
        ipv4(echo, 1, b, a),
        ipv4(icmp(0, 0, b"ping" * 2), 1, a, b),
        ipv4(icmp(3, 3, bytes(28)), 1, b, a),
        ipv4(icmp(3, 1, bytes(28)), 1, b, a),
        ipv4(echo, 1, a, b, ident=99, more_fragments=True),
        ipv4(b"x" * 16, 1, a, b, ident=99, frag_offset=2),
    ]
    path = tmp_path / "icmp.pcap"
    path.write_bytes(pcap_file([ether(f, 0x86DD if f[0] >> 4 == 6 else 0x0800) for f in frames]))
    table = pa.concat_tables(list(CaptureSource([path], MeterOptions())))
    names = ["src_port", "dst_port", "proto", "icmp_type", "icmp_code", "packets", "packets_rev"]
    flows = sorted(
        (src, dst, *values)
        for src, dst, *values in zip(
            format_text(table.column("src_addr")).to_pylist(),
            format_text(table.column("dst_addr")).to_pylist(),
            *(table.column(name).to_pylist() for name in names),
            strict=True,
        )
    )
    assert flows == [
        (a, b, 0, 0, 1, 8, 0, 3, 1),
        (b, a, 0, 0, 1, 3, 1, 1, 0),
        (b, a, 0, 0, 1, 3, 3, 1, 0),
        (b, a, 0, 0, 1, 8, 0, 1, 1),
        ("2001:db8::1", "2001:db8::2", 0, 0, 58, 135, 0, 1, 0),
        ("2001:db8::2", "2001:db8::1", 0, 0, 58, 136, 0, 1, 0),
    ]
    uniflows = pa.concat_tables(list(CaptureSource([path], MeterOptions(uniflow=True))))
    assert uniflows.num_rows == 8  # echo requests and replies apart (each direction on its own)


def reference_community_id(src: str, dst: str, proto: int, sport: int, dport: int) -> str:
    """Community ID v1 per the spec, one flow at a time (TCP/UDP only)."""
    a, b = address(src)[12:], address(dst)[12:]
    if (b, dport) < (a, sport):
        a, b, sport, dport = b, a, dport, sport
    data = b"\0\0" + a + b + bytes([proto, 0]) + sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode()


def test_community_id_matches_spec_example_and_reference() -> None:
    packets = [tcp(1.0, "127.0.0.1", "10.0.0.1", 1234, 80), tcp(2.0, "10.0.0.7", "10.0.0.1", 999, 443)]
    table, _ = meter_all([make_batch(packets)])
    ids = dict(zip(table.column("src_port").to_pylist(), table.column("community_id").to_pylist(), strict=True))
    assert ids[1234] == "1:mgRgpIZSu0KHDp/QrtcWZpkJpMU="  # the spec's own example
    assert ids[999] == reference_community_id("10.0.0.7", "10.0.0.1", 6, 999, 443)


def test_flow_state_stays_under_200_bytes_per_flow() -> None:
    assert meter_module.BYTES_PER_FLOW <= 200


@pytest.mark.parametrize("length", [12, 16, 36, 40, 55])
def test_single_block_sha1_equals_hashlib(length: int) -> None:
    from flowscope.capture.community_id import sha1_single_block

    messages = np.random.default_rng(length).integers(0, 256, (500, length), dtype=np.uint8)
    blocks = np.zeros((500, 64), np.uint8)
    blocks[:, :length] = messages
    blocks[:, length] = 0x80
    blocks[:, 56:] = np.array([length * 8], ">u8").view(np.uint8)
    digests = sha1_single_block(blocks)
    assert [d.tobytes() for d in digests] == [hashlib.sha1(m.tobytes()).digest() for m in messages]


def test_cache_memory_per_active_flow_stays_under_200_bytes() -> None:
    """Many concurrent flows arriving over several batches: arrays (with spare capacity) under 200 B a flow."""
    count = 40_000
    batch = PacketBatch.empty(count)
    batch.ip_version[:] = 4
    batch.proto[:] = 17
    batch.ip_len[:] = 100
    batch.src_addr[:, 10:12] = 0xFF
    batch.dst_addr[:, 10:12] = 0xFF
    batch.dst_addr[:, 15] = 1
    meter = FlowMeter()
    for part in range(4):
        batch.ts_ns[:] = 1_000_000_000 * (1 + part) + np.arange(count)
        batch.src_port[:] = np.arange(count) % 65536
        batch.src_addr[:, 14] = part * 10 + np.arange(count) // 65536
        assert meter.add(batch).num_rows == 0
    assert len(meter.cache) == 4 * count
    assert meter.cache.nbytes / len(meter.cache) <= 200
    assert sum(table.num_rows for table in meter.flush()) == 4 * count


def spec_community_id(src: bytes, dst: bytes, proto: int, sport: int, dport: int, icmp_type: int, icmp_code: int
                      ) -> str:  # fmt: skip
    """Community ID v1 for one flow, written from the spec with hashlib (any family, protocol or ICMP type)."""
    from flowscope.capture.community_id import _ICMP4_PAIRS, _ICMP6_PAIRS, PORT_PROTOS

    mapped = bytes(10) + b"\xff\xff"
    if src[:12] == mapped and dst[:12] == mapped:
        src, dst = src[12:], dst[12:]
    one_way = False
    if proto in (1, 58):
        pairs = _ICMP4_PAIRS if proto == 1 else _ICMP6_PAIRS
        sport, dport, one_way = icmp_type, pairs.get(icmp_type, icmp_code), icmp_type not in pairs
    if not one_way and not (src < dst or (src == dst and sport < dport)):
        src, dst, sport, dport = dst, src, dport, sport
    ports = sport.to_bytes(2, "big") + dport.to_bytes(2, "big") if proto in PORT_PROTOS else b""
    data = b"\0\0" + src + dst + bytes([proto, 0]) + ports
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode()


def test_community_ids_equal_hashlib_for_every_layout() -> None:
    """IPv4 and IPv6, with and without ports, ICMP pairs and one-way types, equal addresses and ports."""
    from flowscope.capture.community_id import community_ids

    rng = np.random.default_rng(7)
    n = 3000
    src = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    v4 = rng.random(n) < 0.6
    src[v4, :10], src[v4, 10:12] = 0, 0xFF
    dst = src.copy()
    changed = rng.random(n) < 0.9  # the rest keep equal addresses
    dst[changed, 12:] = rng.integers(0, 256, (int(changed.sum()), 4), dtype=np.uint8)
    proto = rng.choice(np.array([6, 17, 1, 58, 132, 47], np.uint8), n)
    sport = rng.integers(0, 4, n, dtype=np.uint16) * rng.integers(0, 65536, n, dtype=np.uint16)
    dport = rng.integers(0, 4, n, dtype=np.uint16) * rng.integers(0, 65536, n, dtype=np.uint16)
    icmp_type = rng.choice(np.array([0, 3, 8, 13, 128, 129, 135, 200], np.uint8), n)
    icmp_code = rng.integers(0, 4, n, dtype=np.uint8)
    ours = community_ids(src, dst, proto, sport, dport, icmp_type, icmp_code).to_pylist()
    expected = []
    for i in range(n):
        numbers = (int(column[i]) for column in (proto, sport, dport, icmp_type, icmp_code))
        expected.append(spec_community_id(bytes(src[i]), bytes(dst[i]), *numbers))
    assert ours == expected
