"""Packet records against tshark, field by field, on the shared third-party captures.

Oracle: ``tshark -T fields`` with IP reassembly off (a later fragment then shows no transport header, as in our
rows), first occurrence of each field (the outermost header: ``packet_tables`` reads outer headers by default).
"""

from __future__ import annotations

import ipaddress
import subprocess
from decimal import Decimal

import pyarrow as pa
import pytest
from tests.conftest import require_tool, shared_data

from flowscope.capture.packet_records import packet_tables
from flowscope.diagnostics import Skips

CAPTURES = [
    "nfstream/http_ipv6.pcap",  # IPv6, TCP
    "nfstream/google_ssl.pcap",  # IPv4, TCP
    "nfstream/dns_fragmented.pcap",  # IPv4 and IPv6 fragments
    "nfstream/ip_fragmented_garbage.pcap",
    "tcpdump/802.1ad_QinQ.pcap",  # stacked VLAN tags
    "akvorado-encap/vlan-ipv6.pcap",  # VLAN, IPv6, GRE (outer headers compared)
    "tcpdump/tcp-handshake-nano.pcap",  # nanosecond timestamps
    "tcpdump/tcp_rst_data-trunc.pcap",  # cut packets
    "dpkt/truncated_dns.pcap",
    "dpkt/dns_icmp.pcap",  # ICMP errors quoting a UDP header
]
FIELDS = [
    "frame.time_epoch",
    "frame.len",
    "frame.protocols",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "ip.len",
    "ipv6.plen",
    "ip.ttl",
    "ipv6.hlim",
    "ip.dsfield",
    "ipv6.tclass",
    "ip.proto",
    "ipv6.nxt",
    "ipv6.fraghdr.nxt",
    "ip.id",
    "ip.flags.mf",
    "ip.frag_offset",
    "ipv6.fraghdr.offset",
    "ipv6.fraghdr.more",
    "ipv6.fraghdr.ident",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.flags",
    "vlan.id",
]
IPV6_EXTENSIONS = {"0", "43", "60"}  # hop-by-hop, routing, destination options: the transport is further on


def _tshark_rows(name: str) -> list[dict[str, str]]:
    tshark = require_tool("tshark")
    path = shared_data("pcap", name)
    command = [tshark, "-r", str(path), "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE", "-Y", "ip or ipv6"]
    command += ["-T", "fields", "-E", "separator=|", "-E", "occurrence=f"]
    command += [arg for field in FIELDS for arg in ("-e", field)]
    lines = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout.splitlines()
    return [dict(zip(FIELDS, line.split("|"), strict=True)) for line in lines]


def _ours(name: str) -> list[dict[str, object]]:
    tables = list(packet_tables([shared_data("pcap", name)], skips=Skips()))
    if not tables:
        return []
    table = pa.concat_tables(tables)
    nanos = table.column("time").cast(pa.int64())  # to_pylist would give datetimes, which stop at microseconds
    return table.set_column(0, "time", nanos).to_pylist()


def _address(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw[12:] if raw[:12] == bytes(10) + b"\xff\xff" else raw))


def _number(text: str) -> int:
    return int(text, 0)


