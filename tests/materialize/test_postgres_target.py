"""A new PostgreSQL table loaded part by part while the view is computed: the same rows, stored in key order,
counted in the state row; an error or Ctrl-C while a later part is computed leaves no table and no state row."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pyarrow as pa
import pytest
from tests.materialize.test_materialize import postgres_rows, rows_of

from flowscope.errors import FlowscopeError
from flowscope.materialize.target import Change, LakeState, Rows, open_target

pytestmark = pytest.mark.integration

KEY = ("k", "port")


def _parts() -> list[pa.Table]:
    """Three parts in key ranges of ``k``, each in no order: a column NULL in every row of the first part only,
    and a row with a NULL key part (left out, counted)."""
    schema = pa.schema([("k", pa.int64()), ("port", pa.uint16()), ("note", pa.string())])
    return [
        pa.table({"k": [2, 1, 2], "port": [5, 7, 1], "note": [None, None, None]}, schema=schema),
        pa.table({"k": [4, 3], "port": [0, 9], "note": ["d", None]}, schema=schema),
        pa.table({"k": [6, 5, 5], "port": [1, None, 2], "note": ["f", "g", "e"]}, schema=schema),
    ]


def _apply(url: str, table: str, parts: Iterator[pa.Table]) -> Rows:
    rows = Rows(parts, True, KEY, "v")
    target = open_target(url)
    try:
        target.apply(Change(table, KEY, rows, "v", LakeState("d1", {}), None))
    finally:
        target.close()
    return rows


def test_a_new_table_is_loaded_part_by_part_in_key_order(postgres_url: str, table_name: str) -> None:
    rows = _apply(postgres_url, table_name, iter(_parts()))
    assert (rows.num_rows, rows.empty_keys) == (7, 1)
    expected = [(1, 7, None), (2, 1, None), (2, 5, None), (3, 9, None), (4, 0, "d"), (5, 2, "e"), (6, 1, "f")]
    assert rows_of(postgres_url, table_name) == expected
    assert postgres_rows(postgres_url, f'SELECT * FROM "{table_name}" ORDER BY ctid') == expected  # heap in key order
    state = f"SELECT view_rows FROM flowscope_materialized WHERE target_table = '{table_name}'"
    assert postgres_rows(postgres_url, state) == [(7,)]
    keyed = f"SELECT count(*) FROM pg_index WHERE indrelid = '\"{table_name}\"'::regclass AND indisprimary"
    assert postgres_rows(postgres_url, keyed) == [(1,)]


@pytest.mark.parametrize("error", [FlowscopeError("the view failed"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_an_error_after_a_part_was_copied_leaves_nothing(
    postgres_url: str, table_name: str, error: BaseException
) -> None:
    """The first part's COPY has finished (the target waits for it before copying the second) and the second's
    is under way when the third part fails."""

    def failing() -> Iterator[pa.Table]:
        first, second, _ = _parts()
        yield first
        yield second
        raise error

    with pytest.raises(type(error)):
        _apply(postgres_url, table_name, failing())
    with psycopg.connect(postgres_url) as con:
        assert con.execute("SELECT to_regclass(%s)", (f'"{table_name}"',)).fetchone() == (None,)
        state = con.execute("SELECT 1 FROM flowscope_materialized WHERE target_table = %s", (table_name,))
        assert state.fetchall() == []
    _apply(postgres_url, table_name, iter(_parts()))  # the connection's state is clean: a rerun loads it all
    assert len(rows_of(postgres_url, table_name)) == 7
