"""GoFlow2 FlowMessages: what flowscope encodes, the official runtime parses, and the reverse."""

from __future__ import annotations

from itertools import pairwise
from types import ModuleType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from tests.helpers import flows

from flowscope import addresses
from flowscope.diagnostics import Skips
from flowscope.kafka import goflow2
from flowscope.schema import conform

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _delimited(messages: list[bytes]) -> bytes:
    return b"".join(_varint(len(m)) + m for m in messages)


def _messages(data: np.ndarray, ends: np.ndarray) -> list[bytes]:
    """Each length-delimited message's body (the runtime reads bodies, not the prefix)."""
    out, start = [], 0
    raw = data.tobytes()
    for end in ends.tolist():
        length, at = 0, start
        shift = 0
        while True:
            byte = raw[at]
            length |= (byte & 0x7F) << shift
            at += 1
            shift += 7
            if byte < 0x80:
                break
        assert at + length == end
        out.append(raw[at:end])
        start = end
    return out


def _mixed_rows() -> pa.Table:
    """Flows with IPv4 and IPv6 addresses, nulls, each FlowType, the largest values of each field."""
    table = flows(8)
    v6 = addresses.parse_text(pa.array(["2001:db8::1", "::", "10.1.2.3", "fe80::ffff:1", None, "1.2.3.4",
                                        "2a00::", "0.0.0.0"]))  # fmt: skip
    table = table.set_column(table.schema.get_field_index("dst_addr"), "dst_addr", v6)
    types = pa.array(["ipfix", "netflow_v5", "netflow_v9", "sflow_v5", "pcap", None, "ipfix", "ipfix"])
    table = table.set_column(table.schema.get_field_index("type"), "type", types)
    extremes = {
        "bytes": pa.array([2**64 - 1, 0, 1, 127, 128, 2**63, 2**56, 2**56 - 1], pa.uint64()),
        "sampling_rate": pa.array([None, 1, 1000, 2**35, None, 1, 1, 1], pa.uint64()),
        "src_mac": pa.array([0xFFFFFFFFFFFF, 0x0A0B0C0D0E0F, 0, 1, 2, 3, 4, 5], pa.uint64()),
        "sequence_num": pa.array([2**32 - 1, 0, 1, 2, 3, 4, 5, 6], pa.uint32()),
        "vlan_id": pa.array([4095, None, 1, 2, 3, 4, 5, 6], pa.uint16()),
    }
    for name, values in extremes.items():
        table = table.set_column(table.schema.get_field_index(name), name, values)
    return conform(table)


def _with_integer_times(table: pa.Table) -> pa.Table:
    for name in ("time_received", "time_flow_start", "time_flow_end"):
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, table.column(name).cast(pa.int64()))
    return table


def _as_message_fields(row: dict, flow_pb2: ModuleType) -> dict:
    """A flowscope row as the FlowMessage field values it must encode to."""
    expected = {}
    for f in goflow2.FIELDS:
        value = row[f.column]
        name = next(c.goflow2.name for c in _catalogue() if c.name == f.column)
        if f.kind == "address":
            raw = b"" if value is None else value
            expected[name] = raw[12:] if raw[:12] == bytes(10) + b"\xff\xff" else raw
        elif f.kind == "time":
            expected[name] = value or 0
        elif f.kind == "enum":
            expected[name] = goflow2.FLOW_TYPES.index(value) if value in goflow2.FLOW_TYPES[1:] else 0
        else:
            expected[name] = value or 0
    return expected


def _catalogue():
    from flowscope.schema import FLOWS, table_columns

    return table_columns(FLOWS)


def test_encoded_messages_parse_field_by_field(flow_pb2: ModuleType) -> None:
    table = _mixed_rows()
    data, ends = goflow2.encode(table)
    bodies = _messages(data, ends)
    assert len(bodies) == table.num_rows
    rows = _with_integer_times(table).to_pylist()
    for body, row in zip(bodies, rows, strict=True):
        message = flow_pb2.FlowMessage()
        message.ParseFromString(body)
        for name, value in _as_message_fields(row, flow_pb2).items():
            assert getattr(message, name) == value, (name, row)
        assert message.SerializeToString() == body  # same bytes, same field order as the runtime's


