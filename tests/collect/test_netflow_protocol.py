"""NetFlow v9 / IPFIX protocol details on hand-built datagrams (RFC 3954, RFC 7011): templates, withdrawal,
holding data for late templates, enterprise and variable-length elements, reduced-size encoding, padding,
timestamps, sampling, persistence and malformed input."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from tests.conftest import shared_data

from flowscope import addresses
from flowscope.collect.datagrams import Datagrams
from flowscope.collect.dispatch import decode_netflow
from flowscope.collect.encoder import IPV4_TEMPLATE, encode, synthetic_columns, template_set
from flowscope.collect.sampling import SamplingConfig
from flowscope.collect.state import NetflowState
from flowscope.errors import FlowscopeError

EXPORTER = "192.0.2.1"
EXPORT_SECS = 1_700_000_000


def batch(*payloads: bytes, exporter: str = EXPORTER) -> Datagrams:
    address = np.frombuffer(addresses.parse_one(exporter), np.uint8)
    return Datagrams(list(payloads), np.tile(address, (len(payloads), 1)), np.full(len(payloads), 7, np.int64))


def ipfix(*sets: bytes, sequence: int = 0, domain: int = 1) -> bytes:
    body = b"".join(sets)
    return struct.pack(">HHIII", 10, 16 + len(body), EXPORT_SECS, sequence, domain) + body


def v9(*sets: bytes, count: int = 0, uptime: int = 50_000, sequence: int = 0, source: int = 1) -> bytes:
    return struct.pack(">HHIIII", 9, count, uptime, EXPORT_SECS, sequence, source) + b"".join(sets)


def set_(set_id: int, body: bytes, pad: int = 0) -> bytes:
    body += bytes(pad)
    return struct.pack(">HH", set_id, 4 + len(body)) + body


def template(template_id: int, *fields: tuple, set_id: int = 2) -> bytes:
    """IPFIX template record(s); a field is (element, length) or (element, length, enterprise)."""
    out = struct.pack(">HH", template_id, len(fields))
    for field in fields:
        element, length, *pen = field
        out += struct.pack(">HH", element | (0x8000 if pen else 0), length) + (
            struct.pack(">I", pen[0]) if pen else b""
        )
    return set_(set_id, out)


def options_template(template_id: int, scopes: list[tuple[int, int]], options: list[tuple[int, int]]) -> bytes:
    fields = scopes + options
    out = struct.pack(">HHH", template_id, len(fields), len(scopes))
    out += b"".join(struct.pack(">HH", e, n) for e, n in fields)
    return set_(3, out)


SIMPLE = ((8, 4), (12, 4), (1, 4), (2, 4))  # src, dst, octets, packets


def simple_record(src: str, dst: str, octets: int, packets: int) -> bytes:
    return addresses.parse_one(src)[12:] + addresses.parse_one(dst)[12:] + struct.pack(">II", octets, packets)


def flows_of(decoded) -> list[tuple]:
    table = decoded.flows
    return [
        (addresses.format_one(r["src_addr"]), addresses.format_one(r["dst_addr"]), r["bytes"], r["packets"])
        for r in table.select(["src_addr", "dst_addr", "bytes", "packets"]).to_pylist()
    ]


def test_several_sets_per_message_and_padding() -> None:
    records = simple_record("10.0.0.1", "10.0.0.2", 100, 1) + simple_record("10.0.0.3", "10.0.0.4", 200, 2)
    message = ipfix(
        template(256, *SIMPLE), set_(256, records, pad=3), set_(256, simple_record("1.1.1.1", "2.2.2.2", 5, 1))
    )
    decoded = decode_netflow(batch(message), NetflowState())
    assert flows_of(decoded) == [
        ("10.0.0.1", "10.0.0.2", 100, 1),
        ("10.0.0.3", "10.0.0.4", 200, 2),
        ("1.1.1.1", "2.2.2.2", 5, 1),
    ]
    assert decoded.messages.column("records").to_pylist() == [3]
    assert decoded.messages.column("status").to_pylist() == ["ok"]


def test_data_before_template_is_held_then_decoded() -> None:
    state = NetflowState()
    data = ipfix(set_(256, simple_record("10.0.0.1", "10.0.0.2", 100, 1)))
    first = decode_netflow(batch(data), state)
    assert first.flows.num_rows == 0 and state.templates.held_sets == 1
    second = decode_netflow(batch(ipfix(template(256, *SIMPLE))), state)
    assert flows_of(second) == [("10.0.0.1", "10.0.0.2", 100, 1)]
    assert state.templates.held_sets == 0


def test_hold_buffer_is_bounded_and_counts_evictions() -> None:
    state = NetflowState()
    state.templates.hold_bytes = 100
    data = [ipfix(set_(256 + i, simple_record("10.0.0.1", "10.0.0.2", 1, 1) * 4)) for i in range(5)]
    decoded = decode_netflow(batch(*data), state)
    dropped = [reason for reason in decoded.skips.counts if "hold buffer" in reason]
    assert dropped and decoded.skips.counts[dropped[0]] == 4
    assert state.templates.held_sets == 1


def test_templates_are_scoped_per_exporter_and_domain() -> None:
    state = NetflowState()
    decode_netflow(batch(ipfix(template(256, *SIMPLE), domain=1)), state)
    data = set_(256, simple_record("10.0.0.1", "10.0.0.2", 1, 1))
    other_domain = decode_netflow(batch(ipfix(data, domain=2)), state)
    other_exporter = decode_netflow(batch(ipfix(data, domain=1), exporter="192.0.2.2"), state)
    same = decode_netflow(batch(ipfix(data, domain=1)), state)
    assert (other_domain.flows.num_rows, other_exporter.flows.num_rows, same.flows.num_rows) == (0, 0, 1)
    assert same.flows.column("observation_domain_id").to_pylist() == [1]
    assert addresses.format_text(same.flows.column("sampler_address")).to_pylist() == [EXPORTER]


def test_template_withdrawal_single_and_all() -> None:
    state = NetflowState()
    decode_netflow(batch(ipfix(template(256, *SIMPLE), template(257, *SIMPLE))), state)
    assert len(state.templates.templates) == 2
    decode_netflow(batch(ipfix(set_(2, struct.pack(">HH", 256, 0)))), state)  # withdraw 256
    assert [k[3] for k in state.templates.templates] == [257]
    decode_netflow(batch(ipfix(set_(2, struct.pack(">HH", 2, 0)))), state)  # withdraw all data templates
    assert state.templates.templates == {}


def test_template_redefinition_applies_to_later_data() -> None:
    state = NetflowState()
    record = simple_record("10.0.0.1", "10.0.0.2", 100, 1)
    swapped = ((12, 4), (8, 4), (1, 4), (2, 4))
    decoded = decode_netflow(
        batch(
            ipfix(template(256, *SIMPLE), set_(256, record)),
            ipfix(template(256, *swapped), set_(256, record)),
        ),
        state,
    )
    assert sorted(flows_of(decoded)) == [("10.0.0.1", "10.0.0.2", 100, 1), ("10.0.0.2", "10.0.0.1", 100, 1)]


def test_enterprise_elements_are_skipped_by_length() -> None:
    fields = ((8, 4), (1000, 3, 9), (12, 4), (1, 4), (2, 4))
    record = (
        addresses.parse_one("10.0.0.1")[12:] + b"xyz" + addresses.parse_one("10.0.0.2")[12:] + struct.pack(">II", 9, 3)
    )
    decoded = decode_netflow(batch(ipfix(template(300, *fields), set_(300, record))), NetflowState())
    assert flows_of(decoded) == [("10.0.0.1", "10.0.0.2", 9, 3)]


def test_variable_length_elements() -> None:
    # applicationName (96) as variable length, short form and long form (255 + 2-byte length)
    fields = ((8, 4), (96, 0xFFFF), (12, 4), (1, 4), (2, 4))

    def record(src: str, name: bytes, dst: str) -> bytes:
        prefix = bytes([len(name)]) if len(name) < 255 else b"\xff" + struct.pack(">H", len(name))
        return addresses.parse_one(src)[12:] + prefix + name + addresses.parse_one(dst)[12:] + struct.pack(">II", 7, 1)

    body = (
        record("10.0.0.1", b"http", "10.0.0.2")
        + record("10.0.0.3", b"x" * 300, "10.0.0.4")
        + record("10.0.0.5", b"", "10.0.0.6")
    )
    decoded = decode_netflow(batch(ipfix(template(256, *fields), set_(256, body))), NetflowState())
    assert [f[:2] for f in flows_of(decoded)] == [
        ("10.0.0.1", "10.0.0.2"),
        ("10.0.0.3", "10.0.0.4"),
        ("10.0.0.5", "10.0.0.6"),
    ]


def test_netflow_v9_variable_length_fields() -> None:
    """H3C NetStream sends NetFlow v9 templates with length 0xFFFF fields and IPFIX's variable-length
    encoding in the records (1-byte length, or 255 and a 2-byte length), as nfcapd and Wireshark read it."""
    fields = ((8, 4), (82, 0xFFFF), (12, 4), (1, 4), (2, 4))  # interfaceName, variable length
    v9_template = set_(0, struct.pack(">HH", 300, len(fields)) + b"".join(struct.pack(">HH", *f) for f in fields))

    def record(src: str, name: bytes, dst: str, octets: int) -> bytes:
        prefix = bytes([len(name)]) if len(name) < 255 else b"\xff" + struct.pack(">H", len(name))
        return simple_record(src, dst, octets, 1)[:4] + prefix + name + simple_record(src, dst, octets, 1)[4:]

    body = record("10.0.0.1", b"GE1/0/1", "10.0.0.2", 100) + record("10.0.0.3", b"x" * 300, "10.0.0.4", 200)
    state = NetflowState()
    decoded = decode_netflow(batch(v9(v9_template, set_(300, body, pad=2), count=3)), state)
    assert flows_of(decoded) == [("10.0.0.1", "10.0.0.2", 100, 1), ("10.0.0.3", "10.0.0.4", 200, 1)]
    assert not decoded.skips.counts and decoded.messages.column("status").to_pylist() == ["ok"]
    assert state.templates.table().column("fields").to_pylist() == ["8/4 82/* 12/4 1/4 2/4"]


def test_variable_length_overrun_is_counted() -> None:
    fields = ((8, 4), (96, 0xFFFF))
    body = addresses.parse_one("10.0.0.1")[12:] + b"\x02ab" + addresses.parse_one("10.0.0.2")[12:] + b"\x09abc"
    decoded = decode_netflow(batch(ipfix(template(256, *fields), set_(256, body))), NetflowState())
    assert decoded.flows.num_rows == 1
    assert any("overrunning" in reason for reason in decoded.skips.counts)


# SRv6 exporters (Cisco, Huawei) describe the outer IPv6 header, then the carried IPv4 5-tuple
OUTER_V6 = ((27, 16), (28, 16), (4, 1), (7, 2), (11, 2), (5, 1))
INNER_V4 = ((8, 4), (12, 4), (4, 1), (7, 2), (11, 2), (5, 1))


def header_fields(src: str, dst: str, proto: int, sport: int, dport: int, tos: int) -> bytes:
    raw = addresses.parse_one(src), addresses.parse_one(dst)
    if src.count(".") == 3:
        raw = raw[0][12:], raw[1][12:]
    return raw[0] + raw[1] + struct.pack(">BHHB", proto, sport, dport, tos)


def key_columns(decoded) -> list[tuple]:
    names = ["src_addr", "dst_addr", "proto", "src_port", "dst_port", "ip_tos", "etype", "bytes"]
    return [
        (addresses.format_one(r["src_addr"]), addresses.format_one(r["dst_addr"]), *list(r.values())[2:])
        for r in decoded.flows.select(names).to_pylist()
    ]


def test_templates_with_outer_and_inner_headers_key_flows_by_one_of_them() -> None:
    """Every key column comes from the same header: the outer one by default, the inner one with
    ``tunnels="inner"`` (never the inner addresses with the outer protocol, ports and ToS)."""
    fields = (*OUTER_V6, *INNER_V4, (1, 4), (2, 4))
    outer = header_fields("2001:db8::1", "2001:db8::2", 4, 0, 0, 0xB8)
    records = outer + header_fields("10.0.0.1", "10.0.0.2", 6, 40000, 443, 0) + struct.pack(">II", 100, 1)
    records += outer + header_fields("10.0.0.3", "10.0.0.4", 17, 5353, 53, 0x10) + struct.pack(">II", 200, 2)
    message = ipfix(template(256, *fields), set_(256, records))
    assert key_columns(decode_netflow(batch(message), NetflowState())) == [
        ("2001:db8::1", "2001:db8::2", 4, 0, 0, 0xB8, 0x86DD, 100),
        ("2001:db8::1", "2001:db8::2", 4, 0, 0, 0xB8, 0x86DD, 200),
    ]
    assert key_columns(decode_netflow(batch(message), NetflowState(tunnels="inner"))) == [
        ("10.0.0.1", "10.0.0.2", 6, 40000, 443, 0, 0x0800, 100),
        ("10.0.0.3", "10.0.0.4", 17, 5353, 53, 0x10, 0x0800, 200),
    ]


def test_a_header_element_the_chosen_header_lacks_stays_null() -> None:
    """The outer header here has addresses and a protocol, no ports: its flows get no ports (null), not the
    inner header's."""
    fields = ((27, 16), (28, 16), (4, 1), *INNER_V4[:5], (1, 4), (2, 4))
    record = header_fields("2001:db8::1", "2001:db8::2", 4, 0, 0, 0)[:33]
    record += header_fields("10.0.0.1", "10.0.0.2", 17, 1000, 53, 0)[:13] + struct.pack(">II", 60, 1)
    message = ipfix(template(256, *fields), set_(256, record))
    assert key_columns(decode_netflow(batch(message), NetflowState())) == [
        ("2001:db8::1", "2001:db8::2", 4, None, None, None, 0x86DD, 60)
    ]
    assert key_columns(decode_netflow(batch(message), NetflowState(tunnels="inner"))) == [
        ("10.0.0.1", "10.0.0.2", 17, 1000, 53, None, 0x0800, 60)
    ]


