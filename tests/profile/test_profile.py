"""flowscope profile against ft-profiler's integration oracle and a record-at-a-time model of ft-profiler."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from tests.conftest import require_tool, shared_data
from tests.profile import ftprofiler_reference as ref

from flowscope import addresses
from flowscope.cli import main
from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError
from flowscope.lake import LakeWriter
from flowscope.lake.layout import Lake
from flowscope.profile import merge as merge_module
from flowscope.profile import output
from flowscope.profile import records as extract
from flowscope.profile.merge import Timeouts, merge
from flowscope.profile.output import COLUMNS, suppress_rare_ports, to_table, write_profile
from flowscope.schema import TIMESTAMP, conform

ORACLE = ("profile", "ftprofiler")
HEADER = ",".join(COLUMNS)


def run_cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def profile_lines(path: Path) -> tuple[str, list[str]]:
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    lines = text.splitlines()
    return lines[0], sorted(lines[1:])


def test_ftprofiler_integration_oracle(tmp_path: Path) -> None:
    out = tmp_path / "profile.csv"
    run_cli("profile", str(shared_data(*ORACLE, "csv_basic_input.csv")), "-o", str(out))
    header, rows = profile_lines(out)
    expected_header, expected_rows = profile_lines(shared_data(*ORACLE, "csv_basic_profile.csv"))
    assert header == expected_header == HEADER
    assert rows == expected_rows


def test_gzip_appends_suffix_and_keeps_rows(tmp_path: Path) -> None:
    out = tmp_path / "profile.csv"
    run_cli("profile", str(shared_data(*ORACLE, "csv_basic_input.csv")), "-o", str(out), "-g")
    assert not out.exists()
    _, rows = profile_lines(tmp_path / "profile.csv.gz")
    assert rows == profile_lines(shared_data(*ORACLE, "csv_basic_profile.csv"))[1]


def test_reference_model_reproduces_the_oracle() -> None:
    flows = ref.read_csv(shared_data(*ORACLE, "csv_basic_input.csv"))
    rows = sorted(f.row() for f in ref.profile(flows, 30_000, 300_000, 2048 * 4096))
    assert rows == profile_lines(shared_data(*ORACLE, "csv_basic_profile.csv"))[1]


# --- random inputs against the model -------------------------------------------------------------

HOSTS = ["10.0.0.1", "10.0.0.2", "10.0.0.10", "192.168.1.5", "2001:db8::1", "2001:db8::2"]


def ftprofiler_ms(duration_ms: int) -> int:
    """What ft-profiler's nfdump reader makes of a duration printed by nfdump as %.3f seconds."""
    return int(float(f"{duration_ms / 1000:.3f}") * 1000)


def random_records(seed: int, n: int) -> list[tuple]:
    """(start_ms, duration_ms, proto, src, dst, sport, dport, packets, bytes), roughly time ordered."""
    rng = random.Random(seed)
    out = []
    clock = 1_700_000_000_000
    for _ in range(n):
        clock += rng.choice([0, 1, 5, 50, 900, 4_000, 20_000, 45_000])
        v6 = rng.random() < 0.2
        pool = HOSTS[4:] if v6 else HOSTS[:4]
        src, dst = rng.sample(pool, 2)
        proto = rng.choice([6, 6, 17, 17, 1, 58] if v6 else [6, 6, 17, 17, 1])
        sport, dport = rng.choice([80, 53, 40000, 40001]), rng.choice([80, 53, 40000])
        duration = rng.choice([0, 1, 1001, 2_999, 60_000, 280_000, 299_999, 301_000])
        start = clock - rng.randint(0, 3_000)
        packets = rng.choice([1, 1, 2, 3, 10])
        out.append((start, duration, proto, src, dst, sport, dport, packets, packets * rng.randint(40, 1500)))
    return out


def as_table(rows: list[tuple]) -> pa.Table:
    start = np.array([r[0] for r in rows], np.int64) * 1_000_000
    end = start + np.array([r[1] for r in rows], np.int64) * 1_000_000
    return conform(
        pa.table(
            {
                "time_flow_start": pa.array(start).cast(TIMESTAMP),
                "time_flow_end": pa.array(end).cast(TIMESTAMP),
                "proto": pa.array([r[2] for r in rows], pa.uint8()),
                "src_addr": addresses.parse_text(pa.array([r[3] for r in rows])),
                "dst_addr": addresses.parse_text(pa.array([r[4] for r in rows])),
                "src_port": pa.array([r[5] for r in rows], pa.uint16()),
                "dst_port": pa.array([r[6] for r in rows], pa.uint16()),
                "packets": pa.array([r[7] for r in rows], pa.uint64()),
                "bytes": pa.array([r[8] for r in rows], pa.uint64()),
            }
        )
    )


