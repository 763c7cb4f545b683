"""Flow CSV reading: the Kaggle 11-column example, the 87-column header, CICFlowMeter, nfdump -o csv, ft-profiler."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from tests.conftest import require_tool, shared_data

from flowscope import addresses
from flowscope.csvflows import reader as csv_reader
from flowscope.csvflows import values
from flowscope.csvflows.reader import CsvFlowSource, sniff
from flowscope.display import textual
from flowscope.errors import FlowscopeError
from flowscope.readers import lines as line_input
from flowscope.readers.text_options import TextOptions
from flowscope.schema import FLOW_SCHEMA, conform

EXAMPLE = Path(__file__).parent / "data" / "unicauca11_example.csv"


def read_all(path: Path, **options: Any) -> tuple[pa.Table, CsvFlowSource]:
    source = CsvFlowSource([path], TextOptions(**options))
    batches = [conform(b) for b in source]
    return pa.concat_tables(batches, promote_options="permissive"), source


def test_kaggle_eleven_columns() -> None:
    table, source = read_all(EXAMPLE)
    assert table.num_rows == 8 and source.skips.total == 0
    assert source.dialects_seen == {str(EXAMPLE): "cic"}
    first = textual(table).to_pylist()[0]
    assert (first["src_addr"], first["src_port"], first["dst_addr"], first["dst_port"], first["proto"]) == (
        "172.19.1.46", 52422, "10.200.7.7", 3128, 6,
    )  # fmt: skip
    assert (first["packets"], first["packets_rev"], first["bytes"], first["bytes_rev"]) == (22, 55, 132, 110414)
    start = table.column("time_flow_start")[0].value
    end = table.column("time_flow_end")[0].value
    assert str(table.column("time_flow_start")[0]) == "2017-04-26 11:11:17+00:00"
    assert end - start == 45523 * 1000  # Flow.Duration is in microseconds


def test_timezone_of_naive_timestamps(tmp_path: Path) -> None:
    table, _ = read_all(EXAMPLE, tz="America/Sao_Paulo")
    assert str(table.column("time_flow_start")[0]) == "2017-04-26 14:11:17+00:00"


def test_unicauca_87_column_header(tmp_path: Path) -> None:
    schema = shared_data("csv", "unicauca87", "SCHEMA-87-columns.txt")
    columns = [line.split() for line in schema.read_text().splitlines() if line and not line.startswith("#")]
    assert len(columns) == 87
    special = {
        "Flow.ID": "10.0.0.1-10.0.0.2-443-5000-6",
        "Source.IP": "10.0.0.1",
        "Destination.IP": "10.0.0.2",
        "Timestamp": "26/04/201711:11:17",
        "Label": "BENIGN",
        "ProtocolName": "HTTP_PROXY",
        "Source.Port": "443",
        "Flow.Duration": "3e+05",
        "Total.Length.of.Bwd.Packets": "110414.0",
    }
    row = [special.get(name, "1" if kind == "int64" else "0.5") for _, name, kind in columns]
    path = tmp_path / "unicauca87.csv"
    path.write_text(",".join(name for _, name, _ in columns) + "\n" + ",".join(row) + "\n" + ",".join(row) + "\n")
    assert sniff(path, path.read_bytes())
    table, source = read_all(path)
    assert table.num_rows == 2 and source.skips.total == 0
    extras = table.column_names[len(FLOW_SCHEMA) :]
    assert len(extras) == 87 - 11  # the 11 core columns are mapped, every other column is kept
    assert {"flow_id", "label", "protocolname", "l7protocol", "fwd_header_length_1", "flow_bytes_s"} <= set(extras)
    assert table.column("protocolname")[0].as_py() == "HTTP_PROXY"
    assert table.column("l7protocol").type == pa.float64()
    duration = table.column("time_flow_end")[0].value - table.column("time_flow_start")[0].value
    assert duration == 300_000 * 1000


def test_cicflowmeter_reads_completely() -> None:
    path = shared_data("csv", "cicflowmeter", "test.pcap_CICFlowMeter-V3.csv")
    table, source = read_all(path)
    assert table.num_rows == 96 and source.skips.total == 0
    assert table.column("src_addr").null_count == 0 and table.column("time_flow_start").null_count == 0
    assert set(pc.unique(table.column("label")).to_pylist()) == {"BENIGN"}
    assert table.num_columns == len(FLOW_SCHEMA) + 85 - 11
    first = textual(table.slice(0, 1)).to_pylist()[0]
    assert (first["src_addr"], first["dst_port"], first["packets"], first["bytes_rev"]) == (
        "10.200.2.252", 8080, 192, 486845,
    )  # fmt: skip
    assert first["flow_id"] == "188.120.225.17-10.200.2.252-8080-61559-6"


def test_ftprofiler_input_with_comments() -> None:
    path = shared_data("profile", "ftprofiler", "csv_basic_input.csv")
    table, source = read_all(path)
    assert source.dialects_seen[str(path)] == "ftprofiler"
    data_lines = [line for line in path.read_text().splitlines()[1:] if line and not line.startswith("#")]
    assert table.num_rows == len(data_lines) == 37 and source.skips.total == 0
    assert pc.sum(table.column("packets")).as_py() == sum(int(line.split(",")[7]) for line in data_lines)
    assert table.column("time_flow_start")[0].value == 1653637473475 * 1_000_000


@pytest.mark.integration
@pytest.mark.parametrize("name", ["nfv5_mixed", "ipfix_mixed", "google_ssl_uncompressed"])
def test_nfdump_csv_matches_nfdump_totals(tmp_path: Path, name: str) -> None:
    nfdump = require_tool("nfdump")
    nfcapd = shared_data("nfcapd", f"{name}.nfcapd")
    path = tmp_path / f"{name}.csv"
    with open(path, "wb") as handle:
        subprocess.run([nfdump, "-r", str(nfcapd), "-o", "csv"], stdout=handle, check=True, timeout=60)
    stats = {}
    for line in shared_data("nfcapd", f"{name}.expected_stat.txt").read_text().splitlines():
        key, _, value = line.partition(":")
        stats[key.strip()] = value.strip()
    table, source = read_all(path)
    assert source.skips.total == 0  # the trailing Summary block is nfdump's, not data
    assert table.num_rows == int(stats["Flows"])
    assert pc.sum(table.column("packets")).as_py() == int(stats["Packets"])
    assert pc.sum(table.column("bytes")).as_py() == int(stats["Bytes"])


def test_nfdump_flags_and_protocol_names(tmp_path: Path) -> None:
    path = tmp_path / "nf.csv"
    path.write_text(
        "ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt\n"
        "2023-04-04 16:44:24,2023-04-04 16:44:25.500,1.500,10.0.0.1,2001:db8::1,1,2,TCP,...AP.SF,0,0,3,300,0,0\n"
        "2023-04-04 16:44:24,2023-04-04 16:44:24,0.000,10.0.0.1,10.0.0.2,0,0,ICMP,........,0,0,1,84,0,0\n"
    )
    table, _ = read_all(path)
    rows = textual(table).to_pylist()
    assert [r["proto"] for r in rows] == [6, 1]
    assert rows[0]["tcp_flags"] == 0x10 | 0x08 | 0x02 | 0x01
    assert rows[0]["dst_addr"] == "2001:db8::1"
    assert table.column("time_flow_end")[0].value - table.column("time_flow_start")[0].value == 1_500_000_000


def test_gzip_input(tmp_path: Path) -> None:
    path = tmp_path / "example.csv.gz"
    path.write_bytes(gzip.compress(EXAMPLE.read_bytes()))
    table, _ = read_all(path)
    assert table.num_rows == 8


def test_not_a_flow_csv_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("name,age,city\nann,3,paris\n")
    assert not sniff(path, path.read_bytes())
    with pytest.raises(FlowscopeError, match="not a flow CSV"):
        read_all(path)


def test_binary_input_as_csv_shows_no_bytes(tmp_path: Path) -> None:
    path = tmp_path / "capture.pcap"
    path.write_bytes(b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + bytes(16) + b"\x1b[2J,\xff\xfe\n1,2\n")
    with pytest.raises(FlowscopeError, match=r"its first line is binary data, not a header$"):
        read_all(path)


BAD_ROWS = (
    "Source.IP,Source.Port,Destination.IP,Destination.Port,Protocol,Timestamp,Flow.Duration\n"
    "10.0.0.1,80,10.0.0.2,99999,6,26/04/201711:11:17,5\n"  # port out of range
    "10.0.0.1,80,10.0.0.2,9,6,26/04/201711:11:17,5,7\n"  # ragged
    "10.0.0.x,80,10.0.0.2,9,6,26/04/201711:11:17,5\n"  # address
    "10.0.0.1,80,10.0.0.2,9,6,31/02/2017 99:00:00,5\n"  # timestamp
    "10.0.0.1,80,10.0.0.2,9,6,26/04/201711:11:17,abc\n"  # number
    "10.0.0.1,80,10.0.0.2,9,6,26/04/201711:11:17,-3\n"  # negative duration
    "10.0.0.1,8e1,10.0.0.2,9,6,26/04/201711:11:17,1.2e+03\n"  # fine
)


def test_bad_rows_are_counted_per_reason(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(BAD_ROWS)
    table, source = read_all(path)
    assert table.num_rows == 1
    assert table.column("src_port")[0].as_py() == 80
    assert source.skips.total == 6
    reasons = source.skips.counts
    assert reasons["unreadable destination_port value"] == 1
    assert reasons["row with the wrong number of fields"] == 1
    assert reasons["unreadable source_ip value"] == 1
    assert reasons["unreadable timestamp value"] == 1
    assert reasons["unreadable flow_duration value"] == 1
    assert reasons["negative flow_duration"] == 1


def test_large_counters_are_exact(tmp_path: Path) -> None:
    """Counters above 2**53 keep every digit in clean files (integer columns are parsed as integers)."""
    header = "Source IP,Source Port,Destination IP,Destination Port,Timestamp,Total Length of Fwd Packets\n"
    path = tmp_path / "big.csv"
    path.write_text(header + "1.1.1.1,1,2.2.2.2,53,26/04/201711:11:17,9007199254740993\n")
    table, source = read_all(path)
    assert source.skips.total == 0 and table.column("bytes").to_pylist() == [9007199254740993]


def test_strict_stops_at_the_first_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(BAD_ROWS)
    with pytest.raises(FlowscopeError, match="--strict"):
        read_all(path, strict=True)


def test_extra_column_named_like_a_flow_field_is_kept_apart(tmp_path: Path) -> None:
    path = tmp_path / "clash.csv"
    path.write_text(
        "Source IP,Destination IP,Destination Port,Flow Duration,Timestamp,Bytes\n1.1.1.1,2.2.2.2,53,5,,7\n"
    )
    table, source = read_all(path)
    assert source.skips.total == 0
    assert table.column("csv_bytes").to_pylist() == [7.0] and table.column("bytes").to_pylist() == [None]


def test_cli_forced_dialect_strict_and_warnings(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from flowscope.cli import main

    lake = tmp_path / "lake"
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD_ROWS)
    runner = CliRunner()
    result = runner.invoke(main, ["--lake", str(lake), "read", str(bad)])
    said = " ".join(result.output.split())
    assert result.exit_code == 0 and "1 flows from 1 input(s)" in said
    assert "1 rows skipped: unreadable destination_port value (e.g. 99999)" in said  # one warning per reason
    result = runner.invoke(main, ["--lake", str(lake), "read", str(bad), "--strict", "--again"])
    assert result.exit_code == 2 and "--strict" in result.output
    result = runner.invoke(main, ["--lake", str(lake), "read", "--format", "nfdump-csv", str(EXAMPLE)])
    assert result.exit_code == 2 and "lacks the columns a nfdump CSV must have" in " ".join(result.output.split())
    result = runner.invoke(
        main, ["--lake", str(lake), "read", "--format", "cic-csv", str(EXAMPLE), "--tz", "Mars/Base"]
    )
    assert result.exit_code == 2 and "unknown time zone" in result.output


@pytest.mark.parametrize("chunk_bytes", [7, 64, 200, 1 << 20])
@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b""])
def test_chunk_boundaries_do_not_change_the_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int, ending: bytes
) -> None:
    """Blocks cut anywhere (inside lines, CRLF pairs, the header), with or without a final newline, plain or
    gzip: the same rows."""
    expected = textual(read_all(EXAMPLE)[0]).to_pylist()
    lines = EXAMPLE.read_bytes().splitlines()
    data = b"\n".join(lines).replace(b"\n", ending or b"\n") + ending
    monkeypatch.setattr(line_input, "CHUNK_BYTES", chunk_bytes)
    for name, content in (("plain.csv", data), ("packed.csv.gz", gzip.compress(data))):
        path = tmp_path / name
        path.write_bytes(content)
        assert textual(read_all(path)[0]).to_pylist() == expected


def test_address_column_counts_unreadable_text() -> None:
    """Addresses come as raw bytes; text that is not an address (also blank text in a present cell) is a bad
    row, a missing cell is not."""
    raw = pa.array([b"10.0.0.1", b"2001:DB8::1", b"nope", b"", None, b" 10.0.0.2 ", b"10.0.0.256"], pa.binary())
    stored, bad = values.to_address(raw)
    assert addresses.format_text(stored).to_pylist() == ["10.0.0.1", "2001:db8::1", None, None, None, "10.0.0.2", None]
    assert bad is not None and bad.tolist() == [False, False, True, True, False, False, True]


def test_cic_time_patterns_mixed_in_one_chunk(tmp_path: Path) -> None:
    path = tmp_path / "times.csv"
    path.write_text(
        "Source IP,Destination IP,Destination Port,Timestamp\n"
        "10.0.0.1,10.0.0.2,80,26/04/201711:11:17\n"
        "10.0.0.1,10.0.0.2,80,3/7/2017 8:55\n"
        "10.0.0.1,10.0.0.2,80,3/7/2017 8:55:01 PM\n"
        "10.0.0.1,10.0.0.2,80,2017-07-03 08:55:02\n"
    )
    table, _ = read_all(path)
    starts = [t.isoformat() for t in pc.cast(table["time_flow_start"], pa.timestamp("s", "UTC")).to_pylist()]
    assert starts == [
        "2017-04-26T11:11:17+00:00",
        "2017-07-03T08:55:00+00:00",
        "2017-07-03T20:55:01+00:00",
        "2017-07-03T08:55:02+00:00",
    ]


def test_times_in_runs_read_as_row_by_row() -> None:
    """A sorted export's times come in runs and are read once per run; shuffled, once per distinct text."""
    texts = ["26/04/201711:11:17"] * 9 + [None] * 3 + ["26/04/201711:11:18", "bad", "bad", "26/04/201711:11:18"]
    texts += ["26/04/201711:11:19"] * 20
    pattern = "%d/%m/%Y%H:%M:%S"
    for order in (range(len(texts)), np.random.default_rng(0).permutation(len(texts))):
        shown = [texts[i] for i in order]
        raw = pa.array([None if t is None else t.encode() for t in shown], pa.binary())
        times, bad = values.to_timestamp(raw, (pattern,), "UTC")
        expected = pc.strptime(pa.array(shown, pa.string()), format=pattern, unit="ns", error_is_null=True)
        assert times.to_pylist() == pc.cast(expected, times.type).to_pylist()
        assert bad is not None and bad.tolist() == [t == "bad" for t in shown]