def _expected_header(t: dict[str, str]) -> dict[str, object]:
    """Network-layer fields of tshark's outermost IP header, in our columns."""
    layers = t["frame.protocols"].split(":")
    if next(layer for layer in layers if layer in ("ip", "ipv6")) == "ip":
        return {
            "ip_version": 4,
            "src_addr": t["ip.src"],
            "dst_addr": t["ip.dst"],
            "ip_len": _number(t["ip.len"]),
            "ip_ttl": _number(t["ip.ttl"]),
            "ip_tos": _number(t["ip.dsfield"]),
            "proto": _number(t["ip.proto"]),
            "frag_id": _number(t["ip.id"]),
            "more_fragments": t["ip.flags.mf"] in ("1", "True"),
            "frag_offset": _number(t["ip.frag_offset"]),
        }
    fragment = bool(t["ipv6.fraghdr.ident"])
    expected: dict[str, object] = {
        "ip_version": 6,
        "src_addr": str(ipaddress.ip_address(t["ipv6.src"])),
        "dst_addr": str(ipaddress.ip_address(t["ipv6.dst"])),
        "ip_len": _number(t["ipv6.plen"]) + 40,
        "ip_ttl": _number(t["ipv6.hlim"]),
        "ip_tos": _number(t["ipv6.tclass"]),
        "frag_id": _number(t["ipv6.fraghdr.ident"]) if fragment else 0,
        "more_fragments": t["ipv6.fraghdr.more"] in ("1", "True") if fragment else False,
        "frag_offset": _number(t["ipv6.fraghdr.offset"]) if fragment else 0,
    }
    if fragment:
        expected["proto"] = _number(t["ipv6.fraghdr.nxt"])
    elif t["ipv6.nxt"] not in IPV6_EXTENSIONS:
        expected["proto"] = _number(t["ipv6.nxt"])
    return expected


def _compare(row: dict[str, object], t: dict[str, str], frame: str) -> tuple[int, int]:
    """Asserts one row equals tshark's packet; returns (transport headers, TCP headers) compared."""
    assert (row["time"], row["wire_len"]) == (int(Decimal(t["frame.time_epoch"]) * 10**9), int(t["frame.len"])), frame
    got = {**row, "src_addr": _address(row["src_addr"]), "dst_addr": _address(row["dst_addr"])}  # type: ignore[arg-type]
    expected = _expected_header(t)
    assert {k: got[k] for k in expected} == expected, frame
    vlan = _number(t["vlan.id"]) if t["vlan.id"] else 0
    assert row["vlan_id"] == vlan, frame
    proto, later = row["proto"], row["frag_offset"] != 0
    transport = {6: "tcp", 17: "udp"}.get(proto)  # type: ignore[arg-type]
    if transport is None or later:
        assert row["src_port"] is None and row["tcp_seq"] is None, frame
        return 0, 0
    if not t[f"{transport}.srcport"]:  # tshark found no header: cut before the ports
        assert row["src_port"] is None, frame
        return 0, 0
    assert (row["src_port"], row["dst_port"]) == (int(t[f"{transport}.srcport"]), int(t[f"{transport}.dstport"]))
    if transport != "tcp":
        return 1, 0
    if row["tcp_seq"] is None:  # header not captured whole: nothing read from it
        assert row["tcp_flags"] is None and row["tcp_ack"] is None, frame
        return 1, 0
    tcp = (row["tcp_seq"], row["tcp_ack"], row["tcp_flags"])
    assert tcp == (int(t["tcp.seq_raw"]), int(t["tcp.ack_raw"]), _number(t["tcp.flags"]) & 0xFF), frame
    return 1, 1


@pytest.mark.integration
@pytest.mark.parametrize("name", CAPTURES)
def test_packet_records_match_tshark(name: str) -> None:
    expected = _tshark_rows(name)
    ours = _ours(name)
    assert len(ours) == len(expected)
    for index, (row, t) in enumerate(zip(ours, expected, strict=True)):
        _compare(row, t, f"{name} IP packet {index + 1}: {t['frame.protocols']}")


@pytest.mark.integration
def test_the_captures_cover_what_pcapstream_stored() -> None:
    """Between them the captures hold TCP headers, fragments of both families, VLANs and cut headers."""
    ours = [row for name in CAPTURES for row in _ours(name)]
    assert any(r["tcp_seq"] is not None for r in ours)
    assert any(r["more_fragments"] and r["ip_version"] == 4 for r in ours)
    assert any(r["frag_offset"] and r["ip_version"] == 6 for r in ours)
    assert any(r["vlan_id"] for r in ours)
    assert any(r["proto"] == 6 and r["src_port"] is not None and r["tcp_seq"] is None for r in ours)
