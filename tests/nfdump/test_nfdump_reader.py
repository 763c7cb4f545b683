"""The native nfdump reader against nfdump's own output for the shared nfcapd files."""

from __future__ import annotations

import ipaddress
import json
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from tests.conftest import require_tool, shared_data
from tests.nfdump.nfdump_csv import csv_rows, expected_rows, our_rows

from flowscope.errors import FlowscopeError
from flowscope.nfdump import container
from flowscope.nfdump.options import RecordSelection
from flowscope.nfdump.reader import NfdumpSource
from flowscope.readers import registry

# file -> the uncompressed sibling whose nfdump output is the oracle
FILES = {
    "google_ssl_uncompressed": "google_ssl_uncompressed",
    "google_ssl_lz4": "google_ssl_uncompressed",
    "google_ssl_lzo": "google_ssl_uncompressed",
    "ipfix_mixed": "ipfix_mixed",
    "ipfix_mixed_bz2": "ipfix_mixed",
    "ipfix_mixed_lzo": "ipfix_mixed",
    "nfv5_mixed": "nfv5_mixed",
    "nfv5_mixed_lz4": "nfv5_mixed",
}


def nfcapd(name: str) -> Path:
    return shared_data("nfcapd", f"{name}.nfcapd")


def read_all(*paths: Path, columns: Iterable[str] | None = None, **selection: Any) -> tuple[pa.Table, NfdumpSource]:
    source = NfdumpSource(list(paths), RecordSelection(**selection), columns=columns)
    tables = list(source)
    table = pa.concat_tables(tables, promote_options="default") if tables else pa.table({})
    return table, source


@pytest.mark.parametrize("name", sorted(FILES))
def test_totals_match_nfdump_json(name: str) -> None:
    table, source = read_all(nfcapd(name))
    expected = json.loads(shared_data("nfcapd", f"{FILES[name]}.expected.json").read_text())
    assert source.skips.total == 0
    assert table.num_rows == len(expected)
    assert sum(table["packets"].to_pylist()) == sum(r["in_packets"] for r in expected)
    assert sum(table["bytes"].to_pylist()) == sum(r["in_bytes"] for r in expected)


@pytest.mark.parametrize("name", sorted(FILES))
def test_records_match_nfdump_csv_field_by_field(name: str) -> None:
    table, _ = read_all(nfcapd(name))
    expected = expected_rows(shared_data("nfcapd", f"{FILES[name]}.expected.csv"))
    assert our_rows(table) == expected


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(FILES))
def test_records_match_the_nfdump_binary(name: str) -> None:
    nfdump = require_tool("nfdump")
    path = nfcapd(name)
    done = subprocess.run(
        [nfdump, "-r", str(path), "-o", "csv"], capture_output=True, text=True, timeout=60, env={"TZ": "UTC"}
    )
    assert done.returncode == 0, done.stderr
    table, _ = read_all(path)
    assert our_rows(table) == csv_rows(done.stdout)


@pytest.mark.parametrize("base", ["google_ssl_uncompressed", "ipfix_mixed", "nfv5_mixed"])
def test_details_match_nfdump_json(base: str) -> None:
    table, _ = read_all(nfcapd(base))
    expected = json.loads(shared_data("nfcapd", f"{base}.expected.json").read_text())
    for ours, theirs in zip(table.to_pylist(), expected, strict=True):
        assert ours["proto"] == theirs["proto"]
        assert ours["tcp_flags"] is not None
        if "icmp_type" in theirs:
            assert (ours["icmp_type"], ours["icmp_code"]) == (theirs["icmp_type"], theirs["icmp_code"])
        if "src_vlan" in theirs:
            assert ours["vlan_id"] == theirs["src_vlan"]
        assert (ours["sampling_rate"] > 1) == bool(theirs["sampled"])
        assert ours["time_flow_start"].isoformat(timespec="milliseconds")[:23] == theirs["first"]
        assert ours["time_flow_end"].isoformat(timespec="milliseconds")[:23] == theirs["last"]


