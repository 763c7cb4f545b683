"""``read ONE.pcap --workers N``: one classic pcap file metered in spans gives exactly one meter's flows, also when
a guessed record start is false, the last record is cut, a span holds no record start or a record is corrupt;
Ctrl-C stops the workers as with rotated files."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from tests.capture.frame_builders import ether, ipv4, pcapng_epb, pcapng_idb, pcapng_shb, udp
from tests.jobs.interrupted import assert_ctrl_c_stops_the_workers
from tests.jobs.rotated import ORDER

from flowscope.capture import pcap
from flowscope.capture.options import MeterOptions
from flowscope.capture.source import CaptureSource
from flowscope.cli import main
from flowscope.demo.pcap import write_synthetic_pcap
from flowscope.jobs.pool import PooledCaptureSource, Workers, pooled_runs
from flowscope.jobs.split import split_file

OPTIONS = MeterOptions(active=20, idle=5)
SPAN = 64 << 10  # bytes per span at least: small files still make several spans
START_S = 1_700_000_000


def demo_capture(path: Path, *, snaplen: int = 65535, order: str = "<", nanosecond: bool = False) -> Path:
    """A ``flowscope.demo.pcap`` capture (60 s, 3,000 packets), in the byte order and time unit asked for."""
    write_synthetic_pcap(path, packets=3000, flows=300, duration=60.0, snaplen=snaplen, clients=500, servers=50)
    if order != "<" or nanosecond:
        path.write_bytes(rewritten(path.read_bytes(), order, nanosecond))
    return path


def rewritten(data: bytes, order: str, nanosecond: bool) -> bytes:
    """A little-endian microsecond pcap file in another byte order and time unit (same packets)."""
    _, major, minor, zone, sigfigs, snaplen, linktype = struct.unpack("<IHHiIII", data[:24])
    magic = pcap.MAGIC_NANO if nanosecond else pcap.MAGIC_MICRO
    out = [struct.pack(order + "IHHiIII", magic, major, minor, zone, sigfigs, snaplen, linktype)]
    at = 24
    while at + 16 <= len(data):
        seconds, micros, caplen, wire = struct.unpack("<IIII", data[at : at + 16])
        fraction = micros * 1000 if nanosecond else micros
        out.append(struct.pack(order + "IIII", seconds, fraction, caplen, wire) + data[at + 16 : at + 16 + caplen])
        at += 16 + caplen
    return b"".join(out)


def record_starts(data: bytes) -> set[int]:
    """Every record's offset in a little-endian pcap file, walked one by one."""
    starts, at = set(), 24
    while at + 16 <= len(data):
        starts.add(at)
        at += 16 + struct.unpack("<I", data[at + 8 : at + 12])[0]
    return starts


def canonical(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables).drop_columns(["time_received"]).sort_by([(name, "ascending") for name in ORDER])


def one_meter(path: Path) -> tuple[pa.Table, dict[str, int]]:
    source = CaptureSource([path], OPTIONS)
    return canonical(list(source)), dict(source.skips.counts)


def in_spans(path: Path, workers: int, span: int = SPAN) -> tuple[pa.Table, dict[str, int], PooledCaptureSource]:
    planned = pooled_runs([path], workers, min_span_bytes=span)
    assert planned is not None and len(planned) >= 2
    source = PooledCaptureSource([path], OPTIONS, planned, asked=len(planned))
    return canonical(list(source)), dict(source.skips.counts), source