def test_a_template_with_both_address_families_is_one_header() -> None:
    """IPv4 and IPv6 address elements without any repeated element: one header, each record using the
    family it fills (the other is zero)."""
    fields = ((8, 4), (12, 4), (27, 16), (28, 16), (4, 1), (1, 4), (2, 4))
    v4 = header_fields("10.0.0.1", "10.0.0.2", 6, 0, 0, 0)[:8] + bytes(32) + struct.pack(">BII", 6, 10, 1)
    v6 = bytes(8) + header_fields("2001:db8::1", "2001:db8::2", 17, 0, 0, 0)[:32] + struct.pack(">BII", 17, 20, 1)
    message = ipfix(template(256, *fields), set_(256, v4 + v6))
    for tunnels in ("outer", "inner"):
        decoded = decode_netflow(batch(message), NetflowState(tunnels=tunnels))
        assert [row[:3] + row[6:] for row in key_columns(decoded)] == [
            ("10.0.0.1", "10.0.0.2", 6, 0x0800, 10),
            ("2001:db8::1", "2001:db8::2", 17, 0x86DD, 20),
        ]


def test_reduced_size_encoding() -> None:
    # octetDeltaCount in 3 bytes, packetDeltaCount in 1, ports in their natural 2
    fields = ((8, 4), (12, 4), (1, 3), (2, 1), (7, 2), (11, 2))
    record = (
        simple_record("10.0.0.1", "10.0.0.2", 0, 0)[:8]
        + (70000).to_bytes(3, "big")
        + b"\x05"
        + struct.pack(">HH", 1, 2)
    )
    decoded = decode_netflow(batch(ipfix(template(256, *fields), set_(256, record))), NetflowState())
    assert flows_of(decoded) == [("10.0.0.1", "10.0.0.2", 70000, 5)]