def model_rows(rows: list[tuple], timeouts: Timeouts, limit: int) -> list[str]:
    zero = rows[0][0]
    flows = [
        ref.Flow(s - zero, s + ftprofiler_ms(d) - zero, proto, src, dst, sp, dp, pk, by)
        for s, d, proto, src, dst, sp, dp, pk, by in rows
    ]
    return sorted(f.row() for f in ref.profile(flows, timeouts.inactive_ms, timeouts.active_ms, limit))


def our_rows(table: pa.Table, timeouts: Timeouts, limit: int) -> list[str]:
    records = extract.from_batch(table, Skips(), exact_start=True)
    zero = records.start[0]
    result = merge(records, timeouts, limit)
    result.start -= zero
    result.end -= zero
    return sorted(",".join(str(v) for v in row.values()) for row in to_table(result).to_pylist())


@pytest.mark.parametrize("seed", range(8))
def test_random_inputs_match_the_model(seed: int) -> None:
    rows = random_records(seed, 3_000)
    timeouts = Timeouts(300_000, 30_000)
    assert our_rows(as_table(rows), timeouts, 10**9) == model_rows(rows, timeouts, 10**9)


def test_small_chunks_give_the_same_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = random_records(21, 3_000)
    timeouts = Timeouts(300_000, 30_000)
    monkeypatch.setattr(merge_module, "CHUNK_RECORDS", 97)
    assert our_rows(as_table(rows), timeouts, 10**9) == model_rows(rows, timeouts, 10**9)


@pytest.mark.parametrize(("seed", "active", "inactive"), [(11, 60_000, 10_000), (12, 10_000, 2_000), (13, 600_000, 1)])
def test_other_timeouts_match_the_model(seed: int, active: int, inactive: int) -> None:
    rows = random_records(seed, 2_000)
    timeouts = Timeouts(active, inactive)
    assert our_rows(as_table(rows), timeouts, 10**9) == model_rows(rows, timeouts, 10**9)


@pytest.mark.parametrize("seed", range(4))
def test_full_cache_evictions_match_the_model(seed: int) -> None:
    rows = random_records(100 + seed, 1_500)
    timeouts = Timeouts(20_000, 5_000)
    limit = 40 + seed * 7
    assert our_rows(as_table(rows), timeouts, limit) == model_rows(rows, timeouts, limit)


def test_full_cache_without_old_flows_is_a_clear_error() -> None:
    rows = [(1_700_000_000_000 + i, 0, 6, "10.0.0.1", "10.0.0.2", 1000 + i, 80, 1, 60) for i in range(50)]
    timeouts = Timeouts(300_000, 30_000)
    with pytest.raises(ref.CacheFull):
        model_rows(rows, timeouts, 10)
    with pytest.raises(FlowscopeError, match="flow cache is full"):
        our_rows(as_table(rows), timeouts, 10)


def test_csv_time_arithmetic_follows_ftprofilers_reader() -> None:
    # 1653637473.475 * 1000 is 1653637473474.9998 as a double: ft-profiler truncates it to ...474
    start_ns = np.array([1_653_637_473_475_000_000, 1_653_637_469_813_000_000])
    end_ns = start_ns + np.array([1_001_000_000, 0])
    start, end = extract.milliseconds(start_ns, end_ns, exact_start=False)
    assert list(start) == [int(1653637473.475 * 1000), int(1653637469.813 * 1000)]
    assert list(end - start) == [int(1.001 * 1000), 0]
    exact, _ = extract.milliseconds(start_ns, end_ns, exact_start=True)
    assert list(exact) == [1_653_637_473_475, 1_653_637_469_813]


# --- nfdump input: the same rows ft-profiler computes from nfdump's own decode ---------------------


def nfdump_json_rows(records: list[dict]) -> list[tuple]:
    def ms(text: str) -> int:
        return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000 + 0.5)

    out = []
    for r in records:
        first, last = ms(r["first"]), ms(r["last"])
        src = r.get("src4_addr") or r.get("src6_addr")
        dst = r.get("dst4_addr") or r.get("dst6_addr")
        out.append(
            (
                first,
                last - first,
                r["proto"],
                src,
                dst,
                r.get("src_port", 0),
                r.get("dst_port", 0),
                r["in_packets"],
                r["in_bytes"],
            )
        )
    return out


