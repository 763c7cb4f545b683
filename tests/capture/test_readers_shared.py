"""Readers and decoder on the real third-party captures in ../shared/testdata, checked against tcpdump and tshark.

Oracles: the pcapng conformance suite's block listings, and the real tools run by the test itself
(packet counts from ``tcpdump -r``/``tshark``; addresses, ports, lengths and timestamps from ``tshark -T fields``).
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import SHARED_TESTDATA, require_tool, shared_data

from flowscope.capture import iter_packet_batches
from flowscope.capture.files import iter_frames
from flowscope.capture.packets import PacketBatch
from flowscope.diagnostics import Skips


def _captures(folder: str) -> list[str]:
    """Capture files of a shared folder, as parameters (the folder name alone when ../shared is absent)."""
    root = SHARED_TESTDATA / "pcap" / folder
    if not root.exists():
        return [folder]
    found = (p for p in root.rglob("*") if p.suffix in (".pcap", ".pcapng"))
    return sorted(str(p.relative_to(root.parent)) for p in found)


PCAPS = [name for folder in ("nfstream", "dpkt", "tcpdump", "akvorado-encap") for name in _captures(folder)]
SUITE = _captures("pcapng-test-suite")
TUNNELS = [
    "nfstream/4in4tunnel.pcap",
    "nfstream/4in6tunnel.pcap",
    "nfstream/6in4tunnel.pcap",
    "nfstream/6in6tunnel.pcap",
    "nfstream/teredo.pcap",
    "nfstream/gtp-u.pcap",
    "nfstream/ipv6_in_gtp.pcap",
    "akvorado-encap/gre-v4-key.pcap",
    "akvorado-encap/gre-v4-plain.pcap",
    "akvorado-encap/gre-v6-plain.pcap",
    "akvorado-encap/ipv4-ipv4.pcap",
    "akvorado-encap/ipv4-ipv6.pcap",
    "akvorado-encap/vlan-ipv6.pcap",
    "tcpdump/mpls-over-udp.pcap",
    "dpkt/nb6-http.pcap",
]
FRAGMENTS = ["nfstream/dns_fragmented.pcap", "nfstream/ip_fragmented_garbage.pcap", "tcpdump/ip6_frag_asan.pcap"]


def frame_count(path: Path) -> tuple[int, Skips]:
    skips = Skips()
    return sum(len(frames) for frames in iter_frames(path, skips)), skips


def read_all(path: Path, **kwargs) -> tuple[PacketBatch, Skips]:
    skips = Skips(unit="packets")
    return PacketBatch.concat(list(iter_packet_batches([path], skips=skips, **kwargs))), skips


@pytest.mark.parametrize("name", PCAPS + SUITE)
def test_every_capture_reads_without_error(name: str) -> None:
    path = shared_data("pcap", name)
    for tunnels in ("outer", "inner"):
        batch, skips = read_all(path, tunnels=tunnels, keep_non_ip=True)
        frames, _ = frame_count(path)
        assert len(batch) == frames
        assert all(reason and count > 0 for reason, count in skips.counts.items())


@pytest.mark.parametrize("name", SUITE)
def test_pcapng_suite_packet_blocks(name: str) -> None:
    """The suite's own listing says how many packet blocks each file holds."""
    path = shared_data("pcap", name)
    listing = path.with_suffix(".txt").read_text()
    expected = sum(int(n) for n in re.findall(r"^\s*(?:EPB|SPB|PB|OPB): (\d+)", listing, re.MULTILINE))
    count, skips = frame_count(path)
    assert count == expected
    assert set(skips.counts) <= {"simple packet blocks carry no timestamp (packet kept, time 0)"}


def test_known_damage_is_explained() -> None:
    _, skips = frame_count(shared_data("pcap", "dpkt", "truncated_dns_2.pcap"))
    assert skips.counts == {"truncated last record": 1}
    _, skips = frame_count(shared_data("pcap", "nfstream", "dhcp_big_endian.pcapng"))
    assert skips.counts == {"timestamp outside 1970..2262 (packet kept, time 0)": 4}
    batch, skips = read_all(shared_data("pcap", "akvorado-encap", "mpls-invalid-nibble.pcap"))
    assert len(batch) == 0 and skips.counts == {"MPLS payload is neither IPv4, IPv6 nor Ethernet": 1}