def test_absolute_and_relative_timestamps() -> None:
    ms = 1_699_999_990_123
    fields = ((8, 4), (12, 4), (152, 8), (153, 8))
    record = simple_record("10.0.0.1", "10.0.0.2", 0, 0)[:8] + struct.pack(">QQ", ms, ms + 500)
    decoded = decode_netflow(batch(ipfix(template(256, *fields), set_(256, record))), NetflowState())
    assert decoded.flows.column("time_flow_start").cast(pa.int64()).to_pylist() == [ms * 10**6]
    assert decoded.flows.column("time_flow_end").cast(pa.int64()).to_pylist() == [(ms + 500) * 10**6]
    # NetFlow v9: FIRST/LAST_SWITCHED are sysUptime milliseconds; here 2 s and 1 s before export, and one
    # taken just before sysUptime wrapped around 2^32
    v9_template = set_(0, struct.pack(">HH", 256, 2) + struct.pack(">HHHH", 22, 4, 21, 4))
    times = struct.pack(">II", 48_000, 49_000)
    wrapped = struct.pack(">II", 2**32 - 1000, 2**32 - 1000)
    decoded = decode_netflow(batch(v9(v9_template, set_(256, times + wrapped), uptime=50_000)), NetflowState())
    starts = decoded.flows.column("time_flow_start").cast(pa.int64()).to_pylist()
    ends = decoded.flows.column("time_flow_end").cast(pa.int64()).to_pylist()
    export_ns = EXPORT_SECS * 10**9
    assert starts == [export_ns - 2_000 * 10**6, export_ns - 51_000 * 10**6]
    assert ends == [export_ns - 1_000 * 10**6, export_ns - 51_000 * 10**6]


