"""Roll-ups: sums equal GROUP BY over raw flows, top from a roll-up equals top from raw flows, incremental
maintenance equals a rebuild, retention, table choice."""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from flowscope import spilling
from flowscope.cli import main
from flowscope.demo.traffic import synthetic_flows
from flowscope.errors import FlowscopeError
from flowscope.lake.layout import Lake
from flowscope.lake.writer import LakeWriter
from flowscope.query import open_lake
from flowscope.query.reports.top import top_sql
from flowscope.transforms.rollups import build, choose
from flowscope.transforms.rollups.build import load_state, maintain, partition_files
from flowscope.transforms.rollups.choose import choose_table
from flowscope.transforms.rollups.spec import DEFAULTS, load_rollups

END = datetime(2024, 5, 3, tzinfo=UTC)
TODAY = date(2024, 5, 3)


def _flows(count: int, seed: int) -> pa.Table:
    table = pa.concat_tables(synthetic_flows(count, end=END, days=0.5, seed=seed, batch_rows=count))
    rng = np.random.default_rng(seed)
    rates = pa.array(rng.choice([1, 1, 100, 1000, 0], count).astype(np.uint64), mask=rng.random(count) < 0.1)
    table = table.set_column(table.schema.get_field_index("sampling_rate"), "sampling_rate", rates)
    src_as = pa.array(rng.integers(0, 5, count).astype(np.uint32) + 64500)
    return table.set_column(table.schema.get_field_index("src_as"), "src_as", src_as)


def _write(lake: Path, table: pa.Table) -> None:
    with LakeWriter(lake) as writer:
        writer.write(table)


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    _write(tmp_path, _flows(20_000, 1))
    return tmp_path


def _group_by_raw(lake: Path, seconds: int, dimensions: tuple[str, ...]) -> list[tuple]:
    keys = ", ".join(dimensions)
    with open_lake(lake) as con:
        return con.sql(
            f"SELECT to_timestamp(epoch_us(time_flow_start::TIMESTAMPTZ) // {seconds * 10**6} * {seconds}), {keys}, "
            "count(*), count(*) FILTER (WHERE NOT sampling_known(sampling_rate)), "
            "sum(scaled(bytes, sampling_rate)), sum(scaled(packets, sampling_rate)), "
            "sum(scaled(bytes_rev, sampling_rate)), sum(scaled(packets_rev, sampling_rate)) "
            f"FROM flows GROUP BY ALL ORDER BY ALL"
        ).fetchall()


def _rollup_rows(lake: Path, name: str, dimensions: tuple[str, ...]) -> list[tuple]:
    keys = ", ".join(dimensions)
    with open_lake(lake) as con:
        return con.sql(
            f"SELECT time, {keys}, flows, flows_sampling_unknown, bytes, packets, bytes_rev, packets_rev "
            f"FROM {name} ORDER BY ALL"
        ).fetchall()


def test_sums_equal_group_by_over_raw_flows(lake: Path) -> None:
    results = maintain(Lake(lake), today=TODAY)
    assert [r.name for r in results] == ["flows_1m", "flows_5m", "flows_1h"]
    assert all(r.updated for r in results)
    for rollup in load_rollups(Lake(lake)):
        expected = _group_by_raw(lake, rollup.seconds, rollup.dimensions)
        assert _rollup_rows(lake, rollup.name, rollup.dimensions) == expected
        assert len(expected) > 100


def test_coarser_rollups_are_summed_from_flows_1m_when_it_is_smaller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flows = pa.concat_tables(synthetic_flows(20_000, end=END, days=0.05, seed=1, batch_rows=20_000))
    for name in ("src_as", "dst_as"):  # few groups a minute: flows_1m is much smaller than the flows
        flows = flows.set_column(flows.schema.get_field_index(name), name, pa.array(np.ones(20_000, np.uint32)))
    _write(tmp_path, flows)
    sources: list[bool] = []
    write = build.write_partition
    monkeypatch.setattr(
        build, "write_partition", lambda *args, finer=False: sources.append(finer) or write(*args, finer=finer)
    )
    results = maintain(Lake(tmp_path), today=TODAY)
    minutes = len(results[0].updated)
    assert not any(sources[:minutes]) and sources[minutes:] and all(sources[minutes:])
    for rollup in load_rollups(Lake(tmp_path)):
        expected = _group_by_raw(tmp_path, rollup.seconds, rollup.dimensions)
        assert _rollup_rows(tmp_path, rollup.name, rollup.dimensions) == expected


