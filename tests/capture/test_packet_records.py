"""Packet records (``--records packets``): one row per IP packet, from the capture decoder to every destination."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from tests.capture.frame_builders import ether, fragment_header, ipv4, ipv6, pcap_file, tcp, udp

from flowscope.capture.files import iter_packet_batches
from flowscope.capture.packet_records import packet_table, packet_tables
from flowscope.cli import main
from flowscope.diagnostics import Skips
from flowscope.lake import Lake
from flowscope.pipeline import table_of
from flowscope.query import open_lake
from flowscope.schema import PACKET_SCHEMA, PACKETS

SEQ, ACK = 0xDEADBEEF, 0x01020304


def _tcp(sport: int, dport: int, flags: int) -> bytes:
    header = bytearray(tcp(sport, dport, flags))
    header[4:12] = SEQ.to_bytes(4, "big") + ACK.to_bytes(4, "big")
    return bytes(header)


FRAMES = [
    ether(ipv4(_tcp(40000, 443, 0x12), 6, ttl=61, tos=0x10), vlans=[(0x8100, 42)]),
    ether(ipv6(udp(5353, 53, b"q"), 17, hop_limit=9), etype=0x86DD),
    ether(ipv4(udp(1000, 2000, bytes(24)), 17, ident=99, more_fragments=True)),
    ether(ipv4(bytes(16), 17, ident=99, frag_offset=4)),
    ether(ipv6(bytes(8), 17, extensions=[fragment_header(3, False, 0xABCDEF)]), etype=0x86DD),
    ether(bytes(28), etype=0x0806),  # ARP: not IP, a counted skip
]


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    path = tmp_path / "c.pcap"
    path.write_bytes(pcap_file(FRAMES))
    return path


def test_packet_table_has_one_row_per_ip_packet_with_pcapstream_fields(capture: Path) -> None:
    skips = Skips()
    tables = list(packet_tables([capture], skips=skips))
    assert all(table_of(t) == PACKETS and t.schema == PACKET_SCHEMA for t in tables)
    rows = pa.concat_tables(tables).to_pylist()
    assert len(rows) == 5 and sum(skips.counts.values()) == 1  # the ARP frame
    tcp_row, udp6, first, later, later6 = rows
    assert (tcp_row["ip_version"], tcp_row["proto"], tcp_row["src_port"], tcp_row["dst_port"]) == (4, 6, 40000, 443)
    assert (tcp_row["tcp_seq"], tcp_row["tcp_ack"], tcp_row["tcp_flags"]) == (SEQ, ACK, 0x12)
    assert (tcp_row["ip_ttl"], tcp_row["ip_tos"], tcp_row["vlan_id"], tcp_row["ip_len"]) == (61, 0x10, 42, 40)
    assert (udp6["ip_version"], udp6["ip_ttl"], udp6["src_port"], udp6["tcp_seq"], udp6["tcp_flags"]) == (
        6, 9, 5353, None, None,
    )  # fmt: skip
    assert (first["more_fragments"], first["frag_offset"], first["frag_id"], first["src_port"]) == (True, 0, 99, 1000)
    assert (later["more_fragments"], later["frag_offset"], later["src_port"], later["dst_port"]) == (
        False,
        4,
        None,
        None,
    )
    assert (later6["frag_offset"], later6["frag_id"], later6["proto"], later6["src_port"]) == (3, 0xABCDEF, 17, None)
    assert [r["time"].timestamp() for r in rows] == [1_700_000_000.25 + i for i in range(5)]


def test_a_tcp_header_cut_short_reads_as_null_not_zero(tmp_path: Path) -> None:
    whole = ether(ipv4(_tcp(1, 2, 0x10), 6))
    path = tmp_path / "cut.pcap"
    path.write_bytes(pcap_file([whole[: 14 + 20 + 12]], wire_lens=[len(whole)]))  # ports and seq, no flags
    (row,) = packet_table(next(iter_packet_batches([path], skips=Skips()))).to_pylist()
    assert (row["src_port"], row["dst_port"], row["tcp_seq"], row["tcp_ack"], row["tcp_flags"]) == (
        1,
        2,
        None,
        None,
        None,
    )
    assert (row["wire_len"], row["ip_len"]) == (len(whole), 40)


def invoke(lake: Path, *args: str):
    return CliRunner().invoke(main, ["--lake", str(lake), *args], catch_exceptions=False)


def test_read_records_packets_into_the_lake_partitioned_by_capture_time(tmp_path: Path, capture: Path) -> None:
    lake = tmp_path / "lake"
    result = invoke(lake, "read", str(capture), "--records", "packets")
    assert result.exit_code == 0, result.output
    assert "5 packets from 1 input(s)" in result.output
    assert [p.name for p in Lake.at(lake).partitions(PACKETS)] == ["hour=22"]  # 2023-11-14 22:13 UTC
    assert not (lake / "flows").exists()
    with open_lake(lake) as con:
        counts = con.execute(
            "SELECT proto, count(*) FROM packets GROUP BY proto ORDER BY proto"
        ).fetchall()  # pcapstream's per-protocol count
        per_ms = con.execute("SELECT count(DISTINCT epoch_ms(time::TIMESTAMPTZ)) FROM packets").fetchone()
    assert counts == [(6, 1), (17, 4)] and per_ms == (5,)
    again = invoke(lake, "read", str(capture), "--records", "packets")  # the ledger knows it (as packets)
    assert "0 packets" in again.output
    flows = invoke(lake, "read", str(capture))  # flows of the same file are another product
    assert flows.exit_code == 0 and "4 flows" in flows.output


def test_read_records_packets_to_parquet_and_csv(tmp_path: Path, capture: Path) -> None:
    parquet, text = tmp_path / "p.parquet", tmp_path / "p.csv"
    result = invoke(
        tmp_path / "lake", "read", str(capture), "--records", "packets", "-o", str(parquet), "--to", str(text)
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(parquet)
    assert table.schema.names == PACKET_SCHEMA.names and table.num_rows == 5
    rows = list(csv.DictReader(text.open()))
    assert [r["src_addr"] for r in rows[:2]] == ["10.0.0.1", "2001:db8::1"]
    assert rows[0]["tcp_seq"] == str(SEQ) and rows[1]["tcp_seq"] == ""


def test_watch_records_packets_keeps_its_own_state(tmp_path: Path, capture: Path) -> None:
    folder = tmp_path / "captures"
    folder.mkdir()
    capture.rename(folder / capture.name)
    lake = tmp_path / "lake"
    assert (
        "5 packets from 1 capture file(s)"
        in invoke(lake, "watch", str(folder), "--once", "--records", "packets").output
    )
    assert (
        "0 packets from 0 capture file(s)"
        in invoke(lake, "watch", str(folder), "--once", "--records", "packets").output
    )
    assert "4 flows from 1 capture file(s)" in invoke(lake, "watch", str(folder), "--once").output
    assert sum(pq.read_table(f).num_rows for f in Lake.at(lake).files(PACKETS)) == 5


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--anonymize", "KEY"], "--anonymize applies to flows, not to --records packets"),
        (["--as-exports"], "does not go with --format or --as-exports"),
    ],
)
def test_packet_records_refuse_flow_only_options(tmp_path: Path, capture: Path, extra: list[str], message: str) -> None:
    if "KEY" in extra:
        key = tmp_path / "key"
        key.write_bytes(bytes(range(32)))
        extra = [str(key) if e == "KEY" else e for e in extra]
    result = CliRunner().invoke(
        main, ["--lake", str(tmp_path / "l"), "read", str(capture), "--records", "packets", *extra]
    )
    assert result.exit_code == 2 and message in result.output


def test_read_a_folder_as_packet_records_once(tmp_path: Path, capture: Path) -> None:
    folder = tmp_path / "rotated"
    folder.mkdir()
    capture.rename(folder / "a.pcap")
    (folder / "b.pcap").write_bytes(pcap_file(FRAMES[:2]))
    (folder / "SHA256SUMS").write_text("not a capture\n")
    lake = tmp_path / "lake"
    first = invoke(lake, "read", str(folder), "--records", "packets")
    assert "7 packets from" in first.output and "are not captures" in first.output
    assert "0 packets" in invoke(lake, "read", str(folder), "--records", "packets").output