def test_rows_that_are_not_utf8_are_counted_and_skipped(tmp_path: Path) -> None:
    """A byte that is not UTF-8 costs its row (counted, shown escaped), not the read; --strict names the row."""
    from click.testing import CliRunner

    from flowscope.cli import main

    good = (Path(__file__).parent / "data" / "unicauca11_example.csv").read_bytes().splitlines(keepends=True)
    bad = [*good[:3], b"10.0.0.1,1,192.0.2.1,443,6,26/04/201711:00:00,1,1,1,5\xff\xfe,1\n", *good[3:5]]
    bad += [b"10.0.0.\xe91,1,192.0.2.1,443,6,26/04/201711:00:00,1,1,1,5,1\n"]
    path = tmp_path / "bad.csv"
    path.write_bytes(b"".join(bad))
    result = CliRunner().invoke(main, ["--lake", str(tmp_path / "lake"), "read", str(path)])
    said = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "4 flows from 1 input(s)" in said and "2 rows skipped: row is not UTF-8 text" in said
    assert "\\xff\\xfe" in said
    strict = CliRunner().invoke(main, ["--lake", str(tmp_path / "l2"), "read", str(path), "--strict"])
    assert strict.exit_code == 2 and "near data row 3: row is not UTF-8 text" in strict.output


