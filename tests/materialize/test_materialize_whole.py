"""A whole reduction view computed in process (``materialize/whole.py``) is the DuckDB view: same rows, same
types, the same target tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pytest
from tests.materialize.test_materialize import cli, rows_of, target_url  # noqa: F401 (a fixture)
from tests.reduce.test_reduce_batches import random_flows

from flowscope.lake import Lake, LakeWriter
from flowscope.materialize import run, whole
from flowscope.query import open_lake
from flowscope.reduce import BUILTIN
from flowscope.reduce import whole as reduce_whole


def random_lake(lake: Path) -> None:
    """Random flows in several files (ties in start time across files, nulls in keys), one lacking columns."""
    rng = np.random.default_rng(11)
    for part in range(4):
        table = random_flows(rng, 700)
        with LakeWriter(lake, conform_rows=part != 3) as writer:
            writer.write(table.drop_columns(["community_id", "tcp_flags"]) if part == 3 else table)


def by_duckdb(lake: Path, view: str) -> pa.Table:
    with open_lake(lake, views=[view]) as con:
        return con.sql(f"SELECT * FROM {view}").to_arrow_table()


def _sorted(table: pa.Table, key: tuple[str, ...]) -> pa.Table:
    return table.sort_by([(name, "ascending") for name in key])


@pytest.mark.parametrize("view", ["pairs", "conversations"])
@pytest.mark.parametrize("held_rows", [50, 1 << 22])
@pytest.mark.parametrize("parts", [1, whole.PARTS])
def test_in_process_equals_the_duckdb_view(
    lake_dir: Path, view: str, held_rows: int, parts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also when the records re-reduce and spill (50 rows held): no spill directory is left."""
    random_lake(lake_dir)
    monkeypatch.setattr(reduce_whole, "HELD_ROWS", held_rows)
    lake = Lake(lake_dir)
    with lake.reading(), whole.reduction_parts(lake, BUILTIN[view], lake_dir, parts) as (tables, ranges):
        mine = pa.concat_tables(tables)
    assert ranges == (held_rows > 50)  # 50 rows held: spilled by key hash
    theirs = by_duckdb(lake_dir, view)
    assert mine.schema == theirs.schema
    key = BUILTIN[view].key
    assert _sorted(mine, key).to_pylist() == _sorted(theirs, key).to_pylist()
    assert not list(lake_dir.glob(".spill-*"))


def test_materialized_tables_equal_the_duckdb_path(
    lake_dir: Path,
    tmp_path: Path,
    target_url: str,  # noqa: F811 (the fixture)
    table_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    random_lake(lake_dir)
    materialize = ("--lake", str(lake_dir), "materialize", "pairs", "--to", target_url)
    cli(*materialize, "--table", table_name)
    computed = []
    monkeypatch.setattr(whole, "reduction_parts", lambda *args: computed.append(args) or pytest.fail("not DuckDB"))
    monkeypatch.setattr(run, "_whole_reduction", lambda *args: None)
    cli(*materialize, "--table", f"{table_name}_duckdb")
    try:
        assert rows_of(target_url, table_name) == rows_of(target_url, f"{table_name}_duckdb")
    finally:
        if target_url.startswith("postgresql"):
            with psycopg.connect(target_url, autocommit=True) as con:
                con.execute(f'DROP TABLE IF EXISTS "{table_name}_duckdb"')
                for bookkeeping in ("flowscope_materialized", "flowscope_materialized_files"):
                    con.execute(f"DELETE FROM {bookkeeping} WHERE target_table = %s", (f"{table_name}_duckdb",))


def test_a_lake_without_flows_is_left_to_duckdb(lake_dir: Path) -> None:
    lake_dir.mkdir()
    lake = Lake(lake_dir)
    with pytest.raises(whole.Unsupported), lake.reading(), whole.reduction_parts(lake, BUILTIN["pairs"], lake_dir):
        pass
