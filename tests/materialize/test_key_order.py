"""``key_order`` sorts rows as a stable sort over the key columns does (text and blobs by their bytes)."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flowscope.materialize.key_order import key_order, key_ranges, lexicographic_order


def stable_order(table: pa.Table, key: list[str]) -> list[int]:
    plain = pa.table({name: _decoded(table.column(name)) for name in key})
    return pc.sort_indices(plain, [(name, "ascending") for name in key]).to_pylist()


def _decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column


def random_bytes(rng: np.random.Generator, n: int, alphabet: bytes) -> list[bytes]:
    """Short strings over a small alphabet: shared prefixes, strings that extend others, repeats."""
    return [bytes(rng.choice(list(alphabet), rng.integers(0, 20))) for _ in range(n)]


@pytest.mark.parametrize("seed", range(4))
def test_keys_of_every_kind_sort_as_a_stable_sort(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3000
    texts = [b.decode() for b in random_bytes(rng, n, b"ab.:0")]
    table = pa.table(
        {
            "text": pa.array(texts),
            "dictionary": pa.array(texts).dictionary_encode(),
            "blob": pa.array(random_bytes(rng, n, b"\x00\x01\xff"), pa.binary()),
            "port": pa.array(rng.integers(0, 3, n), pa.uint16()),
            "signed": pa.array(rng.choice([-(2**63), -1, 0, 2**63 - 1], n), pa.int64()),
            "wide": pa.array(np.array([0, 2**63, 2**64 - 1], np.uint64)[rng.integers(0, 3, n)]),
            "flag": pa.array(rng.integers(0, 2, n).astype(bool)),
            "real": pa.array(rng.choice([-1.5, 0.0, 2.25], n), pa.float64()),
        }
    )
    for key in (["text", "port"], ["dictionary", "blob"], ["port", "signed", "wide", "flag", "real", "blob"]):
        assert key_order(table, key).tolist() == stable_order(table, key)


def test_a_string_sorts_before_its_extensions_and_after_shorter_bytes() -> None:
    values = [b"abcdefgh", b"abcdefg", b"abcdefg\x00", b"abcdefgg", b"", b"\x00", b"abcdefghijklmnopq", b"b"]
    table = pa.table({"v": pa.array(values, pa.binary())})
    assert [values[i] for i in key_order(table, ["v"])] == sorted(values)


def test_no_rows_and_one_row() -> None:
    assert key_order(pa.table({"v": pa.array([], pa.string())}), ["v"]).tolist() == []
    assert key_order(pa.table({"v": pa.array([""])}), ["v"]).tolist() == [0]


def test_ties_keep_their_order_through_later_words() -> None:
    words = [np.array([1, 0, 1, 0, 1], np.uint64), np.array([2, 5, 1, 5, 2], np.uint64)]
    order = lexicographic_order(5, lambda r, rows: words[r][rows] if r < len(words) else None)
    assert order.tolist() == [1, 3, 2, 0, 4]


def test_key_ranges_hold_each_first_value_once_in_order() -> None:
    """Every value of the first key column (NULL too) in one table, about as many rows in each, the tables in
    its order, the rows of a value in the order they came: sorting each table by the key sorts them all."""
    rng = np.random.default_rng(3)
    n = 4000
    values = [None if v == 0 else bytes([v % 7, v]) for v in rng.integers(0, 120, n)]
    table = pa.table({"addr": pa.array(values, pa.binary()), "port": pa.array(rng.integers(0, 9, n), pa.uint16()),
                      "arrival": pa.array(np.arange(n))})  # fmt: skip
    parts = list(key_ranges(table, ["addr", "port"], 4))
    assert len(parts) == 4 and all(700 < part.num_rows < 1300 for part in parts)
    seen = [set(part.column("addr").to_pylist()) for part in parts]
    assert sum(len(values) for values in seen) == len(set(values))
    assert None in seen[0]
    bounds = [sorted(v for v in values if v is not None) for values in seen]
    assert all(earlier[-1] < later[0] for earlier, later in itertools.pairwise(bounds))
    for part in parts:
        for value in seen[parts.index(part)]:
            arrival = part.filter(pc.equal(part.column("addr"), value) if value is not None
                                  else pc.is_null(part.column("addr"))).column("arrival").to_pylist()  # fmt: skip
            assert arrival == sorted(arrival)
    keyed = [part.drop_null() for part in parts]
    ordered = pa.concat_tables(part.take(key_order(part, ["addr", "port"])) for part in keyed)
    everything = table.drop_null()
    assert (
        ordered.column("arrival").to_pylist()
        == everything.take(stable_order(everything, ["addr", "port"])).column("arrival").to_pylist()
    )


def test_key_ranges_of_no_rows_are_no_tables() -> None:
    assert list(key_ranges(pa.table({"v": pa.array([], pa.string())}), ["v"], 4)) == []