def test_flowscope_csv_reads_back_as_written(tmp_path: Path) -> None:
    """``read -o x.csv`` / ``query --format csv`` output is itself a flow CSV: every flow-schema value survives."""
    from flowscope.sinks.files import FileSink
    from helpers import flows

    original = flows(50)
    for name, values_ in (
        ("src_mac", pa.array(np.arange(50, dtype=np.uint64) * 0x10101)),
        ("community_id", pa.array([f"1:{i:027d}=" for i in range(50)])),
        ("sampling_rate", pa.array(np.full(50, 64, np.uint64))),
    ):
        original = original.set_column(original.schema.get_field_index(name), name, values_)
    original = conform(original)
    sink = FileSink(tmp_path / "own.csv")
    sink.write(original)
    sink.close()
    read = pa.concat_tables(list(CsvFlowSource([tmp_path / "own.csv"], TextOptions())))
    assert read.select(FLOW_SCHEMA.names).equals(original)


def test_iso_shaped_times_that_are_no_time_are_counted() -> None:
    """Found by fuzzing (fuzz/targets/csv.py): an ISO-shaped time beyond the nanosecond range or on no
    calendar day raised ArrowInvalid out of the read; each is now one unreadable value among readable ones."""
    shown = ["2024-05-01 13:00:00", "1007-06-13 08:06:49", "2024-02-30 10:00:00", "2024-05-01T13:00:00.5", "x"]
    raw = pa.array([t.encode() for t in shown], pa.binary())
    times, bad = values.to_timestamp(raw, (), "UTC")
    assert times.to_pylist()[0] is not None and times.to_pylist()[3] is not None
    assert times.to_pylist()[1:3] == [None, None]
    assert bad is not None and bad.tolist() == [False, True, True, False, True]


