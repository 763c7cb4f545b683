"""Cross-check against nfpcapd (nfdump's pcap meter) on the same captures and timeouts: equal totals.

nfpcapd makes one-way flows, one flow per ICMP packet and per DNS packet, so flow counts differ by
design (docs/CAPTURE.md lists every difference); packets and bytes (IP layer) must be equal.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest
from tests.conftest import require_tool, shared_data

from flowscope.capture.options import MeterOptions
from flowscope.capture.source import CaptureSource

ACTIVE, IDLE = 300, 60

# Captures of ../shared/testdata/pcap/nfstream unless a folder is named. nfpcapd decapsulates IP-in-IP
# (4in4, 6in4, ...) and GRE but not GTP-U or Teredo: compare like with like.
CAPTURES = {
    "1kxun.pcap": "outer",
    "4in4tunnel.pcap": "inner",
    "4in6tunnel.pcap": "inner",
    "6in4tunnel.pcap": "inner",
    "6in6tunnel.pcap": "inner",
    "among_us.pcap": "outer",
    "capwap.pcap": "outer",
    "dhcp.pcapng": "outer",
    "dhcp_big_endian.pcapng": "outer",
    "dlt_ppp.pcap": "outer",
    "facebook.pcap": "outer",
    "google_ssl.pcap": "outer",
    "gtp-u.pcap": "outer",
    "http_ipv6.pcap": "outer",
    "ipv6_in_gtp.pcap": "outer",
    "malformed_icmp.pcap": "outer",
    "mdns.pcap": "outer",
    "netflowv9.pcap": "outer",
    "os_detected.pcapng": "outer",
    "quic_interop_V.pcapng": "outer",
    "raw.pcap": "outer",
    "skype.pcap": "outer",
    "steam.pcap": "outer",
    "synscan.pcap": "outer",
    "teredo.pcap": "outer",
    # other folders of ../shared/testdata/pcap (nfpcapd also decapsulates GRE and IPv4-in-IPv6)
    "tcpdump/ip6_frag_asan.pcap": "outer",
    "tcpdump/mpls-over-udp.pcap": "outer",
    "tcpdump/tcp-handshake-nano.pcap": "outer",
    "tcpdump/tcp_rst_data-trunc.pcap": "outer",
    "dpkt/dns_icmp.pcap": "outer",
    "dpkt/http.pcap": "outer",
    "dpkt/nb6-http.pcap": "outer",
    "dpkt/truncated_dns_2.pcap": "outer",
    "akvorado-encap/gre-v4-plain.pcap": "inner",
    "akvorado-encap/gre-v6-plain.pcap": "inner",
    "akvorado-encap/ipv4-ipv4.pcap": "inner",
    "akvorado-encap/ipv4-ipv6.pcap": "inner",
    "akvorado-encap/mpls-ipv4.pcap": "outer",
    "akvorado-encap/mpls-ipv6.pcap": "outer",
    "akvorado-encap/srv6-end-dt6.pcap": "outer",
}


def nfpcapd_totals(capture: Path, out: Path) -> dict[str, int]:
    nfpcapd, nfdump = require_tool("nfpcapd"), require_tool("nfdump")
    out.mkdir()
    subprocess.run(
        ["timeout", "120", nfpcapd, "-r", str(capture), "-w", str(out), "-e", f"{ACTIVE},{IDLE}"],
        capture_output=True, check=True,
    )  # fmt: skip
    info = subprocess.run([nfdump, "-R", str(out), "-I"], capture_output=True, text=True, check=True).stdout
    return {name: int(value) for name, value in re.findall(r"^(Flows|Packets|Bytes): (\d+)", info, re.M)}


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_totals_equal_nfpcapd(name: str, tmp_path: Path) -> None:
    capture = shared_data("pcap", *(name.split("/") if "/" in name else ("nfstream", name)))
    theirs = nfpcapd_totals(capture, tmp_path / "nfpcapd")
    source = CaptureSource([capture], MeterOptions(active=ACTIVE, idle=IDLE, tunnels=CAPTURES[name]))
    table = pa.concat_tables(list(source))
    packets = int(table.column("packets").to_numpy().sum() + table.column("packets_rev").to_numpy().sum())
    octets = int(table.column("bytes").to_numpy().sum() + table.column("bytes_rev").to_numpy().sum())
    assert (packets, octets) == (theirs["Packets"], theirs["Bytes"])


@pytest.mark.integration
def test_uniflow_gives_nfpcapd_flow_count_where_no_icmp_or_dns(tmp_path: Path) -> None:
    capture = shared_data("pcap", "nfstream", "google_ssl.pcap")
    theirs = nfpcapd_totals(capture, tmp_path / "nfpcapd")
    table = pa.concat_tables(list(CaptureSource([capture], MeterOptions(active=ACTIVE, idle=IDLE, uniflow=True))))
    assert table.num_rows == theirs["Flows"] == 2