def test_delta_and_ntp_timestamps() -> None:
    fields = ((8, 4), (158, 4), (157, 8))  # flowStartDeltaMicroseconds, flowEndNanoseconds
    ntp_seconds = EXPORT_SECS + 2_208_988_800
    record = (
        addresses.parse_one("10.0.0.1")[12:] + struct.pack(">I", 1_500_000) + struct.pack(">II", ntp_seconds, 1 << 31)
    )
    decoded = decode_netflow(batch(ipfix(template(256, *fields), set_(256, record))), NetflowState())
    assert decoded.flows.column("time_flow_start").cast(pa.int64()).to_pylist() == [(EXPORT_SECS - 1.5) * 10**9]
    assert decoded.flows.column("time_flow_end").cast(pa.int64()).to_pylist() == [EXPORT_SECS * 10**9 + 500_000_000]


def test_v5_header_sampling_interval_low_14_bits() -> None:
    header = struct.pack(">HHIIIIBBH", 5, 1, 10_000, EXPORT_SECS, 0, 42, 1, 2, (1 << 14) | 100)  # mode 1, 1:100
    record = simple_record("10.0.0.1", "10.0.0.2", 0, 0)[:8] + bytes(40)
    state = NetflowState()
    decoded = decode_netflow(batch(header + record), state)
    assert decoded.flows.column("sampling_rate").to_pylist() == [100]
    assert decoded.messages.to_pylist()[0]["domain"] == 0x0102
    assert state.sampling.applied == {(addresses.parse_one(EXPORTER), "record", 100): 1}