def assert_same_as_one_meter(path: Path, workers: int, span: int = SPAN) -> PooledCaptureSource:
    (flows, skips, source), (expected, expected_skips) = in_spans(path, workers, span), one_meter(path)
    assert flows.num_rows and flows.equals(expected)
    assert skips == expected_skips
    done, total = source.progress()
    assert done == total == path.stat().st_size
    return source


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize(
    "shape",
    [{}, {"snaplen": 96}, {"order": ">"}, {"nanosecond": True}, {"snaplen": 96, "order": ">", "nanosecond": True}],
    ids=["whole", "cut", "big-endian", "nanosecond", "cut-big-endian-nanosecond"],
)
def test_spans_of_one_file_give_one_meters_flows(tmp_path: Path, workers: int, shape: dict) -> None:
    capture = demo_capture(tmp_path / "demo.pcap", **shape)
    source = assert_same_as_one_meter(capture, workers, span=capture.stat().st_size // 4)
    assert len(source.workers.runs) == workers and source.workers.false_start is None


def test_gzip_pcapng_and_small_files_stay_one_run(tmp_path: Path, monkeypatch) -> None:
    capture = demo_capture(tmp_path / "demo.pcap")
    assert split_file(capture, 2) is None  # 3,000 records: far fewer than MIN_SPAN_RECORDS per span
    monkeypatch.setattr("flowscope.jobs.split.MIN_SPAN_RECORDS", 1000)
    spans = split_file(capture, 4)
    assert spans is not None and len(spans) == 3  # as many spans as 1,000 records fill
    assert split_file(capture, 2, min_bytes=capture.stat().st_size // 2 + 1) is None  # too small for two spans
    assert split_file(capture, 1, min_bytes=1) is None
    zipped = tmp_path / "demo.pcap.gz"
    zipped.write_bytes(gzip.compress(capture.read_bytes()))
    assert split_file(zipped, 2, min_bytes=1) is None
    frame = ether(ipv4(udp(1, 2, bytes(600)), 17, "10.0.0.1", "10.0.0.2"))
    pcapng = tmp_path / "demo.pcapng"
    pcapng.write_bytes(pcapng_shb() + pcapng_idb() + b"".join(pcapng_epb(0, i, frame) for i in range(400)))
    assert split_file(pcapng, 2, min_bytes=1) is None
    assert pooled_runs([pcapng], 2, min_span_bytes=1) is None  # the one-process reader takes it


def test_a_false_guess_is_caught_and_the_rest_metered_in_one_run(tmp_path: Path) -> None:
    """Every packet carries a chain of fake record headers in its payload, so the first plausible chain past a
    cut is nearly always a fake one: the run before does not land on it, and the result is still exact."""
    fake = b"".join(struct.pack("<IIII", START_S + 5, 1000, 8, 8) + bytes(8) for _ in range(20))
    frames = [ether(ipv4(udp(1000 + i % 50, 53, fake), 17, "10.0.0.1", f"10.0.1.{i % 7}")) for i in range(3000)]
    capture = tmp_path / "fake.pcap"
    records = [struct.pack("<IHHiIII", pcap.MAGIC_MICRO, 2, 4, 0, 0, 65535, 1)]
    for i, frame in enumerate(frames):
        records.append(struct.pack("<IIII", START_S + i // 50, (i % 50) * 20_000, len(frame), len(frame)) + frame)
    capture.write_bytes(b"".join(records))
    planned = pooled_runs([capture], 3, min_span_bytes=SPAN)
    assert planned is not None
    guesses = [run[0].start for run in planned[1:] if isinstance(run[0], pcap.Span)]
    true_starts = record_starts(capture.read_bytes())
    false = [guess for guess in guesses if guess not in true_starts]
    assert false  # the cut past run 0 happens to fall in the last fake record: its guess is true
    source = assert_same_as_one_meter(capture, 3)
    assert source.workers.false_start == false[0]
    assert any("guessed record start" in note for note in source.notes)


def test_a_truncated_last_record_is_counted_once(tmp_path: Path) -> None:
    capture = demo_capture(tmp_path / "demo.pcap")
    capture.write_bytes(capture.read_bytes()[:-100])
    source = assert_same_as_one_meter(capture, 3)
    assert source.skips.counts["truncated last record"] == 1


def test_a_span_without_a_record_start_joins_the_one_before(tmp_path: Path) -> None:
    """Records of 60 KiB cut into spans of 16 KiB: most cuts fall inside one record, whose next record start
    several cuts share; those spans are one."""
    big = ether(ipv4(udp(1, 2, bytes(60_000)), 17, "10.0.0.1", "10.0.0.2"))
    small = ether(ipv4(udp(3, 4, bytes(100)), 17, "10.0.0.3", "10.0.0.4"))
    capture = tmp_path / "big.pcap"
    out = [struct.pack("<IHHiIII", pcap.MAGIC_MICRO, 2, 4, 0, 0, 65535, 1)]
    for i in range(40):
        frame = big if i % 4 == 0 else small
        out.append(struct.pack("<IIII", START_S + i, 0, len(frame), len(frame)) + frame)
    capture.write_bytes(b"".join(out))
    spans = split_file(capture, 40, min_bytes=16 << 10)
    assert spans is not None and 2 <= len(spans) < 40
    starts = [span.start for span in spans]
    assert starts == sorted(set(starts)) and set(starts) <= record_starts(capture.read_bytes())
    flows, skips, _ = in_spans(capture, len(spans), span=16 << 10)
    expected, expected_skips = one_meter(capture)
    assert flows.equals(expected) and skips == expected_skips


def test_a_corrupt_record_ends_the_file_as_for_one_meter(tmp_path: Path) -> None:
    capture = demo_capture(tmp_path / "demo.pcap")
    data = bytearray(capture.read_bytes())
    corrupt = sorted(at for at in record_starts(bytes(data)) if at > len(data) // 3)[0]
    data[corrupt + 8 : corrupt + 12] = struct.pack("<I", 1 << 30)  # a captured length no record has
    capture.write_bytes(bytes(data))
    (flows, skips, source), expected = in_spans(capture, 3), one_meter(capture)
    assert flows.equals(expected[0]) and skips == expected[1]
    assert source.workers.runs[1][0].start > corrupt and source.workers.false_start is None  # span 0 ended it
    assert skips["pcap record with impossible length: rest of file unreadable"] == 1


def test_read_one_file_with_workers_into_the_lake_is_one_unit(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("flowscope.jobs.split.MIN_SPAN_RECORDS", 500)
    capture = demo_capture(tmp_path / "demo.pcap")
    timeouts = ["--active", "20", "--idle", "5"]

    def read(lake: str, *args: str):
        result = CliRunner().invoke(
            main, ["--lake", str(tmp_path / lake), "read", str(capture), *timeouts, *args], catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        return result

    assert "--workers" not in read("one", "-o", str(tmp_path / "one.parquet")).output
    assert "--workers" not in read("two", "-o", str(tmp_path / "two.parquet"), "--workers", "2").output  # it was cut
    assert canonical([pq.read_table(tmp_path / "two.parquet")]).equals(
        canonical([pq.read_table(tmp_path / "one.parquet")])
    )
    read("lake", "--workers", "3")
    lake_files = sorted((tmp_path / "lake" / "flows").rglob("*.parquet"))
    assert canonical([pq.read_table(path) for path in lake_files]).equals(
        canonical([pq.read_table(tmp_path / "one.parquet")])
    )
    assert len(list((tmp_path / "lake" / "_ledger").glob("*"))) == 1  # one unit, committed once
    assert "already in the lake" in read("lake", "--workers", "2").output
    many = read("many", "-o", str(tmp_path / "64.parquet"), "--workers", "64").output
    assert re.search(r"--workers 64: \d+ processes", " ".join(many.split()))
    monkeypatch.setattr("flowscope.jobs.split.MIN_SPAN_RECORDS", 5000)  # too few records: one process, and said
    assert "--workers 2: metered in one process" in read("small", "--workers", "2").output


def test_ctrl_c_stops_the_span_workers_and_publishes_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("flowscope.jobs.split.MIN_SPAN_RECORDS", 500)
    capture = demo_capture(tmp_path / "demo.pcap")
    assert_ctrl_c_stops_the_workers(tmp_path, monkeypatch, capture)


def test_only_runs_after_a_guessed_start_wait_for_its_check(tmp_path: Path) -> None:
    """Runs of whole files stream their flows at once; a span's flows wait for the walk before it."""
    files = [tmp_path / f"f{i}" for i in range(4)]
    workers = Workers([[path] for path in files], OPTIONS)
    assert workers._verified_from(0, [False] * 4) == 3
    assert workers._verified_from(0, [False, True, True, False]) == 0
    assert workers._verified_from(2, [False, True, True, False]) == 3


def test_spans_that_cannot_be_stitched_are_one_error_naming_the_way_out(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("flowscope.jobs.split.MIN_SPAN_RECORDS", 500)
    capture = demo_capture(tmp_path / "demo.pcap")
    result = CliRunner().invoke(
        main, ["--lake", str(tmp_path / "lake"), "read", str(capture), "--workers", "2", "--max-flows", "4"]
    )
    assert result.exit_code == 2 and "this file's spans" in result.output and "--workers 1" in result.output
    assert not list((tmp_path / "lake").rglob("*.parquet"))