@pytest.mark.parametrize("name", ["nfv5_mixed", "ipfix_mixed"])
def test_nfdump_input_matches_the_model_on_nfdumps_decode(tmp_path: Path, name: str) -> None:
    expected = json.loads(shared_data("nfcapd", f"{name}.expected.json").read_text())
    # records ending before they start (two ICMP records of ipfix_mixed) keep their negative duration:
    # see docs/PROFILE.md for how ft-profiler differs there
    rows = nfdump_json_rows(expected)
    out = tmp_path / "p.csv"
    run_cli("profile", str(shared_data("nfcapd", f"{name}.nfcapd")), "-o", str(out))
    assert profile_lines(out)[1] == model_rows(rows, Timeouts(300_000, 30_000), 10**9)


@pytest.mark.integration
def test_nfdump_binary_decode_gives_the_same_profile(tmp_path: Path) -> None:
    nfdump = require_tool("nfdump")
    path = shared_data("nfcapd", "nfv5_mixed_lz4.nfcapd")
    text = subprocess.run(
        [nfdump, "-r", str(path), "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"TZ": "UTC"},
    ).stdout
    rows = nfdump_json_rows(json.loads(text))
    out = tmp_path / "p.csv"
    run_cli("profile", str(path), "-o", str(out))
    assert profile_lines(out)[1] == model_rows(rows, Timeouts(300_000, 30_000), 10**9)


# --- options, report, lake, bad input -----------------------------------------------------------


def test_min_count_zeroes_rare_ports() -> None:
    rows = [(1_700_000_000_000 + i * 100_000, 0, 6, "10.0.0.1", "10.0.0.2", 40_000 + i, 443, 1, 60) for i in range(5)]
    records = extract.from_batch(as_table(rows), Skips(), exact_start=True)
    result = merge(records, Timeouts(300_000, 30_000), 10**6)
    assert suppress_rare_ports(result, 3) == 5
    assert set(result.src_port.tolist()) == {0}
    assert set(result.dst_port.tolist()) == {443}


def test_report_and_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out, png = tmp_path / "p.csv", tmp_path / "p.png"
    text = run_cli(
        "profile",
        str(shared_data(*ORACLE, "csv_basic_input.csv")),
        "-o",
        str(out),
        "--report",
        "--plot",
        str(png),
        "--min-count",
        "2",
    )
    assert "protocol mix" in text and "inter-start time" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lake_input(tmp_path: Path) -> None:
    rows = random_records(7, 500)
    lake = tmp_path / "lake"
    writer = LakeWriter(Lake.at(lake))
    writer.write(as_table(rows))
    writer.close()
    out = tmp_path / "p.csv"
    run_cli("profile", "--from-lake", "--lake", str(lake), "--filter", "proto = 6", "-o", str(out))
    header, lines = profile_lines(out)
    assert header == HEADER
    assert lines and all(line.split(",")[3] == "6" for line in lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["profile", "-o", "x.csv"], "INPUT files/directories or --from-lake"),
        (["profile", "missing.nfcapd", "-o", "x.csv"], "no such file"),
        (["profile", "a", "-o", "x.csv", "--since", "1d"], "--from-lake"),
    ],
)
def test_bad_invocations_are_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("a").write_text("x")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert message in result.output


def test_rows_without_addresses_are_counted(tmp_path: Path) -> None:
    table = as_table(random_records(3, 10))
    table = table.set_column(
        table.schema.get_field_index("src_addr"),
        "src_addr",
        pa.array([None] * 3 + [addresses.parse_one("10.0.0.1")] * 7, pa.binary(16)),
    )
    skips = Skips()
    records = extract.from_batch(table, skips, exact_start=True)
    assert len(records) == 7
    assert skips.total == 3


@pytest.mark.parametrize("collide", [False, True])
def test_key_order_groups_keys_in_input_order(monkeypatch: pytest.MonkeyPatch, collide: bool) -> None:
    records = extract.from_batch(as_table(random_records(5, 6)), Skips(), exact_start=True)
    records.key = np.array([[7, 1], [7, 2], [7, 1], [3, 9], [7, 2], [3, 9]], np.uint64)
    if collide:  # every key mixes to the same value: the full 128-bit sort must take over
        monkeypatch.setattr(merge_module, "mix64", lambda values: np.zeros_like(values))
    order, key_first = merge_module.key_order(records)
    groups = np.split(order, np.flatnonzero(key_first)[1:])
    assert sorted(g.tolist() for g in groups) == [[0, 2], [1, 4], [3, 5]]