def test_sampling_from_options_per_sampler_id() -> None:
    state = NetflowState()
    options = options_template(400, [(302, 4)], [(305, 4), (306, 4)])  # selectorId; packet interval/space
    option_data = set_(400, struct.pack(">III", 1, 1, 99) + struct.pack(">III", 2, 1, 9))
    data_template = template(256, *SIMPLE, (302, 4))
    records = simple_record("10.0.0.1", "10.0.0.2", 1, 1) + struct.pack(">I", 1)
    records += simple_record("10.0.0.3", "10.0.0.4", 1, 1) + struct.pack(">I", 2)
    records += simple_record("10.0.0.5", "10.0.0.6", 1, 1) + struct.pack(">I", 3)  # unknown sampler
    decoded = decode_netflow(batch(ipfix(options, option_data, data_template, set_(256, records))), state)
    assert decoded.flows.column("sampling_rate").to_pylist() == [100, 10, None]
    exporter = addresses.parse_one(EXPORTER)
    assert state.sampling.applied == {
        (exporter, "options", 100): 1,
        (exporter, "options", 10): 1,
        (exporter, "unknown", 0): 1,
    }


def test_sampling_rate_in_the_flow_record_and_config_override() -> None:
    fields = (*SIMPLE, (34, 4))
    record = simple_record("10.0.0.1", "10.0.0.2", 1, 1) + struct.pack(">I", 64)
    message = ipfix(template(256, *fields), set_(256, record))
    assert decode_netflow(batch(message), NetflowState()).flows.column("sampling_rate").to_pylist() == [64]
    config = SamplingConfig.from_mapping({"exporters": {EXPORTER: {"override": 512}}})
    state = NetflowState.open(None, config)
    overridden = decode_netflow(batch(message), state)
    assert overridden.flows.column("sampling_rate").to_pylist() == [512]
    assert state.sampling.applied == {(addresses.parse_one(EXPORTER), "override", 512): 1}


