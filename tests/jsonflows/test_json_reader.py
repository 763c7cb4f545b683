"""JSON lines of flows: flowscope's own output reads back as written; GoFlow2's -format=json lines (rendered here
by GoFlow2's rules: producer/proto/render.go) read into the values they stand for; bad lines are counted."""

from __future__ import annotations

import gzip
import ipaddress
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from flowscope.cli import main
from flowscope.demo.traffic import synthetic_flows
from flowscope.errors import FlowscopeError
from flowscope.jsonflows.reader import JsonFlowSource, sniff
from flowscope.readers.text_options import TextOptions
from flowscope.schema import conform
from flowscope.sinks.files import FileSink

ETYPES = {0x800: "IPv4", 0x86DD: "IPv6", 0x806: "ARP"}
PROTOS = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP"}
TYPES = {"sflow_v5": "SFLOW_5", "netflow_v5": "NETFLOW_V5", "netflow_v9": "NETFLOW_V9", "ipfix": "IPFIX"}


def _read(path: Path, **options: object) -> tuple[pa.Table, JsonFlowSource]:
    source = JsonFlowSource([path], TextOptions(**options))  # type: ignore[arg-type]
    batches = [conform(batch, keep_extra=False) for batch in source]
    return pa.concat_tables(batches) if batches else conform(pa.table({}), keep_extra=False), source


def _goflow2_line(flow: dict[str, object]) -> str:
    """One flow as GoFlow2 v2 renders it with -format=json (default fields, renderers and key names)."""

    def ip(value: bytes | None) -> str:
        if value is None:
            return ""
        address = ipaddress.IPv6Address(value)
        return str(address.ipv4_mapped or address)

    def mac(value: int | None) -> str:
        return ":".join(f"{b:02x}" for b in (value or 0).to_bytes(6, "big"))

    def ns(value: object) -> int:
        return 0 if value is None else int(pa.scalar(value, pa.timestamp("ns", "UTC")).value)

    rendered = {
        "type": TYPES.get(str(flow["type"]), "FLOWUNKNOWN"),
        "time_received_ns": ns(flow["time_received"]),
        "sequence_num": flow["sequence_num"] or 0,
        "sampling_rate": flow["sampling_rate"] or 0,
        "sampler_address": ip(flow["sampler_address"]),  # type: ignore[arg-type]
        "time_flow_start_ns": ns(flow["time_flow_start"]),
        "time_flow_end_ns": ns(flow["time_flow_end"]),
        "bytes": flow["bytes"],
        "packets": flow["packets"],
        "src_addr": ip(flow["src_addr"]),  # type: ignore[arg-type]
        "dst_addr": ip(flow["dst_addr"]),  # type: ignore[arg-type]
        "etype": ETYPES.get(flow["etype"], ""),  # type: ignore[arg-type]
        "proto": PROTOS.get(flow["proto"], ""),  # type: ignore[arg-type]
        "src_port": flow["src_port"],
        "dst_port": flow["dst_port"],
        "in_if": flow["in_if"] or 0,
        "out_if": flow["out_if"] or 0,
        "src_mac": mac(flow["src_mac"]),  # type: ignore[arg-type]
        "dst_mac": mac(flow["dst_mac"]),  # type: ignore[arg-type]
        "src_vlan": 0,
        "dst_vlan": 0,
        "vlan_id": flow["vlan_id"] or 0,
        "ip_tos": flow["ip_tos"] or 0,
        "forwarding_status": 0,
        "ip_ttl": flow["ip_ttl"] or 0,
        "ip_flags": 0,
        "tcp_flags": flow["tcp_flags"] or 0,
        "icmp_type": flow["icmp_type"] or 0,
        "icmp_code": flow["icmp_code"] or 0,
        "ipv6_flow_label": 0,
        "fragment_id": 0,
        "fragment_offset": 0,
        "src_as": flow["src_as"] or 0,
        "dst_as": flow["dst_as"] or 0,
        "next_hop": ip(flow["next_hop"]),  # type: ignore[arg-type]
        "next_hop_as": 0,
        "src_net": "0.0.0.0/0",
        "dst_net": "0.0.0.0/0",
        "bgp_next_hop": "",
        "bgp_communities": [],
        "as_path": [],
        "mpls_ttl": [],
        "mpls_label": [],
        "mpls_ip": [],
        "observation_domain_id": flow["observation_domain_id"] or 0,
        "observation_point_id": 0,
        "layer_stack": [],
        "layer_size": [],
        "ipv6_routing_header_addresses": [],
        "ipv6_routing_header_seg_left": 0,
    }
    return json.dumps(rendered, separators=(",", ":"))


@pytest.fixture(scope="module")
def flows() -> pa.Table:
    table = conform(pa.concat_tables(synthetic_flows(3_000, days=0.1, seed=5, batch_rows=3_000)), keep_extra=False)
    kinds = pa.array(["ipfix", "netflow_v5", "netflow_v9", "sflow_v5"] * 750)
    protos = pa.array([6, 17, 47, 58, 1, 132] * 500, pa.uint8())  # 47 (GRE): GoFlow2 has no name for it
    table = table.set_column(table.schema.get_field_index("type"), "type", kinds)
    table = table.set_column(table.schema.get_field_index("proto"), "proto", protos)
    return table