def test_stat_record_matches_nfdump_info() -> None:
    stat = container.read_stat(nfcapd("nfv5_mixed"))
    info = dict(
        line.split(": ", 1) for line in shared_data("nfcapd", "nfv5_mixed.expected_stat.txt").read_text().splitlines()
    )
    assert stat is not None
    assert (stat.flows, stat.packets, stat.bytes) == (int(info["Flows"]), int(info["Packets"]), int(info["Bytes"]))
    assert stat.sequence_failures == int(info["Sequence failures"])


def test_sampled_records_carry_the_sampler_rate() -> None:
    table, _ = read_all(nfcapd("nfv5_mixed"))
    rates = set(table["sampling_rate"].to_pylist())
    assert rates == {1, 1000}  # 89 records from the exporter with a 1-in-1000 v5 sampler


def test_registered_and_sniffed() -> None:
    reader = registry.detect(nfcapd("ipfix_mixed_lzo"))
    assert reader.name == "nfdump"


def test_several_files_and_directories(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    shutil.copy(nfcapd("nfv5_mixed"), folder / "nfcapd.202301010000")
    shutil.copy(nfcapd("ipfix_mixed"), folder / "nfcapd.202301010005")
    (folder / "notes.txt").write_text("not an nfdump file")
    table, source = read_all(folder, nfcapd("google_ssl_lz4"))
    assert table.num_rows == 118 + 78 + 2
    done, total = source.progress()
    assert done == total == sum(p.stat().st_size for p in source.files)


def test_selection_options() -> None:
    path = nfcapd("nfv5_mixed")
    full, _ = read_all(path)
    limited, _ = read_all(path, max_records=10)
    assert limited.num_rows == 10
    assert limited["bytes"].to_pylist() == full["bytes"].to_pylist()[:10]
    by_if, _ = read_all(path, exporter="127.0.0.1", in_if=117)
    assert by_if.num_rows == sum(1 for v in full["in_if"].to_pylist() if v == 117)
    other, _ = read_all(path, exporter="10.0.0.1")
    assert other.num_rows == 0
    pcap, _ = read_all(nfcapd("google_ssl_uncompressed"), drop_arp=True)
    assert pcap.num_rows == 2


def _corrupt(tmp_path: Path, name: str, mutate) -> Path:
    data = bytearray(nfcapd(name).read_bytes())
    mutate(data)
    path = tmp_path / f"bad_{name}.nfcapd"
    path.write_bytes(bytes(data))
    return path


def test_truncated_file_counts_the_lost_block(tmp_path: Path) -> None:
    path = _corrupt(tmp_path, "nfv5_mixed", lambda d: d.__delitem__(slice(5000, None)))
    table, source = read_all(path)
    assert table.num_rows == 0
    assert source.skips.counts["truncated data block at end of file"] == 122


def test_corrupt_compressed_block_is_skipped(tmp_path: Path) -> None:
    def garble(data: bytearray) -> None:
        data[60:200] = bytes(140)

    table, source = read_all(_corrupt(tmp_path, "nfv5_mixed_lz4", garble))
    assert table.num_rows == 0
    assert source.skips.counts["corrupt compressed block"] == 122


def test_unknown_block_type_is_skipped(tmp_path: Path) -> None:
    table, source = read_all(_corrupt(tmp_path, "ipfix_mixed", lambda d: struct.pack_into("<H", d, 48, 9)))
    assert table.num_rows == 0
    assert source.skips.counts["unknown nfdump block type 9"] == 81


def _record_offsets(data: bytes, block_start: int = 40) -> list[tuple[int, int]]:
    """(offset, type) of the records in the block at ``block_start`` of an uncompressed file."""
    _, size, _, _ = struct.unpack_from("<IIHH", data, block_start)
    pos, end, found = block_start + 12, block_start + 12 + size, []
    while pos < end:
        rtype, rsize = struct.unpack_from("<HH", data, pos)
        found.append((pos, rtype))
        pos += rsize
    return found


def test_corrupt_record_size_skips_rest_of_block(tmp_path: Path) -> None:
    v3 = [offset for offset, rtype in _record_offsets(nfcapd("nfv5_mixed").read_bytes()) if rtype == 11]
    tenth = v3[10]
    table, source = read_all(_corrupt(tmp_path, "nfv5_mixed", lambda d: struct.pack_into("<H", d, tenth + 2, 60000)))
    assert table.num_rows == 10
    assert source.skips.counts["corrupt record; rest of its block skipped"] > 0


def test_unknown_record_type_is_counted(tmp_path: Path) -> None:
    first_v3 = next(offset for offset, rtype in _record_offsets(nfcapd("ipfix_mixed").read_bytes()) if rtype == 11)
    table, source = read_all(_corrupt(tmp_path, "ipfix_mixed", lambda d: struct.pack_into("<H", d, first_v3, 99)))
    assert table.num_rows == 77
    assert source.skips.counts["unknown nfdump record type 99"] == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "too short"),
        (b"hello world, not nfdump at all" * 3, "not an nfdump file"),
        (struct.pack("<HH", 0xA50C, 1) + bytes(200), "nfdump 1.6"),
        (struct.pack("<HH", 0xA50C, 2) + bytes(10), "truncated nfdump file header"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.nfcapd"
    path.write_bytes(content)
    with pytest.raises(FlowscopeError, match=message):
        read_all(path)


@pytest.mark.parametrize("method", [1, 2, 3])
def test_blocks_larger_than_the_first_buffer_try(tmp_path: Path, method: int) -> None:
    """A 3 MiB block (beyond the 2 MiB first buffer for LZO/LZ4) of one record repeated."""
    data = nfcapd("nfv5_mixed").read_bytes()
    offset = next(o for o, t in _record_offsets(data) if t == 11)
    record = data[offset : offset + struct.unpack_from("<H", data, offset + 2)[0]]
    payload = record * 25_000
    if method == 1:
        from lzallright import LZOCompressor

        stored = LZOCompressor().compress(payload)
    elif method == 2:
        import bz2

        stored = bz2.compress(payload)
    else:
        import lz4.block

        stored = lz4.block.compress(payload, store_size=False)
    header = bytearray(data[:40])
    header[16] = method
    struct.pack_into("<qII", header, 24, 0, 0, 1)  # no appendix, one block
    path = tmp_path / "big_block.nfcapd"
    path.write_bytes(bytes(header) + struct.pack("<IIHH", 25_000, len(stored), 3, 0) + stored)
    table, source = read_all(path)
    assert table.num_rows == 25_000
    assert source.skips.total == 0


def test_a_missing_codec_skips_that_file_and_names_it_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder with one LZO file, read where the LZO codec cannot be imported: the others are read."""
    folder = tmp_path / "nfcapd"
    folder.mkdir()
    for name in ("ipfix_mixed", "ipfix_mixed_lzo", "nfv5_mixed_lz4"):
        (folder / f"nfcapd.{name}").write_bytes(nfcapd(name).read_bytes())
    monkeypatch.setitem(sys.modules, "lzallright", None)  # import lzallright raises ImportError
    table, source = read_all(folder)
    assert table.num_rows == 78 + 118  # the flow records of the other two files
    [line] = source.skips.lines()
    assert line.startswith(f"81 records skipped: {folder / 'nfcapd.ipfix_mixed_lzo'}: LZO-compressed")
    assert "pip install lzallright" in line


def test_an_unsupported_compression_is_a_counted_skip_naming_the_fix(tmp_path: Path) -> None:
    zstd = _corrupt(tmp_path, "ipfix_mixed", lambda d: d.__setitem__(16, 4))  # header: ZSTD compressed
    table, source = read_all(zstd)
    assert table.num_rows == 0
    assert source.skips.counts[f"{zstd}: nfdump compression ZSTD is not supported (to LZ4: nfdump -r FILE -J 3)"] == 81


def nfdump_file(records: list[tuple[int, int, int, str, str, int]]) -> bytes:
    """An uncompressed nfdump 1.7 file (layout 2) of V3 records with EXgenericFlow and EXipv4Flow elements:
    (first ms, last ms, received ms, source, destination, packets) each (nfdump's nfxV3.h layouts)."""
    body = b""
    for first, last, received, src, dst, packets in records:
        counters = (packets, packets * 100, 1000, 53, 17, 0, 0, 0)  # packets, bytes, ports, UDP, flags, tos
        generic = struct.pack("<HHQQQQQHHBBBB", 1, 52, first, last, received, *counters)
        ipv4 = struct.pack("<HHII", 2, 12, *(int(ipaddress.IPv4Address(a)) for a in (src, dst)))
        body += struct.pack("<HHHBBHBB", 11, 12 + len(generic) + len(ipv4), 2, 0, 0, 0, 0, 9) + generic + ipv4
    header = struct.pack("<HHIqBBHIqII", 0xA50C, 2, 0x1070100, 1_700_000_000, 0, 0, 0, 0, 0, 0, 1)
    return header + struct.pack("<IIHH", len(records), len(body), 3, 0) + body


def test_unknown_times_are_null_not_1970(tmp_path: Path) -> None:
    """nfdump stores 0 for a time the exporter did not send (an end time, a start time) or a missing receive
    time: those are nulls, the others milliseconds as stored."""
    ms = 1_700_000_000_000
    path = tmp_path / "nfcapd.times"
    path.write_bytes(
        nfdump_file(
            [
                (ms, ms + 5_000, ms + 9_000, "10.0.0.1", "10.0.0.2", 3),
                (ms, 0, ms + 9_000, "10.0.0.3", "10.0.0.4", 1),
                (0, 0, 0, "10.0.0.5", "10.0.0.6", 1),
            ]
        )
    )
    table, source = read_all(path)
    assert not source.skips.counts
    times = {name: table.column(name).cast(pa.int64()).to_pylist() for name in ("time_flow_start", "time_flow_end")}
    assert times == {
        "time_flow_start": [ms * 10**6, ms * 10**6, None],
        "time_flow_end": [(ms + 5_000) * 10**6, None, None],
    }
    assert table.column("time_received").cast(pa.int64()).to_pylist() == [(ms + 9_000) * 10**6] * 2 + [None]
    assert table.column("packets").to_pylist() == [3, 1, 1]


@pytest.mark.integration
def test_hand_built_file_is_what_nfdump_reads(tmp_path: Path) -> None:
    """The builder above writes files nfdump itself reads: same records, its 0 times printed as 1970."""
    nfdump = require_tool("nfdump")
    path = tmp_path / "nfcapd.times"
    path.write_bytes(nfdump_file([(1_700_000_000_000, 0, 0, "10.0.0.3", "10.0.0.4", 2)]))
    done = subprocess.run(
        [nfdump, "-r", str(path), "-o", "csv"], capture_output=True, text=True, timeout=60, env={"TZ": "UTC"}
    )
    assert done.returncode == 0, done.stderr
    (theirs,) = csv_rows(done.stdout)
    assert (theirs["sa"], theirs["da"], theirs["ipkt"], theirs["ibyt"]) == ("10.0.0.3", "10.0.0.4", "2", "200")
    assert theirs["ts"].startswith("2023-11-14") and theirs["te"].startswith("1970-01-01")
    (ours,) = our_rows(read_all(path)[0])
    assert ours["te"] == "" and {k: v for k, v in ours.items() if k != "te"} == {
        k: v for k, v in theirs.items() if k != "te"
    }


def test_columns_option_decodes_only_what_is_asked() -> None:
    full, _ = read_all(nfcapd("nfv5_mixed"))
    lean, _ = read_all(nfcapd("nfv5_mixed"), columns={"packets", "bytes"})
    assert lean.schema == full.schema
    assert lean["bytes"].to_pylist() == full["bytes"].to_pylist()
    assert lean["next_hop"].null_count == lean.num_rows
    assert full["next_hop"].null_count < full.num_rows


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_flowscope_read_writes_nfdump_records(tmp_path: Path, suffix: str) -> None:
    from click.testing import CliRunner

    from flowscope.cli import main

    out = tmp_path / f"flows.{suffix}"
    args = [
        "read",
        str(nfcapd("nfv5_mixed_lz4")),
        str(nfcapd("ipfix_mixed_lzo")),
        "-o",
        str(out),
        "--exporter",
        "127.0.0.1",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    if suffix == "csv":
        assert len(out.read_text().splitlines()) == 1 + 118 + 78
    else:
        import pyarrow.parquet as pq

        assert pq.read_table(out).num_rows == 118 + 78