def test_sampling_config_defaults(tmp_path: Path) -> None:
    path = tmp_path / "sampling.toml"
    path.write_text(f'[sampling]\ndefault = 1\n[sampling.exporters."{EXPORTER}"]\ndefault = 1000\n')
    config = SamplingConfig.load(path)
    message = ipfix(template(256, *SIMPLE), set_(256, simple_record("10.0.0.1", "10.0.0.2", 1, 1)))
    state = NetflowState.open(None, config)
    assert decode_netflow(batch(message), state).flows.column("sampling_rate").to_pylist() == [1000]
    other = decode_netflow(batch(message, exporter="192.0.2.99"), state)
    assert other.flows.column("sampling_rate").to_pylist() == [1]
    assert state.sampling.applied == {
        (addresses.parse_one(EXPORTER), "default", 1000): 1,
        (addresses.parse_one("192.0.2.99"), "default", 1): 1,
    }
    unknown = decode_netflow(batch(message), NetflowState())
    assert unknown.flows.column("sampling_rate").to_pylist() == [None]


@pytest.mark.parametrize(
    "text",
    [
        "[sampling]\ndefault = 0\n",
        '[sampling.exporters."nope"]\ndefault = 2\n',
        '[sampling.exporters."10.0.0.1"]\nrate = 2\n',
    ],
)
def test_bad_sampling_config_is_a_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "sampling.toml"
    path.write_text(text)
    with pytest.raises(FlowscopeError):
        SamplingConfig.load(path)


def test_templates_and_rates_persist_across_restarts(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    state = NetflowState.open(lake)
    options = options_template(400, [(10, 4)], [(34, 4)])
    decode_netflow(batch(ipfix(options, set_(400, struct.pack(">II", 3, 250)), template(256, *SIMPLE))), state)
    assert (lake / "_collector" / "templates.json").exists()
    restarted = NetflowState.open(lake)
    decoded = decode_netflow(batch(ipfix(set_(256, simple_record("10.0.0.1", "10.0.0.2", 1, 1)))), restarted)
    assert flows_of(decoded) == [("10.0.0.1", "10.0.0.2", 1, 1)]
    assert decoded.flows.column("sampling_rate").to_pylist() == [250]
    assert restarted.templates.table().column("template_id").to_pylist() == [256, 400]


def test_corrupt_state_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "_collector" / "templates.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(FlowscopeError, match="unreadable collector state"):
        NetflowState.open(tmp_path)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "datagram too short"),
        (b"\x00\x07" + bytes(30), "unknown NetFlow version 7"),
        (struct.pack(">HH", 9, 1) + bytes(4), "truncated NetFlow v9 header"),
        (struct.pack(">HH", 10, 1) + bytes(4), "truncated IPFIX header"),
        (struct.pack(">HHIII", 10, 500, 0, 0, 0), "IPFIX length field"),
        (ipfix(struct.pack(">HH", 256, 400)), "set length exceeds"),
        (ipfix(set_(2, struct.pack(">HH", 12, 1) + struct.pack(">HH", 8, 4))), "template id below 256"),
        (ipfix(set_(2, struct.pack(">HH", 256, 3) + struct.pack(">HH", 8, 4))), "template runs past"),
        (ipfix(set_(5, b"abcd")), "reserved set id 5"),
        (struct.pack(">HHIIIIBBH", 5, 30, 0, 0, 0, 0, 0, 0, 0) + bytes(48), "record count exceeds"),
        (ipfix(set_(2, struct.pack(">HH", 256, 1) + struct.pack(">HH", 8, 0))), "zero-length records"),
    ],
)
def test_malformed_datagrams_are_counted_by_reason(payload: bytes, reason: str) -> None:
    good = ipfix(template(256, *SIMPLE), set_(256, simple_record("10.0.0.1", "10.0.0.2", 1, 1)))
    decoded = decode_netflow(batch(payload, good), NetflowState())
    assert decoded.flows.num_rows == 1  # the good datagram of the same batch still decodes
    assert any(reason in r for r in decoded.skips.counts), decoded.skips.counts
    statuses = decoded.messages.column("status").to_pylist()
    assert "ok" in statuses and any(reason in s for s in statuses)