def test_epoch_times_beyond_the_nanosecond_range_are_counted() -> None:
    """Found by fuzzing (fuzz/targets/csv.py): epoch seconds of 1.6e23 raised ArrowInvalid (float truncated
    converting to int64); such a value, and NaN or inf, is now one unreadable value of its row."""
    for raw in (
        pa.array([b"1653637473.475", b"165363746553638089129984", b"nan", b"-inf", b"x"], pa.binary()),
        pa.array([1653637473.475, 1.6e23, float("nan"), float("-inf"), None], pa.float64()),
    ):
        times, bad = values.to_epoch_timestamp(raw)
        assert times.to_pylist()[0] is not None and times.to_pylist()[1:] == [None] * 4
        assert bad is not None and bad.tolist() == [False, True, True, True, raw[4].is_valid]


def test_padded_numbers_are_read_and_garbage_counted() -> None:
    """Found by fuzzing (fuzz/targets/csv.py): ' .000' matched the number pattern (which allows padding) but
    not pyarrow's cast, and the ArrowInvalid aborted the read; padded numbers are now read as numbers."""
    for raw in (pa.array([" .000", "5 ", "x", None]), pa.array([b" .000", b"5 ", b"x", None], pa.binary())):
        numbers, bad = values.to_float(raw)
        assert numbers.to_pylist() == [0.0, 5.0, None, None]
        assert bad is not None and bad.tolist() == [False, False, True, False]


