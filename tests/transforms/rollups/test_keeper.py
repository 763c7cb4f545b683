"""Roll-ups kept current by the writers: only settled partitions are computed, a pass that leaves some for
later looks again, a stopping writer computes its finished hours, and long-running commands keep them."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from flowscope.cli import main
from flowscope.demo.traffic import synthetic_flows
from flowscope.lake.layout import Lake
from flowscope.lake.writer import LakeWriter
from flowscope.sinks.lake import LakeSink
from flowscope.transforms.rollups.build import load_state, maintain, raw_partitions
from flowscope.transforms.rollups.choose import choose_table
from flowscope.transforms.rollups.keeper import RollupKeeper

NOW = datetime.now(UTC)


def _flows(end: datetime, count: int = 5_000, seed: int = 1) -> pa.Table:
    return pa.concat_tables(synthetic_flows(count, end=end, days=0.2, seed=seed, batch_rows=count))


def _age(lake: Path, seconds: float) -> None:
    """Make every raw file look written ``seconds`` ago."""
    moment = time.time() - seconds
    for path in Lake(lake).files("flows"):
        os.utime(path, (moment, moment))


def _computed(lake: Path, name: str) -> set[str]:
    return set(load_state(Lake(lake)).get(name, {}).get("partitions", {}))


def test_only_settled_partitions_are_computed(tmp_path: Path) -> None:
    with LakeWriter(tmp_path) as writer:
        writer.write(_flows(NOW, count=20_000))
    lake = Lake(tmp_path)
    hours = {f"{day}/{hour:02d}" for day, hour in raw_partitions(lake)}
    assert len(hours) > 2

    fresh = maintain(lake, settled_at=datetime.now(UTC) - timedelta(minutes=5))  # files written just now
    assert not any(result.updated for result in fresh)
    assert all(result.deferred == len(hours) for result in fresh if result.name != "flows_1h")

    _age(tmp_path, 3600)
    settled_at = datetime.now(UTC) - timedelta(minutes=5)
    results = {result.name: result for result in maintain(lake, settled_at=settled_at)}
    over = {
        hour
        for hour in hours
        if datetime.fromisoformat(f"{hour[:10]}T{hour[11:]}:00+00:00") <= settled_at - timedelta(hours=1)
    }
    assert _computed(tmp_path, "flows_1m") == over
    assert results["flows_1m"].deferred == len(hours - over)
    assert {f"{day}/{hour:02d}" for day, hour in maintain(lake)[0].updated} == hours - over  # unrestricted: the rest


def test_a_pass_that_defers_looks_again_and_stop_computes_finished_hours(tmp_path: Path) -> None:
    with LakeWriter(tmp_path) as writer:
        writer.write(_flows(NOW - timedelta(hours=2)))
    keeper = RollupKeeper(Lake(tmp_path), interval=0.05, settle=3600)
    keeper.landed()
    deadline = time.monotonic() + 30
    while keeper.passes < 2 and time.monotonic() < deadline:  # deferred everything, so it keeps looking
        time.sleep(0.05)
    assert keeper.passes >= 2 and keeper.partitions == 0
    keeper.stop()  # the writer stops: hours that are over are computed whatever the files' age
    assert _computed(tmp_path, "flows_5m") == {f"{day}/{hour:02d}" for day, hour in raw_partitions(Lake(tmp_path))}
    assert keeper.notes() == []


def test_a_failed_pass_is_counted_and_retried(tmp_path: Path) -> None:
    with LakeWriter(tmp_path) as writer:
        writer.write(_flows(NOW - timedelta(hours=3)))
    (tmp_path / "rollups.toml").write_text('[flows_1h]\ndimensions = ["no_such_column"]\n')
    keeper = RollupKeeper(Lake(tmp_path), interval=0.05, settle=0)
    keeper.landed()
    deadline = time.monotonic() + 30
    while keeper.failures < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    keeper.stop(final_pass=False)
    assert keeper.failures >= 2
    assert "roll-up maintenance failed" in keeper.notes()[0]


def test_lake_sink_keeps_rollups_for_long_running_writers(tmp_path: Path) -> None:
    sink = LakeSink(Lake(tmp_path), keep_rollups=True)
    sink.write(_flows(NOW - timedelta(hours=1)))
    sink.flush()
    sink.close()
    lake = Lake(tmp_path)
    choice = choose_table(lake, ["proto"], since=NOW - timedelta(days=1), until=NOW.replace(minute=0))
    assert choice.table == "flows_1h" or choice.table == "flows_5m"
    plain = tmp_path / "plain"
    batch = LakeSink(Lake(plain))  # batch commands leave roll-ups to `flowscope rollup`
    batch.write(_flows(NOW - timedelta(hours=1)))
    batch.close()
    assert batch.keeper is None and not (plain / "_rollups").exists()


@pytest.mark.parametrize("flag, kept", [([], True), (["--no-rollups"], False)])
def test_watch_keeps_rollups_unless_told_not_to(tmp_path: Path, flag: list[str], kept: bool) -> None:
    from flowscope.demo.pcap import write_synthetic_pcap

    captures = tmp_path / "captures"
    captures.mkdir()
    start_ns = int((NOW - timedelta(hours=2)).timestamp()) * 10**9
    write_synthetic_pcap(captures / "a.pcap", packets=2_000, flows=200, start_ns=start_ns, seed=3)
    lake = tmp_path / "lake"
    result = CliRunner().invoke(main, ["--lake", str(lake), "watch", str(captures), "--once", *flag])
    assert result.exit_code == 0, result.output
    assert bool(_computed(lake, "flows_5m")) is kept


def test_a_live_lake_answers_from_rollups_then_raw_flows(tmp_path: Path) -> None:
    """The current hour is not rolled up yet: the roll-up answers until it, the raw flows after it."""
    from flowscope.query import open_lake
    from flowscope.query.reports.top import top_sql

    with LakeWriter(tmp_path) as writer:
        writer.write(_flows(NOW, count=20_000))
    _age(tmp_path, 3 * 3600)
    lake = Lake(tmp_path)
    hour = NOW.replace(minute=0, second=0, microsecond=0)
    maintain(lake, settled_at=hour)  # NOW's hour still filling, whatever the clock says when this runs
    since = NOW - timedelta(hours=4, minutes=7)
    choice = choose_table(lake, ["proto"], since=since)
    assert choice.table in {"flows_1h", "flows_5m", "flows_1m"} and choice.covers[1] == hour
    assert "until" in choice.why
    with open_lake(tmp_path) as con:
        for metric in ("bytes", "flows"):
            raw = con.sql(top_sql("proto", metric, 5, since=since)).fetchall()
            rolled = con.sql(top_sql("proto", metric, 5, since=since, table=choice.table, covers=choice.covers))
            assert rolled.fetchall() == raw and raw