def test_a_null_is_an_absent_field() -> None:
    table = conform(pa.table({"bytes": pa.array([None], pa.uint64())}))
    data, _ = goflow2.encode(table)
    assert data.tobytes() == b"\x00"  # an empty FlowMessage: only its zero length


def test_runtime_messages_decode_exactly(flow_pb2: ModuleType) -> None:
    rng = np.random.default_rng(3)
    n = 300
    bodies = []
    for i in range(n):
        m = flow_pb2.FlowMessage()
        m.type = int(rng.integers(0, 5))
        m.time_received_ns = int(rng.integers(1, 2**63))
        m.time_flow_start_ns = 1_700_000_000_000_000_000 + i
        m.time_flow_end_ns = 1_700_000_000_000_000_000 + 2 * i
        m.sampler_address = bytes(rng.integers(0, 256, 4 if i % 3 else 16, dtype=np.uint8))
        m.src_addr = bytes(rng.integers(0, 256, 16 if i % 2 else 4, dtype=np.uint8))
        m.dst_addr = bytes([10, 0, 0, i % 256])
        m.bytes = int(rng.integers(0, 2**64, dtype=np.uint64))
        m.packets = i
        m.src_port, m.dst_port, m.proto = i % 65536, 443, 6
        m.sampling_rate = i % 4
        m.sequence_num = 2**32 - 1 - i
        m.src_mac, m.dst_mac = 0xFFFFFFFFFFFF, i
        m.observation_domain_id = i
        m.in_if, m.out_if, m.src_as, m.dst_as = i, i + 1, 2**32 - 1, 64512
        m.vlan_id, m.etype, m.tcp_flags, m.ip_tos, m.ip_ttl = 4095, 0x86DD, 0x1B, 0xB8, 64
        m.icmp_type, m.icmp_code = 8, 0
        m.next_hop = bytes([192, 0, 2, 1])
        # fields flowscope does not keep must be skipped
        m.as_path.extend([65000, 65001])
        m.layer_stack.extend([0, 1, 3])
        m.mpls_ip.extend([b"\x01\x02\x03\x04"])
        m.bgp_next_hop = b"\x00" * 16
        m.ipv6_flow_label = 12345
        bodies.append(m.SerializeToString())
    skips = Skips()
    # one message per Kafka message and many in one, as GoFlow2 and a batching producer send them
    payloads = [_delimited([b]) for b in bodies[:100]] + [_delimited(bodies[100:])]
    table = goflow2.decode_payloads(payloads, skips)
    assert skips.total == 0
    assert table.num_rows == n
    for body, row in zip(bodies, _with_integer_times(table).to_pylist(), strict=True):
        m = flow_pb2.FlowMessage()
        m.ParseFromString(body)
        assert row["type"] == (goflow2.FLOW_TYPES[m.type] or None)
        assert row["time_flow_start"] == m.time_flow_start_ns
        assert row["time_received"] == m.time_received_ns
        for name in ("sampler_address", "src_addr", "dst_addr", "next_hop"):
            raw = getattr(m, name)
            assert row[name] == (bytes(10) + b"\xff\xff" + raw if len(raw) == 4 else raw)
        assert row["sampling_rate"] == (m.sampling_rate or None)
        for name in ("bytes", "packets", "src_port", "dst_port", "proto", "sequence_num", "src_mac", "dst_mac",
                     "observation_domain_id", "in_if", "out_if", "src_as", "dst_as", "vlan_id", "etype",
                     "tcp_flags", "ip_tos", "ip_ttl", "icmp_type", "icmp_code"):  # fmt: skip
            assert row[name] == getattr(m, name), name
        assert row["bytes_rev"] == 0


def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    unknown = (
        b"\x99\x06" + bytes(range(8))  # field 99, fixed64
        + b"\x9d\x06" + b"\x80\x81\x82\x83"  # field 99, fixed32 (bytes that look like varint continuations)
        + b"\x9a\x06\x03abc"  # field 99, length-delimited
        + b"\x98\x06\xff\xff\x01"  # field 99, varint
        + b"\xf8\xff\xff\xff\x0f\x01"  # field 2**29 - 1 (a five-byte tag), varint
    )  # fmt: skip
    body = unknown + b"\x50\x07"  # packets = 7 after them
    skips = Skips()
    table = goflow2.decode_payloads([_delimited([body])], skips)
    assert skips.total == 0
    assert table.column("packets").to_pylist() == [7]