def test_many_groups_spill_and_sum_as_the_group_by(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Groups that summing does not shrink (a dimension with nearly a value per flow) go through the spill
    files, read back one at a time; null keys (no time, a dimension a file lacks) are groups of their own and
    a counter null in every flow of a group is null, as in SQL."""
    monkeypatch.setattr(build, "READ_ROWS", 512)
    monkeypatch.setattr(build, "HELD_ROWS", 1024)
    odd = _flows(2_000, 4).drop_columns(["vlan_id"])
    times = odd.column("time_flow_start").combine_chunks()
    odd = odd.set_column(odd.schema.get_field_index("time_flow_start"), "time_flow_start",
                         pa.array(times, mask=np.arange(len(times)) % 7 == 0))  # fmt: skip
    bytes_rev = pa.nulls(odd.num_rows, pa.uint64())
    odd = odd.set_column(odd.schema.get_field_index("bytes_rev"), "bytes_rev", bytes_rev)
    with LakeWriter(lake, conform_rows=False) as writer:
        writer.write(odd)
    dimensions = ("proto", "src_port", "vlan_id")
    _assert_spilled_rollup_is_the_group_by(lake, dimensions, monkeypatch)
    assert not list((lake / "flows_1m").rglob(".spill-*"))


def test_incremental_maintenance_equals_a_rebuild(lake: Path, tmp_path: Path) -> None:
    maintain(Lake(lake), today=TODAY)
    again = maintain(Lake(lake), today=TODAY)
    assert not any(r.updated for r in again)  # nothing changed: nothing recomputed
    late = _flows(3_000, 2)
    late = late.filter(pc.greater_equal(late.column("time_flow_start"), pa.scalar(END - timedelta(hours=2))))
    _write(lake, late)  # late data in the last two hours
    updated = maintain(Lake(lake), today=TODAY)
    assert [len(r.updated) for r in updated] == [2, 2, 1]
    incremental = {r.name: _rollup_rows(lake, r.name, r.dimensions) for r in load_rollups(Lake(lake))}
    maintain(Lake(lake), today=TODAY, rebuild=True)
    assert {r.name: _rollup_rows(lake, r.name, r.dimensions) for r in load_rollups(Lake(lake))} == incremental


def test_a_changed_definition_rebuilds(lake: Path) -> None:
    maintain(Lake(lake), today=TODAY)
    (lake / "rollups.toml").write_text('[flows_1h]\ndimensions = ["proto", "dst_port"]\nretention_days = 30\n')
    results = maintain(Lake(lake), today=TODAY)
    assert [r.rebuilt for r in results] == [False, False, True]
    assert _rollup_rows(lake, "flows_1h", ("proto", "dst_port")) == _group_by_raw(lake, 3600, ("proto", "dst_port"))


def test_retention_and_raw_retention_are_separate(lake: Path) -> None:
    (lake / "rollups.toml").write_text("[flows_1m]\nretention_days = 1\n")
    today = date(2024, 5, 2)
    maintain(Lake(lake), today=today)  # 1-day retention: today only
    with open_lake(lake) as con:
        assert con.sql("SELECT DISTINCT date FROM flows_1m").fetchall() == [(today,)]
    results = maintain(Lake(lake), today=today + timedelta(days=1))
    assert results[0].expired == ["2024-05-02"] and not results[0].updated
    assert not list((lake / "flows_1m").glob("date=*"))
    result = CliRunner().invoke(main, ["--lake", str(lake), "lake", "retain", "--days", "1"])
    assert result.exit_code == 0, result.output
    assert not list((lake / "flows").glob("date=*"))
    assert list((lake / "flows_1h").glob("date=2024-05-02"))  # raw retention leaves roll-ups alone


@pytest.mark.parametrize(
    ("bounds", "table"),
    [
        ({}, "flows_1h"),
        ({"since": END - timedelta(hours=9), "until": END - timedelta(hours=3)}, "flows_1h"),
        ({"since": END - timedelta(hours=9, minutes=17, seconds=3)}, "flows_1h"),  # raw flows for the slivers
        ({"since": END - timedelta(hours=5, minutes=10), "until": END - timedelta(hours=4, minutes=20)}, "flows_5m"),
    ],
)
def test_top_from_a_rollup_equals_top_from_raw_flows(lake: Path, bounds: dict[str, datetime], table: str) -> None:
    maintain(Lake(lake), today=TODAY)
    with open_lake(lake) as con:
        for grouping, columns in (("proto", ["proto"]), ("src-as", ["src_as"]), ("dst-as", ["dst_as"])):
            choice = choose_table(Lake(lake), columns, **bounds)
            assert choice.table == table
            for metric in ("bytes", "packets", "flows"):
                raw = con.sql(top_sql(grouping, metric, 5, **bounds)).fetchall()
                rolled = con.sql(top_sql(grouping, metric, 5, **bounds, table=table, covers=choice.covers)).fetchall()
                assert rolled == raw and raw


def test_the_coarsest_table_that_can_answer(lake: Path) -> None:
    at = Lake(lake)
    assert choose_table(at, ["proto"]).table == "flows"  # no roll-up built yet
    maintain(at, today=TODAY)
    assert choose_table(at, ["proto"]).table == "flows_1h"
    assert choose_table(at, ["proto"], since=END - timedelta(minutes=10)).table == "flows_5m"
    assert choose_table(at, ["proto"], since=END - timedelta(minutes=3)).table == "flows_1m"
    half = choose_table(at, ["proto"], since=END - timedelta(seconds=30), until=END + timedelta(seconds=30))
    assert half.table == "flows"  # no whole minute
    assert choose_table(at, ["src_addr"]).table == "flows"
    assert choose_table(at, ["proto"], where="proto = 6").table == "flows"
    _write(lake, _flows(100, 3))  # new raw data: stale until the next maintenance
    assert choose_table(at, ["proto"]).table == "flows"
    assert choose_table(at, ["proto"], since=END + timedelta(days=1)).table == "flows_1h"  # nothing new there


def test_settled_raw_directories_are_checked_by_their_times(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Raw hour directories whose times had settled when the roll-ups were made stand for their files while
    those times hold (no file is listed); a file published into one changes its time, and the roll-up is
    stale again. Directories changed just before are not trusted: their files are listed."""
    maintain(Lake(lake), today=TODAY)
    assert load_state(Lake(lake))["flows_1h"]["dirs"] == {}  # written just now: too recent to tell
    settled = time.time() - 3600
    for hour in Lake(lake).partitions("flows"):
        os.utime(hour, (settled, settled))
    maintain(Lake(lake), today=TODAY)
    listed: list[object] = []
    monkeypatch.setattr(
        choose, "partition_files", lambda lake, hours: listed.append(hours) or partition_files(lake, hours)
    )
    assert choose_table(Lake(lake), ["proto"]).table == "flows_1h"
    assert listed == []
    _write(lake, _flows(100, 3))
    assert choose_table(Lake(lake), ["proto"]).table == "flows"
    assert listed


def test_top_says_which_table_it_used(lake: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["--lake", str(lake), "rollup"]).exit_code == 0
    result = runner.invoke(main, ["--lake", str(lake), "-v", "top", "--by", "proto", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "answered from flows" in result.output  # the demo traffic is older than the roll-ups' retention


def test_a_damaged_raw_file_is_named_not_left_out(lake: Path) -> None:
    damaged = sorted((lake / "flows").rglob("*.parquet"))[0]
    damaged.write_bytes(damaged.read_bytes()[:1000])
    with pytest.raises(FlowscopeError, match=f"{damaged.name}: a damaged lake file"):
        maintain(Lake(lake), today=TODAY)


def test_bad_rollup_configuration(tmp_path: Path) -> None:
    (tmp_path / "rollups.toml").write_text('[flows_1h]\ndimensions = ["bytes"]\n')
    with pytest.raises(FlowscopeError, match="'bytes' is not a dimension"):
        load_rollups(Lake(tmp_path))
    (tmp_path / "rollups.toml").write_text("[flows_2h]\n")
    with pytest.raises(FlowscopeError, match="unknown roll-up"):
        load_rollups(Lake(tmp_path))


def test_compaction_keeps_rollups_current(tmp_path: Path) -> None:
    lake = tmp_path
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for seed in (5, 6):  # two files in each hour, so compaction merges them
        _write(lake, pa.concat_tables(synthetic_flows(500, end=end, days=0.25, seed=seed, batch_rows=500)))
    maintain(Lake(lake))
    result = CliRunner().invoke(main, ["--lake", str(lake), "lake", "compact"])
    assert result.exit_code == 0, result.output
    assert "roll-up partition(s) recomputed" in result.output
    assert choose_table(Lake(lake), ["proto"]).table == "flows_1h"


def test_store_columns_follow_the_catalogue_rules() -> None:
    from flowscope.transforms.rollups.build import store_columns

    columns = {name: (clickhouse, postgres) for name, clickhouse, postgres in store_columns(DEFAULTS[2])}
    assert columns["time"] == ("Nullable(UInt64)", "timestamp with time zone")
    assert columns["sampler_address"] == ("Nullable(FixedString(16))", "inet")
    assert columns["src_as"] == ("Nullable(UInt32)", "bigint")
    assert columns["bytes"] == ("Nullable(UInt64)", "bigint")


def test_sums_stay_exact_beyond_one_float_pass() -> None:
    """One group of more rows than a float64 pass can sum exactly (2**21 values near 2**32 pass 2**53): the
    PostgreSQL sink groups whole batches."""
    rollup = next(r for r in DEFAULTS if r.name == "flows_1m")
    n = 2**21 + 3
    start = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)
    flows = pa.table(
        {
            "time_flow_start": pa.array(np.full(n, int(start.timestamp() * 1e9)), pa.timestamp("ns", tz="UTC")),
            "sampling_rate": pa.array(np.ones(n, np.uint64)),
            "bytes": pa.array(np.full(n, 2**32 - 1, np.uint64)),
            "packets": pa.array(np.full(n, 2**63 + 1, np.uint64)),
        }
    )
    rows = build.group_flows(rollup, flows)
    assert rows.num_rows == 1
    assert rows.column("flows").to_pylist() == [n]
    assert rows.column("bytes").to_pylist() == [(2**32 - 1) * n]
    assert rows.column("packets").to_pylist() == [(2**63 + 1) * n % 2**64]


def test_a_text_dimension_spills_each_group_to_one_file(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spill files are chosen by the text itself: a dictionary code (which differs between tables whose names
    come in another order) once sent one group to two files, and the partition held it twice."""
    monkeypatch.setattr(build, "READ_ROWS", 512)
    monkeypatch.setattr(build, "HELD_ROWS", 1024)
    rng = np.random.default_rng(6)
    n = 20_000  # one minute, 6,000 possible groups: summing 1,024 rows leaves too many, and keys recur
    flows = _flows(n, 6)
    minute = pa.array(np.full(n, int((END - timedelta(hours=1)).timestamp()) * 10**9), pa.timestamp("ns", "UTC"))
    flows = flows.set_column(flows.schema.get_field_index("time_flow_start"), "time_flow_start", minute)
    ports = pa.array(rng.integers(0, 1500, n).astype(np.uint16))
    flows = flows.set_column(flows.schema.get_field_index("src_port"), "src_port", ports)
    names = pa.array(np.array(["edge-a", "edge-b", "core", "x" * 30])[rng.integers(0, 4, n)])
    with LakeWriter(lake, conform_rows=False) as writer:
        writer.write(flows.append_column("exporter_name", names))
    dimensions = ("exporter_name", "src_port")
    _assert_spilled_rollup_is_the_group_by(lake, dimensions, monkeypatch)


def _assert_spilled_rollup_is_the_group_by(lake: Path, dimensions: tuple[str, ...], monkeypatch) -> None:
    """``flows_1m`` with ``dimensions``, built through spill files, equals SQL's GROUP BY of the raw flows."""
    (lake / "rollups.toml").write_text(f"[flows_1m]\ndimensions = {list(dimensions)}\n")
    spills: list[object] = []
    spill = spilling.Spill
    monkeypatch.setattr(spilling, "Spill", lambda *args: spills.append(args) or spill(*args))
    maintain(Lake(lake), today=TODAY)
    assert spills
    assert _rollup_rows(lake, "flows_1m", dimensions) == _group_by_raw(lake, 60, dimensions)