def test_flowscope_jsonl_reads_back_as_written(tmp_path: Path, flows: pa.Table) -> None:
    out = tmp_path / "flows.jsonl"
    sink = FileSink(out)  # what `read -o x.jsonl` and `query -o x.jsonl` write
    sink.write(flows)
    sink.close()
    result = CliRunner().invoke(
        main, ["--lake", str(tmp_path / "lake"), "read", str(out), "-o", str(tmp_path / "back.parquet")]
    )
    assert result.exit_code == 0, result.output
    assert "(jsonl)" in result.output
    back = conform(pq.read_table(tmp_path / "back.parquet"), keep_extra=False)
    assert back.equals(flows)


def test_goflow2_json_lines_read_into_the_values_they_render(tmp_path: Path, flows: pa.Table) -> None:
    path = tmp_path / "goflow2.json"
    path.write_text("".join(_goflow2_line(row) + "\n" for row in flows.to_pylist()))
    assert sniff(path, path.read_bytes()[:4096])
    table, source = _read(path)
    assert source.dialects_seen == {str(path): "goflow2"} and source.skips.total == 0
    assert table.num_rows == flows.num_rows
    same = [
        "type", "time_received", "time_flow_start", "time_flow_end", "src_addr", "dst_addr", "src_port",
        "dst_port", "etype", "bytes", "packets", "src_as", "dst_as",
    ]  # fmt: skip
    for name in same:
        assert table.column(name).equals(flows.column(name)), name
    for name in ("src_mac", "dst_mac"):  # GoFlow2 renders an unknown MAC as 00:00:00:00:00:00
        assert table.column(name).equals(pa.compute.fill_null(flows.column(name), 0)), name
    named = pa.compute.not_equal(flows.column("proto"), 47)
    assert table.filter(named).column("proto").equals(flows.filter(named).column("proto"))
    assert table.filter(pa.compute.invert(named)).column("proto").null_count == 500  # rendered as ""


def test_goflow2_zero_means_unknown_and_numbers_are_taken_too(tmp_path: Path) -> None:
    lines = [
        '{"type":"FLOWUNKNOWN","time_received_ns":0,"sampling_rate":0,"sampler_address":"","src_addr":"10.0.0.1",'
        '"dst_addr":"2001:db8::1","etype":"","proto":"","bytes":10,"packets":1}',
        '{"type":"IPFIX","time_received_ns":1700000000123456789,"sampling_rate":100,"src_addr":"::ffff:10.0.0.2",'
        '"dst_addr":"10.0.0.3","etype":2048,"proto":17,"bytes":20,"packets":2}',  # renderers switched off
    ]
    path = tmp_path / "g.json"
    path.write_text("\n".join(lines))
    table, source = _read(path)
    assert source.skips.total == 0
    rows = table.to_pylist()
    assert [r["type"] for r in rows] == [None, "ipfix"]
    assert [r["sampling_rate"] for r in rows] == [None, 100]
    assert rows[0]["time_received"] is None and rows[0]["sampler_address"] is None
    assert rows[1]["time_received"].value == 1700000000123456789
    assert [r["etype"] for r in rows] == [None, 0x800] and [r["proto"] for r in rows] == [None, 17]


def test_bad_lines_are_counted_and_the_rest_kept(tmp_path: Path) -> None:
    good = '{"src_addr":"10.0.0.%d","dst_addr":"10.0.1.1","bytes":%d,"packets":1}'
    lines = [good % (i, i) for i in range(1, 6)]
    lines[1] = "not json at all"
    lines[3] = "[1, 2, 3]"
    lines.append('{"src_addr":"10.0.0.300","dst_addr":"10.0.1.1","bytes":9,"packets":1}')
    lines.append("")
    path = tmp_path / "mixed.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    table, source = _read(path)
    assert sorted(table.column("bytes").to_pylist()) == [1, 3, 5]
    assert source.skips.counts == {"line is not a JSON object": 2, "unreadable src_addr value": 1}
    with pytest.raises(FlowscopeError, match=r"line 2: line is not a JSON object.*--strict"):
        _read(path, strict=True)


def test_not_flow_json_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "other.jsonl"
    path.write_text('{"name": "x", "value": 1}\n')
    assert not sniff(path, path.read_bytes())
    result = CliRunner().invoke(main, ["--lake", str(tmp_path / "l"), "read", str(path), "--format", "jsonl"])
    assert result.exit_code == 2 and "not JSON lines of flows" in result.output


def test_a_line_that_is_not_utf8_is_a_counted_skip(tmp_path: Path) -> None:
    """pyarrow's JSON parser takes such bytes into strings unchecked (found by fuzz/targets/jsonl.py: a MAC
    with byte 0xeb failed the whole read later)."""
    good = b'{"src_addr":"10.0.0.1","dst_addr":"10.0.0.2","bytes":5,"src_mac":"00:11:22:33:44:55"}\n'
    bad = b'{"src_addr":"10.0.0.1","dst_addr":"10.0.0.2","bytes":6,"src_mac":"00:11:22:\xeb3:44:55"}\n'
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(good + bad + good)
    table, source = _read(path)
    assert table.column("bytes").to_pylist() == [5, 5]
    assert source.skips.counts == {"line is not UTF-8 text": 1}


def test_lines_that_are_no_object_never_reach_the_parser(tmp_path: Path) -> None:
    """pyarrow 26's JSON reader dies with SIGSEGV on a bare ``null`` line (found by fuzz/targets/jsonl.py)."""
    good = '{"src_addr":"10.0.0.1","dst_addr":"10.0.0.2","bytes":%d}'
    path = tmp_path / "nulls.jsonl"
    path.write_text("\n".join([good % 1, "null", '  null,"bytes":3}', "", "nullx", good % 2, " 7"]) + "\n")
    table, source = _read(path)
    assert table.column("bytes").to_pylist() == [1, 2]
    assert source.skips.counts == {"line is not a JSON object": 4}