def test_truncated_datagrams_never_raise() -> None:
    """Every prefix of real-looking v5/v9/IPFIX datagrams decodes or is counted, never a traceback."""
    columns = synthetic_columns(30)
    payloads = encode(9, IPV4_TEMPLATE, columns) + encode(10, IPV4_TEMPLATE, columns)
    payloads.append(struct.pack(">HHIIIIBBH", 5, 1, 0, 0, 0, 0, 0, 0, 0) + bytes(48))
    for payload in payloads:
        cut = [payload[:n] for n in range(0, len(payload), 7)]
        decoded = decode_netflow(batch(*cut), NetflowState())
        assert decoded.messages.num_rows == len(cut)


def test_encoded_stream_round_trips() -> None:
    n = 1000
    columns = synthetic_columns(n)
    for version in (9, 10):
        decoded = decode_netflow(batch(*encode(version, IPV4_TEMPLATE, columns)), NetflowState())
        flows = decoded.flows
        assert flows.num_rows == n
        assert flows.column("bytes").to_pylist() == columns[1].tolist()
        assert flows.column("dst_port").to_pylist() == columns[11].tolist()
        assert flows.column("time_flow_start").cast(pa.int64()).to_pylist() == (columns[152] * 10**6).tolist()
        src = np.asarray(columns[8], np.uint32).astype(">u4").view(np.uint8).reshape(-1, 4)
        assert addresses.to_matrix(flows.column("src_addr"))[:, 12:].tolist() == src.tolist()


def test_v9_options_template_scope_is_not_an_element() -> None:
    """v9 scope type 1 (System) must not be read as element 1 (bytes)."""
    options = set_(1, struct.pack(">HHH", 300, 4, 8) + struct.pack(">HHHHHH", 1, 4, 34, 4, 35, 1), pad=2)
    data = set_(300, struct.pack(">IIB", 7, 100, 2), pad=3)
    state = NetflowState()
    decode_netflow(batch(v9(options, data)), state)
    domain = (addresses.parse_one(EXPORTER), 9, 1)
    assert state.sampling.rates == {(domain, None): 100}


def test_template_set_helper_is_what_the_decoder_reads() -> None:
    state = NetflowState()
    decode_netflow(batch(ipfix(template_set(10, 256, SIMPLE))), state)
    assert state.templates.table().column("fields").to_pylist() == ["8/4 12/4 1/4 2/4"]


def test_workers_sharing_the_state_file_keep_each_others_templates(tmp_path: Path) -> None:
    first, second = NetflowState.open(tmp_path), NetflowState.open(tmp_path)
    decode_netflow(batch(ipfix(template(256, *SIMPLE))), first)
    decode_netflow(batch(ipfix(template(300, *SIMPLE)), exporter="192.0.2.2"), second)
    decode_netflow(batch(ipfix(set_(2, struct.pack(">HH", 256, 0)), template(257, *SIMPLE))), first)
    restarted = NetflowState.open(tmp_path)
    saved = {(addresses.format_one(k[0]), k[3]) for k in restarted.templates.templates}
    assert saved == {(EXPORTER, 257), ("192.0.2.2", 300)}


