"""Destinations: every kind the registry opens, fan-out, and nothing half-done after an error."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from flowscope.errors import FlowscopeError
from flowscope.lake.layout import Lake
from flowscope.pipeline import FLOWS, Checkpoint, run, tag
from flowscope.query import open_lake
from flowscope.schema import FLOW_SCHEMA
from flowscope.sinks.fanout import FanOut
from flowscope.sinks.files import FileSink
from flowscope.sinks.lake import LakeSink
from flowscope.sinks.registry import DestinationContext, find, open_destinations
from helpers import flows


def context(tmp_path: Path, **kwargs: object) -> DestinationContext:
    return DestinationContext(Lake.at(tmp_path / "lake"), **kwargs)  # type: ignore[arg-type]


def lake_rows(path: Path) -> int:
    with open_lake(path) as con:
        return con.execute("SELECT count(*) FROM flows").fetchone()[0]


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("lake", "lake"),
        ("lake:/srv/other", "lake"),
        ("out.parquet", "file"),
        ("out.csv", "file"),
        ("out.csv.gz", "file"),
        ("out.jsonl", "file"),
        ("file:out.jsonl.gz", "file"),
    ],
)
def test_each_url_finds_its_destination(url, kind):
    assert find(url).name == kind


@pytest.mark.parametrize(
    ("url", "said"),
    [("nosuch://host/x", "unknown destination scheme 'nosuch'"), ("out.txt", "cannot tell what destination")],
)
def test_unknown_destinations_are_one_clear_error(url, said):
    with pytest.raises(FlowscopeError, match=said):
        find(url)


@pytest.mark.parametrize("urls", [["out.csv", "./out.csv"], ["lake", "lake"], ["out.csv", "file:out.csv"]])
def test_one_target_named_twice_is_an_error(tmp_path, monkeypatch, urls):
    """Two file sinks of one path wrote one staging file: the second publish crashed (FileNotFoundError, exit 1)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FlowscopeError, match=f"^{urls[1]}: named twice as a destination$"):
        open_destinations(urls, context(tmp_path))
    assert not (tmp_path / "lake").exists()


def test_a_server_url_named_twice_is_quoted_without_its_password(tmp_path):
    url = "postgresql://u:s3cret@127.0.0.1:1/flows"
    with pytest.raises(FlowscopeError, match=r"^postgresql://u:\*\*\*@127.0.0.1:1/flows: named twice"):
        open_destinations([url, url], context(tmp_path))


def test_an_unknown_destination_lists_the_kinds_of_its_shape():
    """A name is told the names (files, the lake, stdout); a URL the URL schemes: all of them was 900 characters."""
    with pytest.raises(FlowscopeError) as named:
        find("out")
    assert "file: a file path ending .parquet" in str(named.value) and "clickhouse" not in str(named.value)
    with pytest.raises(FlowscopeError) as url:
        find("mysql://db/flows")
    assert "clickhouse://" in str(url.value) and "file:" not in str(url.value)


def test_the_default_lake_and_another_by_path(tmp_path):
    run([flows(10)], open_destinations(["lake"], context(tmp_path)))
    run([flows(7)], open_destinations([f"lake:{tmp_path / 'other'}"], context(tmp_path)))
    assert lake_rows(tmp_path / "lake") == 10
    assert lake_rows(tmp_path / "other") == 7


@pytest.mark.parametrize("name", ["f.parquet", "f.csv", "f.csv.gz", "f.jsonl", "f.jsonl.gz"])
def test_file_destinations_hold_every_row(tmp_path, name):
    path = tmp_path / name
    stats = run([flows(100), flows(50, first_id=100)], open_destinations([str(path)], context(tmp_path)))
    assert stats.rows == 150
    if name.endswith(".parquet"):
        table = pq.read_table(path)
        assert table.schema == FLOW_SCHEMA and sorted(table.column("bytes").to_pylist()) == list(range(150))
        return
    text = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
    if ".csv" in name:
        table = pacsv.read_csv(pa.BufferReader(text))
        assert table.num_rows == 150 and table.column("src_addr")[0].as_py() == "10.0.0.0"
    else:
        rows = [json.loads(line) for line in text.splitlines()]
        assert len(rows) == 150 and rows[1]["src_addr"] == "10.0.0.1"


def test_an_empty_result_is_still_a_valid_file(tmp_path):
    run([], open_destinations([str(tmp_path / "e.parquet"), str(tmp_path / "e.csv")], context(tmp_path)))
    assert pq.read_table(tmp_path / "e.parquet").schema == FLOW_SCHEMA
    header = (tmp_path / "e.csv").read_text().splitlines()
    assert len(header) == 1 and header[0].split(",")[:2] == ['"type"', '"time_received"']


def test_fan_out_writes_every_destination(tmp_path):
    sink = open_destinations(["lake", str(tmp_path / "copy.parquet")], context(tmp_path))
    assert isinstance(sink, FanOut)
    run([flows(20)], sink)
    assert lake_rows(tmp_path / "lake") == 20
    assert pq.read_table(tmp_path / "copy.parquet").num_rows == 20


def failing(after: int):
    yield flows(after)
    raise FlowscopeError("input broke")


def test_an_error_aborts_every_destination_and_leaves_nothing_half_done(tmp_path):
    sink = open_destinations(["lake", str(tmp_path / "out.parquet")], context(tmp_path, transactional=True))
    with pytest.raises(FlowscopeError, match="input broke"):
        run(failing(30), sink)
    assert not (tmp_path / "out.parquet").exists()
    assert not list(tmp_path.rglob("*.tmp"))
    assert lake_rows(tmp_path / "lake") == 0


def test_checkpointed_data_stays_when_a_later_part_fails(tmp_path):
    sink = LakeSink(Lake.at(tmp_path / "lake"), transactional=True)

    def source():
        yield flows(10)
        yield Checkpoint(positions={"input": 1})
        yield flows(5, first_id=10)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(source(), sink)
    assert lake_rows(tmp_path / "lake") == 10
    assert not list((tmp_path / "lake").rglob("*.tmp"))


def test_tagged_tables_go_to_their_lake_table_and_files_report_them(tmp_path):
    counters = tag(pa.table({"time_received": pa.array([1], pa.timestamp("ns", "UTC")), "if_index": [3]}), "ifs")
    file_sink = FileSink(tmp_path / "f.parquet")
    sink = FanOut([LakeSink(Lake.at(tmp_path / "lake")), file_sink])
    stats = run([flows(4), counters], sink)
    assert stats.rows_by_table == {FLOWS: 4, "ifs": 1}
    assert Lake.at(tmp_path / "lake").tables() == ["flows", "ifs"]
    assert pq.read_table(tmp_path / "f.parquet").num_rows == 4
    assert file_sink.notes() == [
        f"1 ifs rows not written: {tmp_path / 'f.parquet'} holds flows only (send them to the lake with --to lake)"
    ]


def test_a_directory_is_not_an_output_file(tmp_path):
    (tmp_path / "d.parquet").mkdir()
    with pytest.raises(FlowscopeError, match="is a directory"):
        FileSink(tmp_path / "d.parquet")


def test_a_lake_path_that_is_a_file_is_one_clear_error(tmp_path: Path) -> None:
    taken = tmp_path / "notes.txt"
    taken.write_text("not a lake")
    with pytest.raises(FlowscopeError, match="is a file, not a lake directory"):
        open_destinations([f"lake:{taken}"], context(tmp_path))
    assert taken.read_text() == "not a lake"