def test_round_trip() -> None:
    table = _mixed_rows()
    data, _ = goflow2.encode(table)
    skips = Skips()
    back = goflow2.decode_payloads([data.tobytes()], skips)
    assert skips.total == 0
    for name in ("bytes", "src_addr", "dst_addr", "sampling_rate", "time_flow_start", "src_mac"):
        assert back.column(name).equals(table.column(name)), name
    assert back.column("type").to_pylist() == ["ipfix", "netflow_v5", "netflow_v9", "sflow_v5", None, None,
                                               "ipfix", "ipfix"]  # fmt: skip
    assert back.column("vlan_id").to_pylist()[:2] == [4095, 0]  # proto3: absent is 0


def test_bad_messages_are_counted_by_reason_and_skipped() -> None:
    good = bytes([0x50, 0x05])  # packets = 5
    cases = {
        "truncated varint": bytes([0x50, 0x85]),  # value's last byte missing
        "wrong wire type": bytes([0x52, 0x01, 0x00]),  # packets (varint) sent length-delimited
        "invalid tag (garbage)": bytes([0x57, 0x00]),  # wire type 7
        "length past the end of the message": bytes([0x32, 0x10, 0x01]),  # src_addr of 16 bytes, 1 given
        "address neither 4 nor 16 bytes": bytes([0x32, 0x02, 0x01, 0x02]),
        "value out of range": bytes([0xA8, 0x01, 0x80, 0x80, 0x04]),  # src_port 65536
        "malformed varint (more than 10 bytes)": bytes([0x50]) + b"\xff" * 11 + b"\x01",
    }
    payloads = [_delimited([good, body, good]) for body in cases.values()]
    payloads.append(b"\x05\x50\x01")  # a prefix longer than its payload
    payloads.append(b"\xff\xff")  # a prefix that never ends
    payloads.append(b"")
    skips = Skips()
    table = goflow2.decode_payloads(payloads, skips)
    assert table.num_rows == 2 * len(cases)
    assert pc.all(pc.equal(table.column("packets"), 5)).as_py()
    expected = {reason: 1 for reason in cases}
    expected["length past the end of the message"] += 1
    expected["truncated varint"] += 1
    assert dict(skips.counts) == expected


def test_random_garbage_never_raises() -> None:
    rng = np.random.default_rng(11)
    payloads = [rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes() for _ in range(500)]
    skips = Skips()
    table = goflow2.decode_payloads(payloads, skips)
    assert table.num_rows + skips.total >= 1


def test_goflow_v1_layout_carries_seconds_in_its_own_fields() -> None:
    start_ns = 1_700_000_000_500_000_000
    table = conform(pa.table({"time_flow_start": pa.array([start_ns], pa.timestamp("ns", "UTC")),
                              "observation_domain_id": pa.array([7], pa.uint32())}))  # fmt: skip
    data, _ = goflow2.encode(table, goflow2.GOFLOW_V1)
    assert data.tobytes() == b"\x07" + b"\xb0\x02" + _varint(1_700_000_000)  # TimeFlowStart = 38; no domain
    back = goflow2.decode_payloads([data.tobytes()], Skips(), goflow2.GOFLOW_V1)
    assert back.column("time_flow_start").cast(pa.int64()).to_pylist() == [1_700_000_000 * 10**9]
    assert back.column("observation_domain_id").to_pylist() == [None]  # not in the layout: unknown


def test_a_nine_byte_varint_ignores_the_byte_after_it() -> None:
    """Nanosecond times take nine bytes; the byte after them (the next field's tag) is not a tenth one. Found by
    reading GoFlow2 files whose newline separators had made the bug invisible."""
    from flowscope.kafka.wire import WireBuffer

    value = 1_700_000_000_123_456_789
    for following in (b"\x01", b"\x0b", b"\x7f", b""):
        read = WireBuffer(_varint(value) + following).varints(np.array([0]))
        assert (int(read.value[0]), int(read.length[0]), bool(read.ok[0])) == (value, 9, True)
    ten = WireBuffer(_varint(2**63 + 5) + b"\x01").varints(np.array([0]))
    assert (int(ten.value[0]), int(ten.length[0])) == (2**63 + 5, 10)