def test_template_changes_within_one_batch_apply_from_where_they_happen() -> None:
    """Data-only datagrams take the vectorised path with templates looked up before the batch; a
    redefinition or withdrawal earlier in the same batch must still govern the datagrams after it."""
    state = NetflowState()
    decode_netflow(batch(ipfix(template(256, *SIMPLE))), state)
    record = simple_record("10.0.0.1", "10.0.0.2", 100, 1)
    swapped = ((12, 4), (8, 4), (1, 4), (2, 4))
    data = ipfix(set_(256, record))
    decoded = decode_netflow(
        batch(data, ipfix(template(256, *swapped)), data, ipfix(set_(2, struct.pack(">HH", 256, 0))), data),
        state,
    )
    assert flows_of(decoded) == [("10.0.0.1", "10.0.0.2", 100, 1), ("10.0.0.2", "10.0.0.1", 100, 1)]
    assert state.templates.held_sets == 1  # the data after the withdrawal waits for a new template
    assert decoded.messages.column("records").to_pylist() == [1, 0, 1, 0, 0]
    released = decode_netflow(batch(ipfix(template(256, *SIMPLE))), state)
    assert flows_of(released) == [("10.0.0.1", "10.0.0.2", 100, 1)]


def test_messages_keep_datagram_order_whatever_path_decodes_them() -> None:
    state = NetflowState()
    decode_netflow(batch(ipfix(template(256, *SIMPLE))), state)
    data = [ipfix(set_(256, simple_record("10.0.0.1", "10.0.0.2", i, 1)), sequence=i) for i in range(4)]
    odd = ipfix(template(257, *SIMPLE), set_(256, simple_record("10.0.0.1", "10.0.0.2", 9, 1)), sequence=99)
    decoded = decode_netflow(batch(data[0], odd, data[1], b"junk", data[2], data[3]), state)
    assert decoded.messages.column("sequence").to_pylist() == [0, 99, 1, 0, 2, 3]
    assert decoded.messages.column("records").to_pylist() == [1, 1, 1, 0, 1, 1]
    assert sorted(decoded.flows.column("bytes").to_pylist()) == [0, 1, 2, 3, 9]


def test_mutated_datagrams_never_raise() -> None:
    """Byte flips and cuts of real v5/v9/IPFIX exports (templates, options, variable-length data) decode or
    are counted: never an exception, always one message row per datagram."""
    rng = np.random.default_rng(7)
    seeds = [p.read_bytes() for p in sorted(shared_data("raw", "python-netflow").glob("*.bin"))]
    seeds += encode(9, IPV4_TEMPLATE, synthetic_columns(50))[:2] + encode(10, IPV4_TEMPLATE, synthetic_columns(50))[:2]
    fields = ((8, 4), (96, 0xFFFF), (1000, 2, 9), (1, 3))
    seeds.append(ipfix(template(256, *fields), set_(256, b"\x0a\x00\x00\x01\x03abc\x00\x01\x00\x00\x05")))
    state = NetflowState()
    for round_ in range(100):
        batch_payloads = []
        for seed in seeds:
            data = bytearray(seed)
            for _ in range(int(rng.integers(1, 4))):
                data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
            if round_ % 3 == 0:
                data = data[: int(rng.integers(0, len(data) + 1))]
            batch_payloads.append(bytes(data))
        decoded = decode_netflow(batch(*batch_payloads), state)
        assert decoded.messages.num_rows == len(batch_payloads)


def test_templates_beyond_the_store_bound_are_refused_and_counted() -> None:
    """Exporters are UDP senders anyone can spoof: a flood of new templates (here in new observation domains)
    stops at the store's bound, counted; known templates still decode and may still be redefined."""
    state = NetflowState()
    state.templates.max_templates = 3
    floods = [ipfix(template(256 + i, *SIMPLE), domain=i) for i in range(5)]
    decoded = decode_netflow(batch(*floods), state)
    assert len(state.templates.templates) == 3
    assert decoded.skips.counts["templates refused: 3 known already"] == 2
    data = ipfix(set_(256, simple_record("10.0.0.1", "10.0.0.2", 100, 1)), domain=0)
    refused = ipfix(set_(260, simple_record("10.0.0.3", "10.0.0.4", 300, 3)), domain=4)
    again = decode_netflow(batch(ipfix(template(256, *SIMPLE[:2], (1, 4), (2, 4)), domain=0), data, refused), state)
    assert flows_of(again) == [("10.0.0.1", "10.0.0.2", 100, 1)]  # the refused template's data is held, not guessed
    assert "templates refused: 3 known already" not in again.skips.counts
