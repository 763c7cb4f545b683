"""A reduction over a whole input (``reduce.whole``: held, re-reduced, spilled) equals the view's SQL over it."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from tests.reduce.test_reduce_batches import DURATIONS_AND_TEXT, EVERY_STRATEGY, by_sql, random_flows, rows_by_key

from flowscope import spilling
from flowscope.materialize.key_order import key_ranges
from flowscope.reduce import BUILTIN, Reduction
from flowscope.reduce.whole import merges_exactly, whole_fold

CUSTOM_LAST = Reduction("last_start", "", key=("src_addr", "dst_port"), fields={"bytes": "sum", "packets": "max"})


def _whole(reduction: Reduction, table: pa.Table, tmp_path: Path, held_rows: int, batch: int) -> pa.Table:
    with whole_fold(reduction, table.schema, tmp_path, lambda: table.num_rows, held_rows) as fold:
        for start in range(0, table.num_rows, batch):
            fold.add(table.slice(start, batch))
        spilled = fold.spilled
        parts = list(fold.results())
    assert spilled == (held_rows == 8) or held_rows == 200  # 200: spilled where the keys do not shrink enough
    assert not list(tmp_path.glob(".spill-*"))
    return pa.concat_tables(parts)


@pytest.mark.parametrize(
    "reduction",
    [BUILTIN["pairs"], BUILTIN["conversations"], CUSTOM_LAST, EVERY_STRATEGY, *DURATIONS_AND_TEXT],
    ids=lambda r: r.name,
)
@pytest.mark.parametrize(("seed", "held_rows"), [(0, 8), (1, 200), (2, 1 << 20)])
def test_the_whole_reduction_equals_the_views_sql(
    reduction: Reduction, seed: int, held_rows: int, tmp_path: Path
) -> None:
    """Budgets that spill at once (8 rows), that re-reduce and keep the rows where they shrink (200), none."""
    table = random_flows(np.random.default_rng(seed), 2000)
    reduced = _whole(reduction, table, tmp_path, held_rows, batch=37)
    assert reduced.schema == table.schema
    assert rows_by_key(reduced, reduction.key) == rows_by_key(by_sql(reduction, table), reduction.key)


def test_which_reductions_reduce_their_rows_again() -> None:
    schema = random_flows(np.random.default_rng(0), 10).schema
    assert merges_exactly(BUILTIN["pairs"], schema)
    assert merges_exactly(CUSTOM_LAST, schema)
    assert not merges_exactly(BUILTIN["conversations"], schema)  # the start is the first one: records are held
    assert not merges_exactly(EVERY_STRATEGY, schema)
    assert merges_exactly(EVERY_STRATEGY, schema.remove(schema.get_field_index("time_flow_start")))


def test_an_error_midway_leaves_no_spill_files(tmp_path: Path) -> None:
    table = random_flows(np.random.default_rng(4), 500)
    with pytest.raises(KeyboardInterrupt), whole_fold(BUILTIN["pairs"], table.schema, tmp_path, lambda: 500, 8) as fold:
        for start in range(0, 500, 50):
            fold.add(table.slice(start, 50))
        assert fold.spilled and list(tmp_path.glob(".spill-*/*.arrows"))
        raise KeyboardInterrupt
    assert not list(tmp_path.glob(".spill-*"))


def test_the_key_hash_depends_on_the_values_alone() -> None:
    """The same key in two tables hashes alike (a dictionary code would depend on the other rows)."""
    first = [pa.array(["b", "", None, "a" * 40]), pa.array([1, 2, 3, None], pa.uint16())]
    second = [pa.array(["zz", "a" * 40, "b", None, ""]), pa.array([9, None, 1, 3, 2], pa.uint16())]
    third = [pa.array(["b"]), pa.array([1], pa.uint16())]  # no nulls in the table
    one, two = spilling.key_hash(first), spilling.key_hash(second)
    assert list(one) == [two[2], two[4], two[3], two[1]]
    assert spilling.key_hash(third)[0] == one[0]
    assert len(set(one.tolist())) == 4


def test_batches_whose_extra_columns_differ_fold_together(tmp_path: Path) -> None:
    """A CSV's extra column may be read as integers in one batch and as floats in the next."""
    table = random_flows(np.random.default_rng(5), 100)
    first = table.slice(0, 50).append_column("extra", pa.array(range(50), pa.int64()))
    second = table.slice(50).append_column("extra", pa.array([0.5] * 50))
    with whole_fold(BUILTIN["pairs"], first.schema, tmp_path, lambda: 100) as fold:
        fold.add(first)
        fold.add(second)
        (reduced,) = fold.results()
    assert reduced.schema.field("extra").type == pa.float64()


@pytest.mark.parametrize("reduction", [BUILTIN["pairs"], BUILTIN["conversations"]], ids=lambda r: r.name)
def test_the_final_merge_in_key_ranges_equals_the_views_sql(reduction: Reduction, tmp_path: Path) -> None:
    """Held rows split by ranges of the first key column (``key_ranges``) and merged part by part: each key in
    one part, the parts in order of that column, together the view's rows (re-reduced rows and held records)."""
    table = random_flows(np.random.default_rng(6), 2000)
    with whole_fold(reduction, table.schema, tmp_path, lambda: table.num_rows) as fold:
        for start in range(0, table.num_rows, 100):
            fold.add(table.slice(start, 100))
        assert not fold.spilled
        parts = list(fold.results(lambda rows: key_ranges(rows, reduction.key, 3)))
    assert len(parts) == 3
    first = [sorted(set(part.column(reduction.key[0]).drop_null().to_pylist())) for part in parts]
    assert all(earlier[-1] < later[0] for earlier, later in itertools.pairwise(first))
    reduced = pa.concat_tables(parts)
    assert rows_by_key(reduced, reduction.key) == rows_by_key(by_sql(reduction, table), reduction.key)