def test_key_order_regroups_only_clashing_mixes(monkeypatch: pytest.MonkeyPatch) -> None:
    records = extract.from_batch(as_table(random_records(6, 3_000)), Skips(), exact_start=True)

    def groups() -> list[list[int]]:
        order, key_first = merge_module.key_order(records)
        return sorted(g.tolist() for g in np.split(order, np.flatnonzero(key_first)[1:]))

    expected = groups()
    # only 8 distinct mixes: most groups of equal high bits hold several keys, interleaved until re-sorted
    monkeypatch.setattr(merge_module, "mix64", lambda values: (values % np.uint64(8)) << np.uint64(61))
    assert groups() == expected
    assert all(g == sorted(g) for g in expected)


def test_ipv4_keys_are_encoded_exactly_and_others_hashed() -> None:
    rows = [
        (1_700_000_000_000, 0, 6, "10.0.0.2", "10.0.0.1", 80, 40000, 1, 60),
        (1_700_000_000_001, 0, 6, "2001:db8::1", "10.0.0.1", 80, 40000, 1, 60),
    ]
    key = extract.from_batch(as_table(rows), Skips(), exact_start=True).key
    assert key[0].tolist() == [(0x0A000001 << 32) | 0x0A000002, (40000 << 24) | (80 << 8) | 6]
    assert key[1, 1] >> 63 == 1


@pytest.mark.parametrize("rounds", [0, 1, 2])
def test_keys_left_after_the_rounds_finish_sequentially(monkeypatch: pytest.MonkeyPatch, rounds: int) -> None:
    rows = random_records(31 + rounds, 2_000)
    timeouts = Timeouts(300_000, 30_000)
    monkeypatch.setattr(merge_module, "MAX_ROUNDS", rounds)
    assert our_rows(as_table(rows), timeouts, 10**9) == model_rows(rows, timeouts, 10**9)


def test_long_chains_of_one_key_match_the_model() -> None:
    # every merge decision depends on the previous one: the rounds give up, the sequential pass finishes
    base = 1_700_000_000_000
    rows = [(base + i * 25_000, 0, 17, "10.0.0.1", "10.0.0.2", 5000, 5000, 2, 100) for i in range(3_000)]
    rows += [(base + i * 10_000, 0, 17, "10.0.0.3", "10.0.0.4", 53, 53, 1 if i % 40 else 2, 90) for i in range(3_000)]
    timeouts = Timeouts(300_000, 30_000)
    assert our_rows(as_table(rows), timeouts, 10**9) == model_rows(rows, timeouts, 10**9)


def test_bad_csv_rows_are_counted_not_fatal(tmp_path: Path) -> None:
    source = shared_data(*ORACLE, "csv_basic_input.csv").read_text().splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([*source[:3], "1653637473.475,0.000,6,not-an-ip,10.0.0.1,1,2,3,4", *source[3:]]) + "\n")
    out = tmp_path / "p.csv"
    result = CliRunner().invoke(main, ["profile", str(bad), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output
    assert profile_lines(out)[1] == profile_lines(shared_data(*ORACLE, "csv_basic_profile.csv"))[1]


def test_csv_pieces_make_the_same_bytes_as_one_piece(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = random_records(5, 3000)
    profile = merge(extract.from_batch(as_table(rows), Skips(), exact_start=True), Timeouts(300_000, 30_000), 1 << 20)
    whole = write_profile(profile, tmp_path / "whole.csv", compress=False).read_bytes()
    monkeypatch.setattr(output, "PIECE_ROWS", 7)
    assert write_profile(profile, tmp_path / "pieces.csv", compress=False).read_bytes() == whole


@pytest.mark.parametrize("threads", [2, 3])
def test_sort_on_threads_equals_one_sort(monkeypatch: pytest.MonkeyPatch, threads: int) -> None:
    monkeypatch.setattr(merge_module, "PARALLEL_SORT_MIN", 1)
    monkeypatch.setattr(merge_module.parallel, "THREADS", threads)
    values = np.random.default_rng(5).integers(0, 2**64 - 1, 10_001, dtype=np.uint64)
    values[::7] = values[3]  # repeated words too
    expected = np.sort(values)
    merge_module._sort(values)
    assert np.array_equal(values, expected)