def _tool_lines(command: list[str]) -> list[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    return result.stdout.splitlines()


@pytest.mark.integration
@pytest.mark.parametrize("name", PCAPS)
def test_packet_counts_match_tcpdump(name: str) -> None:
    tcpdump = require_tool("tcpdump")
    path = shared_data("pcap", name)
    lines = _tool_lines([tcpdump, "-r", str(path), "-n", "-q"])
    expected = sum(1 for line in lines if line[:1].isdigit())  # continuation lines (hex dumps) are indented
    count, skips = frame_count(path)
    # libpcap stops at a record claiming more than 256 KiB on the wire; we keep it (as tshark does) and count it.
    assert count == expected + skips.counts["original length beyond 256 KiB (packet kept, length set to captured)"]


TSHARK_FRAME_FIELDS = ["frame.encap_type", "frame.cap_len", "frame.len", "frame.time_epoch"]


@pytest.mark.integration
@pytest.mark.parametrize("name", SUITE + [n for n in PCAPS if n.endswith("pcapng") or "nano" in n])
def test_lengths_and_timestamps_match_tshark(name: str) -> None:
    """Per packet: captured and original length and the timestamp (interfaces, resolutions, offsets, sections)."""
    tshark = require_tool("tshark")
    path = shared_data("pcap", name)
    expected = []
    for line in _tool_lines(
        [tshark, "-r", str(path), "-T", "fields", "-E", "separator=,", *_fields(TSHARK_FRAME_FIELDS)]
    ):
        encap, caplen, wirelen, epoch = line.split(",")
        if encap:  # custom blocks show up as frames without an encapsulation; they carry no packet
            expected.append((int(caplen), int(wirelen), epoch))
    skips = Skips()
    frames = list(iter_frames(path, skips))
    caplens = np.concatenate([f.caplens for f in frames]).tolist() if frames else []
    wirelens = np.concatenate([f.wirelens for f in frames]).tolist() if frames else []
    stamps = np.concatenate([f.ts_ns for f in frames]).tolist() if frames else []
    assert list(zip(caplens, wirelens, strict=True)) == [(c, w) for c, w, _ in expected]
    beyond_range = skips.counts["timestamp outside 1970..2262 (packet kept, time 0)"]
    for stamp, (_, _, epoch) in zip(stamps, expected, strict=True):
        if epoch and not beyond_range:  # simple packet blocks have no time; tshark prints nothing
            assert stamp == int(Decimal(epoch) * 10**9)


def _fields(names: list[str]) -> list[str]:
    return [arg for name in names for arg in ("-e", name)]


ADDRESS_FIELDS = ["frame.protocols", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst"]
PORT_FIELDS = [f"{p}.{d}port" for p in ("tcp", "udp", "sctp") for d in ("src", "dst")]


def _text(row: np.ndarray) -> str:
    raw = bytes(row)
    return str(ipaddress.ip_address(raw[12:] if raw[:12] == bytes(10) + b"\xff\xff" else raw))


def _compare_with_tshark(name: str, tunnels: str) -> int:
    """Decoded (src, dst, sport, dport) per packet against tshark's outermost or innermost IP layer."""
    tshark = require_tool("tshark")
    path = shared_data("pcap", name)
    occurrence = "f" if tunnels == "outer" else "l"
    command = [tshark, "-r", str(path), "-T", "fields", "-E", "separator=|", "-E", f"occurrence={occurrence}"]
    lines = _tool_lines(command + _fields(ADDRESS_FIELDS + PORT_FIELDS))
    batch, _ = read_all(path, tunnels=tunnels, keep_non_ip=True)
    assert len(batch) == len(lines)
    compared = 0
    for row, line in enumerate(lines):
        values = dict(zip(ADDRESS_FIELDS + PORT_FIELDS, line.split("|"), strict=True))
        layers = values["frame.protocols"].split(":")
        if "icmp:ip" in values["frame.protocols"] or "icmpv6:ipv6" in values["frame.protocols"]:
            continue  # ICMP errors quote an IP header; tshark's "last IP layer" is the quoted one
        ip_layers = [i for i, layer in enumerate(layers) if layer in ("ip", "ipv6")]
        if not ip_layers or "capwap" in layers or "eth:ethertype:mpls:pwethheuristic" in values["frame.protocols"]:
            continue  # tshark decodes no IP here (or, for CAPWAP, 802.11 we do not decapsulate)
        index = ip_layers[0] if tunnels == "outer" else ip_layers[-1]
        layer = layers[index]
        expected = (values[f"{layer}.src"], values[f"{layer}.dst"])
        got = (_text(batch.src_addr[row]), _text(batch.dst_addr[row]))
        following = [x for x in layers[index + 1 :] if not x.startswith("ipv6.")]
        transport = following[0] if following else ""
        if transport in ("tcp", "udp", "sctp") and batch.frag_offset[row] == 0:
            expected += (values[f"{transport}.srcport"], values[f"{transport}.dstport"])
            got += (str(batch.src_port[row]), str(batch.dst_port[row]))
        assert got == expected, f"frame {row + 1}: {values['frame.protocols']}"
        compared += 1
    return compared


@pytest.mark.integration
@pytest.mark.parametrize("name", PCAPS)
def test_outer_headers_match_tshark(name: str) -> None:
    _compare_with_tshark(name, "outer")


@pytest.mark.integration
@pytest.mark.parametrize("name", TUNNELS + FRAGMENTS)
def test_inner_headers_match_tshark(name: str) -> None:
    assert _compare_with_tshark(name, "inner") > 0
