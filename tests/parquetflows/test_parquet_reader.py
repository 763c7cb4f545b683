"""Parquet files of flows as an input: flowscope's own output reads back as written; other tools' tables with the
catalogue's names are cast (text addresses, naive timestamps, other integer widths); what cannot be is one error."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from flowscope import addresses
from flowscope.cli import main
from flowscope.demo.traffic import synthetic_flows
from flowscope.errors import FlowscopeError
from flowscope.parquetflows.reader import ParquetFlowSource
from flowscope.readers.registry import detect
from flowscope.schema import FLOW_SCHEMA, conform


def _read(path: Path, columns: tuple[str, ...] | None = None) -> tuple[pa.Table, ParquetFlowSource]:
    source = ParquetFlowSource([path], columns)
    return pa.concat_tables(list(source)), source


def test_flowscope_parquet_reads_back_as_written(tmp_path: Path) -> None:
    flows = conform(pa.concat_tables(list(synthetic_flows(30_000, batch_rows=10_000))), keep_extra=False)
    path = tmp_path / "flows.parquet"
    pq.write_table(flows, path, row_group_size=7_000)
    assert detect(path).name == "parquet"
    table, source = _read(path)
    assert table.schema == FLOW_SCHEMA
    assert table.equals(flows)
    assert source.progress() == (path.stat().st_size, path.stat().st_size)
    assert not source.notes and not source.skips.total


def test_other_tools_tables_are_cast_to_the_catalogue(tmp_path: Path) -> None:
    path = tmp_path / "spark.parquet"
    pq.write_table(
        pa.table(
            {
                "src_addr": ["10.0.0.1", "2001:db8::1", None],
                "dst_addr": pa.array([b"\x00" * 10 + b"\xff\xff" + bytes([192, 0, 2, 1])] * 3, pa.binary()),
                "bytes": pa.array([100, 200, 300], pa.int32()),
                "time_received": pa.array([dt.datetime(2026, 12, 1, 10, 0, 0, 250_000)] * 3, pa.timestamp("us")),
                "pipeline_stage": ["a", "b", "c"],
            }
        ),
        path,
    )
    table, source = _read(path)
    assert table.schema == FLOW_SCHEMA
    assert addresses.format_text(table["src_addr"].combine_chunks()).to_pylist() == ["10.0.0.1", "2001:db8::1", None]
    assert addresses.format_text(table["dst_addr"].combine_chunks()).to_pylist() == ["192.0.2.1"] * 3
    assert table["bytes"].to_pylist() == [100, 200, 300]
    assert table["time_received"][0].value == 1_796_119_200_250_000_000  # naive times are UTC
    assert table["packets_rev"].to_pylist() == [0, 0, 0]  # missing reverse counters are 0, as for every reader
    assert source.notes == [f"{path}: columns outside the flow schema left out: pipeline_stage"]


def test_only_the_columns_a_program_asks_for_are_read(tmp_path: Path) -> None:
    path = tmp_path / "flows.parquet"
    pq.write_table(pa.table({"bytes": [1, 2], "packets": [3, 4], "proto": pa.array([6, 17], pa.uint8())}), path)
    table, _ = _read(path, columns=("bytes",))
    assert table["bytes"].to_pylist() == [1, 2]
    assert table["packets"].null_count == 2 and table["proto"].null_count == 2


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"a": [1]}, "no flow columns \\(it has a;"),
        ({"src_addr": ["10.0.0.1", "nope"]}, "column src_addr \\(string\\) does not fit .*not an IP address: 'nope'"),
        ({"bytes": [-1, 2]}, "column bytes \\(int64\\) does not fit the flow schema's uint64"),
        ({"proto": ["tcp"]}, "column proto \\(string\\) does not fit the flow schema's uint8"),
    ],
)
def test_what_does_not_fit_is_one_error_naming_the_column(tmp_path: Path, columns: dict, message: str) -> None:
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table(columns), path)
    with pytest.raises(FlowscopeError, match=f"^{path}: {message}"):
        _read(path)


def test_a_broken_file_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.parquet"
    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.table({"bytes": list(range(1000))}), whole)
    path.write_bytes(whole.read_bytes()[:-20])
    with pytest.raises(FlowscopeError, match="not a readable Parquet file"):
        _read(path)


def test_read_converts_a_parquet_export_and_a_rerun_duplicates_nothing(tmp_path: Path) -> None:
    flows = conform(pa.concat_tables(list(synthetic_flows(5_000))), keep_extra=False)
    path = tmp_path / "export.parquet"
    pq.write_table(flows, path)
    runner = CliRunner()
    lake = tmp_path / "lake"
    for _ in range(2):
        result = runner.invoke(main, ["--lake", str(lake), "read", str(path)])
        assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["--lake", str(lake), "query", "SELECT count(*) AS n, sum(bytes) AS b FROM flows"])
    assert result.exit_code == 0, result.output
    counted = runner.invoke(main, ["read", str(path), "-o", str(tmp_path / "flows.csv")])
    assert counted.exit_code == 0, counted.output
    back, _ = _read(path)
    assert back.num_rows == 5_000
    assert f"{5_000:,}" in result.output and f"{sum(flows['bytes'].to_pylist()):,}" in result.output


def test_a_column_name_that_is_no_utf8_is_one_error(tmp_path: Path) -> None:
    """Found by fuzz/targets/parquet.py: pyarrow raised UnicodeDecodeError out of the read."""
    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.table({"bytes": [1], "zzzzzz": [2]}), whole)
    path = tmp_path / "names.parquet"
    path.write_bytes(whole.read_bytes().replace(b"zzzzzz", b"zz\xe8\x80zz"))
    with pytest.raises(FlowscopeError, match="not a readable Parquet file"):
        _read(path)


def test_an_address_text_that_is_no_utf8_is_one_error(tmp_path: Path) -> None:
    """Found by fuzz/targets/parquet.py: Parquet strings are not checked as UTF-8, and showing the bad value raised."""
    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.table({"src_addr": ["10.0.0.1", "10.0.0.9"]}), whole, compression="none", use_dictionary=False)
    path = tmp_path / "text.parquet"
    path.write_bytes(whole.read_bytes().replace(b"10.0.0.9", b"10.0\xc1.09"))
    with pytest.raises(FlowscopeError, match="column src_addr .* not an IP address: " + re.escape("'10.0\ufffd.09'")):
        _read(path)
