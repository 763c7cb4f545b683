"""Keyed reductions at ingest, as query views, on compaction; the services_by_day view."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from flowscope.cli import main
from flowscope.csvflows.reader import CsvFlowSource
from flowscope.display import textual
from flowscope.errors import FlowscopeError
from flowscope.lake import Lake
from flowscope.lake.maintenance import compact
from flowscope.query import open_lake
from flowscope.reduce import Reduction, load, transform
from flowscope.reduce.apply import Reducer
from flowscope.schema import conform

EXAMPLE = Path(__file__).parents[1] / "csv" / "data" / "unicauca11_example.csv"
PAIR = ("50.31.185.39", 80, "10.200.7.217", 38848)


def example_flows() -> pa.Table:
    return pa.concat_tables([conform(b) for b in CsvFlowSource([EXAMPLE])])


def pair_rows(table: pa.Table) -> dict[tuple, dict]:
    rows = textual(table).to_pylist()
    return {(r["src_addr"], r["src_port"], r["dst_addr"], r["dst_port"]): r for r in rows}


def check_pairs(table: pa.Table) -> None:
    """7 pairs; the repeated one has duration 218 us, forward 4 packets / 674 bytes, backward 3 / 0."""
    durations = pc.subtract(pc.cast(table["time_flow_end"], pa.int64()), pc.cast(table["time_flow_start"], pa.int64()))
    table = table.append_column("duration_ns", durations)
    pairs = pair_rows(table)
    assert len(pairs) == 7 and table.num_rows == 7
    row = pairs[PAIR]
    assert (row["duration_ns"], row["packets"], row["bytes"], row["packets_rev"], row["bytes_rev"]) == (
        218_000, 4, 674, 3, 0,
    )  # fmt: skip


def test_pairs_reduction_of_the_example() -> None:
    flows = example_flows()
    reduced = transform("pairs")(flows)
    assert reduced.schema == flows.schema
    check_pairs(reduced)


def test_strategies_min_max_first_last_merge(tmp_path: Path) -> None:
    spec = tmp_path / "mine.toml"
    spec.write_text(
        'key = ["src_port"]\ndefault = "last"\n[fields]\n'
        'bytes = "max"\npackets = "min"\ntcp_flags = "merge"\ndst_port = "first"\n'
    )
    table = conform(
        pa.table(
            {
                "src_port": pa.array([1, 1, 1, 2], pa.uint16()),
                "dst_port": pa.array([10, 11, 12, 13], pa.uint16()),
                "bytes": pa.array([5, 9, 7, 1], pa.uint64()),
                "packets": pa.array([5, 9, 7, 1], pa.uint64()),
                "tcp_flags": pa.array([0x02, 0x10, 0x01, 0x04], pa.uint16()),
                "proto": pa.array([6, 17, 1, 6], pa.uint8()),
            }
        )
    )
    rows = {r["src_port"]: r for r in transform(str(spec))(table).to_pylist()}
    assert rows[1]["bytes"] == 9 and rows[1]["packets"] == 5
    assert rows[1]["tcp_flags"] == 0x13 and rows[1]["dst_port"] == 10 and rows[1]["proto"] == 1
    assert rows[2]["dst_port"] == 13


def test_bad_specs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FlowscopeError, match="unknown reduction"):
        load("nope")
    spec = tmp_path / "bad.toml"
    spec.write_text('key = ["src_port"]\n[fields]\nbytes = "average"\n')
    with pytest.raises(FlowscopeError, match="unknown strategy"):
        load(str(spec))


def test_ingest_reduce_and_views(lake_dir: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--lake", str(lake_dir), "read", str(EXAMPLE), "--reduce", "pairs"])
    assert result.exit_code == 0, result.output
    with open_lake(lake_dir) as con:
        assert con.sql("SELECT count(*) FROM flows").fetchall()[0][0] == 7
    # the raw rows too: the pairs view reduces across files
    result = runner.invoke(main, ["--lake", str(lake_dir), "read", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    with open_lake(lake_dir, views=["pairs", "services_by_day"]) as con:
        pairs = con.sql("SELECT * FROM pairs").to_arrow_table()
        services = con.sql("SELECT * FROM services_by_day").fetchall()
    rows = pair_rows(pairs)
    assert len(rows) == 7
    assert (rows[PAIR]["packets"], rows[PAIR]["bytes"], rows[PAIR]["packets_rev"]) == (8, 1348, 6)
    assert services == [(dt.date(2017, 4, 26), "50.31.185", 80, 8, 1348)]


def test_compaction_hook(lake_dir: Path) -> None:
    runner = CliRunner()
    for _ in range(2):  # the same rows twice (--again), for the compaction's reduction to merge
        assert runner.invoke(main, ["--lake", str(lake_dir), "read", str(EXAMPLE), "--again"]).exit_code == 0
    compact(Lake(lake_dir), "flows", reduce=transform("pairs"))
    with open_lake(lake_dir, views=["services_by_day"]) as con:
        assert con.sql("SELECT count(*) FROM flows").fetchall()[0][0] == 7
        assert con.sql("SELECT * FROM services_by_day").fetchall() == [(dt.date(2017, 4, 26), "50.31.185", 80, 8, 1348)]


def test_first_and_last_follow_start_time_then_arrival() -> None:
    starts = pa.array([3, 1, 2, 1, 1], pa.timestamp("ns", "UTC"))
    table = conform(
        pa.table(
            {
                "src_port": pa.array([1, 1, 1, 2, 2], pa.uint16()),
                "dst_port": pa.array([7, 8, 9, 5, 6], pa.uint16()),
                "time_flow_start": starts,
                "time_flow_end": starts,
                "proto": pa.array([30, 10, 20, 40, 50], pa.uint8()),
                "bytes": pa.array([1, 2, 3, 4, 5], pa.uint64()),
            }
        )
    )
    spec = Reduction("order", "", key=("src_port",), fields={"bytes": "sum", "dst_port": "first"})
    reduced = Reducer(spec)(table).select(["src_port", "dst_port", "proto", "bytes"])
    rows = {r["src_port"]: r for r in reduced.to_pylist()}
    assert (rows[1]["proto"], rows[1]["dst_port"], rows[1]["bytes"]) == (30, 8, 6)  # last = latest start
    assert (rows[2]["proto"], rows[2]["dst_port"], rows[2]["bytes"]) == (50, 5, 9)  # equal starts: arrival order


def test_json_spec_and_conversations_view(tmp_path: Path, lake_dir: Path) -> None:
    spec = tmp_path / "by_proto.json"
    spec.write_text('{"key": ["proto"], "fields": {"bytes": "sum", "time_flow_start": "min"}}')
    reduced = transform(str(spec))(example_flows())
    assert reduced.num_rows == 1 and reduced.column("bytes")[0].as_py() == 132 + 12 + 674 + 1076 * 2 + 313554 + 232
    assert CliRunner().invoke(main, ["--lake", str(lake_dir), "read", str(EXAMPLE)]).exit_code == 0
    with open_lake(lake_dir, views=["conversations"]) as con:
        assert con.sql("SELECT count(*) FROM conversations").fetchall()[0][0] == 7
