"""``read --reduce NAME --reduce-whole``: the ``WholeReduction`` sink stage gives one row per key over the whole
input, equal to the view's SQL over all of it, and leaves nothing behind when aborted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from tests.reduce.test_reduce_batches import by_sql, random_flows, rows_by_key

from flowscope.cli import main
from flowscope.pipeline import run, tag
from flowscope.reduce import BUILTIN
from flowscope.reduce import whole as whole_module
from flowscope.reduce.whole import WholeReduction
from flowscope.sinks.files import FileSink


def _stage(tmp_path: Path, output: Path, after: list) -> WholeReduction:
    return WholeReduction(FileSink(output), BUILTIN["pairs"], after, tmp_path, lambda rows: 2 * rows)


@pytest.mark.parametrize("held_rows", [8, 200, 1 << 20], ids=["spilled", "re-reduced", "held"])
def test_one_row_per_key_as_the_views_sql(tmp_path: Path, held_rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(whole_module, "WHOLE_INPUT_HELD_ROWS", held_rows)
    table = random_flows(np.random.default_rng(3), 2000)
    output = tmp_path / "pairs.parquet"
    seen: list[int] = []
    stage = _stage(tmp_path, output, [lambda rows: seen.append(rows.num_rows) or rows])
    for start in range(0, table.num_rows, 37):
        stage.write(table.slice(start, 37))
    stage.close()
    written = pq.read_table(output)
    expected = by_sql(BUILTIN["pairs"], table)
    assert stage.rows_in == 2000 and stage.rows_out == written.num_rows == expected.num_rows == sum(seen)
    assert rows_by_key(written.cast(table.schema), BUILTIN["pairs"].key) == rows_by_key(expected, BUILTIN["pairs"].key)
    assert not list(tmp_path.glob(".spill-*"))


def test_an_abort_leaves_no_output_and_no_spill_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(whole_module, "WHOLE_INPUT_HELD_ROWS", 8)
    table = random_flows(np.random.default_rng(5), 500)
    output = tmp_path / "pairs.parquet"
    stage = _stage(tmp_path, output, [])
    for start in range(0, 500, 50):
        stage.write(table.slice(start, 50))
    assert list(tmp_path.glob(".spill-*"))  # it did spill
    stage.abort()
    assert not list(tmp_path.iterdir())  # no output, no staging file, no spill folder


def test_other_tables_pass_straight_through(tmp_path: Path) -> None:
    output = tmp_path / "pairs.parquet"
    stage = _stage(tmp_path, output, [])
    counters = tag(pa.table({"if_index": [1, 2]}), "interface_counters")
    stage.write(counters)
    stage.close()
    assert stage.rows_in == 0 and stage.notes() == [
        f"2 interface_counters rows not written: {output} holds flows only (send them to the lake with --to lake)"
    ]


CSV_HEAD = "src_addr,dst_addr,src_port,dst_port,proto,packets,bytes,time_flow_start\n"


def test_the_command_line(tmp_path: Path) -> None:
    """Two input files holding the same two pairs: each batch's reduction keeps a pair once per file; the whole
    reduction once in all, with its bytes summed."""
    inputs = []
    for part in range(2):
        flows = tmp_path / f"flows{part}.csv"
        rows = [
            f"10.0.0.{i % 2},10.0.0.9,4000{i % 2},443,6,1,{100 + 3 * part + i},2024-05-01T00:00:0{i}Z\n"
            for i in range(3)
        ]
        flows.write_text(CSV_HEAD + "".join(rows))
        inputs.append(str(flows))
    batch, whole = tmp_path / "batch.parquet", tmp_path / "whole.parquet"
    common = ["read", *inputs, "--reduce", "pairs"]
    assert CliRunner().invoke(main, ["-q", *common, "-o", str(batch)]).exit_code == 0
    result = CliRunner().invoke(main, [*common, "--reduce-whole", "-o", str(whole)])
    assert result.exit_code == 0, result.output
    assert "6 flows from 2 input(s) (csv), reduced by pairs to 2 rows ->" in result.output
    assert pq.read_table(batch).num_rows == 4  # each file's batch held both pairs once
    got = pq.read_table(whole, columns=["bytes"]).sort_by("bytes").column("bytes").to_pylist()
    assert got == [101 + 104, 100 + 102 + 103 + 105]


@pytest.mark.parametrize("args", [["--to", "lake"], [], ["-o", "out.parquet", "--to", "lake"]])
def test_only_with_a_reduction_into_files(tmp_path: Path, args: list[str]) -> None:
    flows = tmp_path / "flows.csv"
    flows.write_text(CSV_HEAD + "10.0.0.1,10.0.0.9,4000,443,6,1,100,2024-05-01T00:00:00Z\n")
    lake = tmp_path / "lake"
    for reduce in (["--reduce", "pairs"], []):
        if not reduce and args == []:
            args = ["-o", str(tmp_path / "x.parquet")]
        result = CliRunner().invoke(main, ["--lake", str(lake), "read", str(flows), *reduce, "--reduce-whole", *args])
        assert result.exit_code == 2, result.output
        assert "--reduce-whole goes with --reduce and file or standard output destinations" in result.output
    assert not lake.exists()


def test_ctrl_c_in_the_final_merge_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reduction runs in ``close``, which ``pipeline.run`` aborts like the reading (the output's staging file
    stayed behind, and the message said "what was committed before is kept")."""
    monkeypatch.setattr(whole_module, "WHOLE_INPUT_HELD_ROWS", 8)

    def interrupted(rows: pa.Table) -> pa.Table:
        raise KeyboardInterrupt

    table = random_flows(np.random.default_rng(6), 300)
    output = tmp_path / "pairs.parquet"
    stage = _stage(tmp_path, output, [interrupted])
    with pytest.raises(KeyboardInterrupt) as caught:
        run([table], stage)
    assert caught.value.__notes__ == [f"{output} not written (a file is written only whole)"]
    assert not list(tmp_path.iterdir())