def test_header_names_stay_unique_when_a_suffix_is_taken(tmp_path: Path) -> None:
    """Found by fuzzing (fuzz/targets/csv.py): a header ``0, 0, 0_1`` named two columns ``0_1`` and pyarrow's
    KeyError ("exists 2 times") ended the read; the repeat now counts on to a free name."""
    from flowscope.csvflows.header import normalised_names

    assert normalised_names(["Fwd Header Length", "Fwd Header Length"]) == ["fwd_header_length", "fwd_header_length_1"]
    assert normalised_names(["0", "0", "0_1", "", ""]) == ["0", "0_1", "0_1_1", "column", "column_1"]
    path = tmp_path / "repeats.csv"
    header, row = EXAMPLE.read_text().splitlines()[:2]
    path.write_text(f"{header},0,0,0_1\n{row},1,2,3\n")
    table, _ = read_all(path)
    assert table.num_rows == 1 and table.column("dst_port").to_pylist() == [3128]
    assert [table.column(name).to_pylist() for name in ("0", "0_1", "0_1_1")] == [[1.0], [2.0], [3.0]]


def test_a_gzip_bomb_is_one_clear_error_in_bounded_memory(tmp_path: Path) -> None:
    """256 MiB of zero bytes (no newline) behind a good row, from 250 kB of gzip: each 16 MiB read was inflated
    whole and the endless line gathered in memory. Inflated in pieces now, and a line past 16 MiB is an error."""
    import tracemalloc

    header, row = EXAMPLE.read_text().splitlines()[:2]
    path = tmp_path / "bomb.csv.gz"
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(f"{header}\n{row}\n".encode())
        for _ in range(256):
            out.write(bytes(1 << 20))
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(FlowscopeError, match="a line longer than 16 MiB: not flow records"):
            read_all(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 128 << 20


def test_inflating_yields_bounded_pieces_and_every_gzip_member(tmp_path: Path) -> None:
    (tmp_path / "any").write_bytes(b"")
    raw = line_input.LineInput(tmp_path / "any")
    members = [gzip.compress(b"a" * (40 << 20)), gzip.compress(b"tail\n")]
    pieces = list(raw._inflated(iter([members[0][:1000], members[0][1000:] + members[1]])))
    assert max(map(len, pieces)) <= line_input.CHUNK_BYTES
    assert b"".join(pieces) == b"a" * (40 << 20) + b"tail\n"


def test_a_ragged_row_that_is_not_utf8_is_counted_and_skipped(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """The issue's case, met again by fuzzing: a row with the wrong number of fields that is not UTF-8 made
    pyarrow print "Exception ignored ... UnicodeDecodeError" and fail the read (exit 2). Rows that are not
    UTF-8 now leave the chunk before pyarrow sees it; many bad bytes no longer take quadratic time."""
    header, row = EXAMPLE.read_text().splitlines()[:2]
    bad = b"1,2,\xd0\xd0,3\n" + b"\xff," * 20_000 + b"\n"
    path = tmp_path / "ragged.csv"
    path.write_bytes(f"{header}\n{row}\n".encode() + bad + f"{row}\n".encode())
    table, source = read_all(path)
    assert table.num_rows == 2
    assert dict(source.skips.counts) == {"row is not UTF-8 text": 2}
    assert "Exception ignored" not in capfd.readouterr().err


def test_chunks_parsed_in_blocks_keep_row_numbers_and_long_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk is parsed in blocks on pyarrow's threads: a ragged row is skipped as before, --strict still names
    its row (the chunk is parsed again on one thread to learn it), and a line longer than a block is read."""
    header, *rows = EXAMPLE.read_text().splitlines()
    body = [rows[i % len(rows)] for i in range(400)]
    body[299] += ",7"  # ragged: data row 300
    first = body[350].split(",")
    body[350] = ",".join([" " * 5000 + first[0], *first[1:]])  # longer than a block
    path = tmp_path / "blocks.csv"
    path.write_text("\n".join([header, *body]) + "\n")
    whole, _ = read_all(path)
    monkeypatch.setattr(csv_reader, "MIN_BLOCK_BYTES", 1024)  # the 40 kB chunk becomes 4 blocks of 10 kB
    blocked, source = read_all(path)
    assert blocked.equals(whole) and blocked.num_rows == 399
    assert source.skips.counts == {"row with the wrong number of fields": 1}
    with pytest.raises(FlowscopeError, match="near data row 300: row with the wrong number of fields"):
        read_all(path, strict=True)