def test_a_message_is_judged_by_its_own_bytes() -> None:
    """A tag or value cut by its message's end is a truncated varint whatever bytes follow the message, and
    the messages after it still decode."""
    good = bytes([0x50, 0x05])  # packets = 5
    cut_value = bytes([0x50, 0x85])  # packets' varint continues past the end
    cut_tag = bytes([0x50, 0x05, 0xA8])  # src_port's two-byte tag cut after its first byte
    widest = bytes([0x48]) + b"\xff" * 9 + b"\x01"  # bytes = 2**64 - 1: a ten-byte varint ending the message
    too_wide = bytes([0x48]) + b"\xff" * 9 + b"\x02"  # a tenth byte past bit 63
    skips = Skips()
    table = goflow2.decode_payloads([_delimited([cut_value, good, cut_tag, good, widest, too_wide])], skips)
    assert dict(skips.counts) == {"truncated varint": 2, "malformed varint (more than 10 bytes)": 1}
    assert table.column("packets").to_pylist() == [5, 5, 0]
    assert table.column("bytes").to_pylist() == [0, 0, 2**64 - 1]


def test_encoding_in_steps_matches_encoding_at_once() -> None:
    """Tables longer than one encoding step, in chunks that steps straddle, give the bytes of their rows
    encoded one part at a time, and decode back to the same columns."""
    from datetime import UTC, datetime

    from flowscope.demo.traffic import synthetic_flows

    whole = pa.concat_tables(synthetic_flows(100_000, end=datetime(2024, 5, 1, tzinfo=UTC)))
    parts = [whole.slice(0, 40_000), whole.slice(40_000, 50_000), whole.slice(90_000)]  # a step straddles two
    table = pa.concat_tables(parts)
    assert table.column("bytes").num_chunks > 1 and table.num_rows > goflow2.ENCODE_ROWS
    data, ends = goflow2.encode(table)
    one_by_one = [goflow2.encode(p)[0].tobytes() for p in parts]
    assert data.tobytes() == b"".join(one_by_one)
    assert ends[-1] == data.size and np.all(np.diff(ends) > 0)
    bounds = np.unique(np.concatenate([[0], ends[999::1000], [data.size]])).tolist()
    skips = Skips()
    back = goflow2.decode_payloads([data[a:b].tobytes() for a, b in pairwise(bounds)], skips)
    assert skips.total == 0
    table = conform(table)
    for f in goflow2.FIELDS:
        expected = table.column(f.column)
        if f.kind == "varint" and f.column != "sampling_rate":
            expected = pc.fill_null(expected, 0)  # proto3: absent is 0
        if f.kind != "enum":
            assert back.column(f.column).equals(expected), f.column


def test_mutated_messages_flowscope_keeps_parse_the_same_in_the_runtime(flow_pb2: ModuleType) -> None:
    """Bytes changed, inserted or cut in valid messages: each message flowscope keeps, the official runtime
    parses to the same values (flowscope refuses more: wrong wire types, address sizes, out-of-range values)."""
    data, ends = goflow2.encode(_mixed_rows())
    bodies = _messages(data, ends)
    rng = np.random.default_rng(5)
    names = {f.column: next(c.goflow2.name for c in _catalogue() if c.name == f.column) for f in goflow2.FIELDS}
    kept = 0
    for i in range(1500):
        body = bytearray(bodies[i % len(bodies)])
        for _ in range(int(rng.integers(1, 4))):
            at = int(rng.integers(0, len(body) + 1))
            change = int(rng.integers(0, 3))
            if change == 0 and at < len(body):
                body[at] = int(rng.integers(0, 256))
            elif change == 1:
                body.insert(at, int(rng.integers(0, 256)))
            else:
                del body[at : at + int(rng.integers(1, 4))]
        table = goflow2.decode_payloads([_delimited([bytes(body)])], Skips())
        if table.num_rows == 0:
            continue
        kept += 1
        message = flow_pb2.FlowMessage()
        message.ParseFromString(bytes(body))
        row = _with_integer_times(table).to_pylist()[0]
        for f in goflow2.FIELDS:
            value = getattr(message, names[f.column])
            if f.kind == "address":
                value = (bytes(10) + b"\xff\xff" + value if len(value) == 4 else value) or None
            elif f.kind == "enum":
                value = goflow2.FLOW_TYPES[value] if 0 < value < len(goflow2.FLOW_TYPES) else None
            elif f.kind == "time" or f.column == "sampling_rate":
                value = value or None
            assert row[f.column] == value, (f.column, bytes(body))
    assert kept > 300
