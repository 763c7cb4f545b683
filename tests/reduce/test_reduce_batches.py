"""The batch reducer (sort-based grouping, numpy aggregates) against the SQL of the reduction views."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flowscope import addresses
from flowscope.errors import FlowscopeError
from flowscope.reduce import BUILTIN, Reduction
from flowscope.reduce import groups as grouping
from flowscope.reduce.apply import Reducer
from flowscope.reduce.sql import reduce_sql
from flowscope.schema import FLOW_SCHEMA, conform

EVERY_STRATEGY = Reduction(
    "every",
    "",
    key=("src_addr", "proto", "community_id"),
    fields={
        "bytes": "sum",
        "packets": "min",
        "packets_rev": "max",
        "tcp_flags": "merge",
        "dst_addr": "max",
        "next_hop": "min",
        "src_port": "first",
        "dst_port": "last",
        "time_flow_start": "min",
        "time_received": "max",
        "duration": "sum",
    },
)

DURATIONS_AND_TEXT = [
    Reduction(
        f"duration_{strategy}",
        "",
        key=("src_port", "dst_addr"),
        fields={"duration": strategy, "community_id": text, "next_hop": "merge", "time_flow_start": start},
    )
    for strategy, text, start in [
        ("first", "merge", "max"),
        ("last", "max", "first"),
        ("merge", "min", "min"),
        ("min", "first", "last"),
        ("max", "merge", "max"),
    ]
]


def _with_nulls(rng: np.random.Generator, values: pa.Array, share: float) -> pa.Array:
    return pc.if_else(pa.array(rng.random(len(values)) < share), pa.nulls(len(values), values.type), values)


def random_flows(rng: np.random.Generator, n: int) -> pa.Table:
    """Few distinct keys, ties and nulls everywhere, start times out of order (microseconds: DuckDB's unit)."""
    hosts = pa.array(["10.0.0.1", "10.0.0.2", "192.168.1.9", "2001:db8::5", "::1"])
    starts = pa.array(rng.integers(0, 50, n) * 1_000_000_000, pa.int64()).cast(pa.timestamp("ns", "UTC"))
    ends = pc.add(pc.cast(starts, pa.int64()), pa.array(rng.integers(0, 5_000, n) * 1_000)).cast(starts.type)
    table = pa.table(
        {
            "src_addr": _with_nulls(rng, addresses.parse_text(hosts.take(rng.integers(0, 5, n))), 0.05),
            "dst_addr": _with_nulls(rng, addresses.parse_text(hosts.take(rng.integers(0, 5, n))), 0.2),
            "next_hop": _with_nulls(rng, addresses.parse_text(hosts.take(rng.integers(0, 5, n))), 0.5),
            "src_port": _with_nulls(rng, pa.array(rng.integers(0, 4, n), pa.uint16()), 0.1),
            "dst_port": pa.array(rng.choice([53, 443, 65535], n), pa.uint16()),
            "proto": _with_nulls(rng, pa.array(rng.choice([6, 17, 1], n), pa.uint8()), 0.05),
            "community_id": _with_nulls(rng, pa.array(rng.choice(["a", "b", "ccc"], n)), 0.1),
            "time_flow_start": _with_nulls(rng, starts, 0.05),
            "time_flow_end": _with_nulls(rng, ends, 0.05),
            "time_received": _with_nulls(rng, ends, 0.3),
            "bytes": _with_nulls(rng, pa.array(rng.integers(0, 1 << 40, n), pa.uint64()), 0.1),
            "packets": _with_nulls(rng, pa.array(rng.integers(0, 1000, n), pa.uint64()), 0.3),
            "packets_rev": _with_nulls(rng, pa.array(rng.integers(0, 1000, n), pa.uint64()), 0.9),
            "tcp_flags": _with_nulls(rng, pa.array(rng.integers(0, 256, n), pa.uint16()), 0.2),
            "sequence_num": pa.array(np.arange(n), pa.uint32()),
        }
    )
    return conform(table)


def by_sql(reduction: Reduction, table: pa.Table) -> pa.Table:
    """What the reduction views compute (record order: start time, then row)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("batch", table)
    columns = [(f.name, str(t)) for f, t in zip(table.schema, con.sql("SELECT * FROM batch").types, strict=True)]
    relation = "(SELECT *, 0 AS __file, row_number() OVER () - 1 AS __row FROM batch)"
    return con.sql(reduce_sql(reduction, relation, columns, "__file", "__row")).to_arrow_table()


def rows_by_key(table: pa.Table, key: tuple[str, ...]) -> dict[tuple, dict]:
    times = [f.name for f in FLOW_SCHEMA if pa.types.is_timestamp(f.type)]
    for name in times:
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, pc.cast(pc.cast(table[name], pa.timestamp("ns", "UTC")), pa.int64()))
    rows = {tuple(r[k] for k in key): r for r in table.to_pylist()}
    assert len(rows) == table.num_rows
    return rows


@pytest.mark.parametrize(
    "reduction", [BUILTIN["pairs"], BUILTIN["conversations"], EVERY_STRATEGY, *DURATIONS_AND_TEXT], ids=lambda r: r.name
)
@pytest.mark.parametrize(("seed", "rows"), [(0, 3000), (1, 3000), (2, 150), (3, 40)])
def test_batch_reduction_equals_the_views_sql(reduction: Reduction, seed: int, rows: int) -> None:
    table = random_flows(np.random.default_rng(seed), rows)
    reduced = Reducer(reduction)(table)
    assert reduced.schema == table.schema
    assert rows_by_key(reduced, reduction.key) == rows_by_key(by_sql(reduction, table), reduction.key)


def test_hash_collisions_never_merge_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key hashed alike: groups still come from the key values, in record order."""
    monkeypatch.setattr(grouping, "_hash", lambda words, bits: np.zeros(len(words[0]), np.int64))
    table = random_flows(np.random.default_rng(9), 2000)
    for reduction in (BUILTIN["pairs"], EVERY_STRATEGY):
        reduced = Reducer(reduction)(table)
        assert rows_by_key(reduced, reduction.key) == rows_by_key(by_sql(reduction, table), reduction.key)


@pytest.mark.parametrize("reduction", [BUILTIN["pairs"], EVERY_STRATEGY], ids=lambda r: r.name)
def test_chunked_and_sliced_input(reduction: Reduction) -> None:
    table = random_flows(np.random.default_rng(3), 1000)
    pieces = pa.concat_tables([table.slice(0, 333), table.slice(333, 400), table.slice(733)])
    assert Reducer(reduction)(pieces).equals(Reducer(reduction)(table))
    sliced = table.slice(100)
    assert rows_by_key(Reducer(reduction)(sliced), reduction.key) == rows_by_key(
        by_sql(reduction, sliced), reduction.key
    )


@pytest.mark.parametrize("reduction", [BUILTIN["pairs"], EVERY_STRATEGY], ids=lambda r: r.name)
def test_fields_holding_only_nulls(reduction: Reduction) -> None:
    """Unfilled fields (times and counters here) come out as nulls, also when the input is chunked."""
    table = random_flows(np.random.default_rng(5), 500)
    for name in ("time_flow_start", "time_flow_end", "bytes", "packets"):
        index = table.schema.get_field_index(name)
        table = table.set_column(index, table.schema.field(index), pa.nulls(len(table), table.schema.field(index).type))
    table = pa.concat_tables([table.slice(0, 200), table.slice(200)])
    assert rows_by_key(Reducer(reduction)(table), reduction.key) == rows_by_key(by_sql(reduction, table), reduction.key)


@pytest.mark.parametrize(
    ("values", "kind"),
    [([-(2**63) + 1, 1], pa.int64()), ([2**64 - 1, 2**63 - 1], pa.uint64()), ([-(2**63), 2**63 - 1], pa.int64())],
    ids=["int64", "uint64", "int64-extremes"],
)
def test_keys_spanning_the_whole_word_stay_apart(values: list[int], kind: pa.DataType) -> None:
    """A key whose values lie 2**63 or more apart cannot be shifted to start at zero without wrapping."""
    table = pa.table({"key": pa.array(values * 2, kind), "bytes": pa.array([1, 2, 3, 4], pa.uint64())})
    reduced = Reducer(Reduction("wide", "", key=("key",), fields={"bytes": "sum"}))(table)
    assert sorted(zip(reduced["key"].to_pylist(), reduced["bytes"].to_pylist(), strict=True)) == sorted(
        [(values[0], 4), (values[1], 6)]
    )


def _summed(values: list[int], kind: pa.DataType, chunked: bool) -> list[int]:
    table = pa.table({"key": pa.array([7] * len(values), pa.uint16()), "counter": pa.array(values, kind)})
    if chunked:  # sums are accumulated chunk by chunk
        table = pa.concat_tables([table.slice(0, 1), table.slice(1)])
    return Reducer(Reduction("sums", "", key=("key",), fields={"counter": "sum"}))(table)["counter"].to_pylist()


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([200, 100], pa.uint8()),
        ([-100, -100], pa.int8()),
        ([2**32 - 1, 1], pa.uint32()),
        ([2**64 - 1, 1], pa.uint64()),
        ([2**63, 2**63], pa.uint64()),
        ([2**63 - 1, 1], pa.int64()),
        ([-(2**63), -1], pa.int64()),
    ],
)
@pytest.mark.parametrize("chunked", [False, True])
def test_a_sum_that_overflows_its_type_is_an_error_naming_the_field(
    values: list[int], kind: pa.DataType, chunked: bool
) -> None:
    """As in the views, where DuckDB's sum does not fit the column's type."""
    with pytest.raises(FlowscopeError, match="counter"):
        _summed(values, kind, chunked)


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([200, 55, None], pa.uint8()),
        ([2**63, 2**63 - 1], pa.uint64()),
        ([2**63 - 1, -(2**63), 2**63 - 1], pa.int64()),
        ([-(2**63) + 1, -1], pa.int64()),
        ([2**32 - 1] * 3000, pa.uint64()),
    ],
)
@pytest.mark.parametrize("chunked", [False, True])
def test_sums_up_to_the_limits_of_their_type(values: list[int], kind: pa.DataType, chunked: bool) -> None:
    assert _summed(values, kind, chunked) == [sum(v for v in values if v is not None)]


@pytest.mark.parametrize("rows", [0, 1, 2])
def test_a_reduction_that_does_not_fit_the_data_fails_on_any_batch(rows: int) -> None:
    table = pa.table({"key": pa.array(range(rows), pa.uint16()), "counter": pa.array(range(rows), pa.uint64())})
    with pytest.raises(FlowscopeError, match="key field"):
        Reducer(Reduction("keyless", "", key=("src_addr",), fields={}))(table)
    with pytest.raises(FlowscopeError, match="unknown field"):
        Reducer(Reduction("misspelt", "", key=("key",), fields={"conter": "sum"}))(table)


def test_min_and_max_of_a_dictionary_column() -> None:
    names = pc.dictionary_encode(pa.array(["b", "a", None, "c", "a", "b"]))
    keys = pc.dictionary_encode(pa.array([1, 1, 1, 2, 2, 3], pa.uint16()))
    table = pa.table({"key": keys, "lowest": names, "highest": names})
    reduced = Reducer(Reduction("names", "", key=("key",), fields={"lowest": "min", "highest": "max"}))(table)
    assert reduced.schema == table.schema
    assert reduced.to_pydict() == {"key": [1, 2, 3], "lowest": ["a", "a", "b"], "highest": ["b", "c", "b"]}


def test_a_sum_over_chunks_with_and_without_nulls() -> None:
    """A group whose values lie in a chunk without nulls has a sum even when another chunk holds nulls."""
    address = addresses.parse_text(pa.array(["10.0.0.1"]))
    chunk = {"src_addr": address, "dst_addr": address, "src_port": pa.array([1], pa.uint16())}
    chunk["dst_port"] = pa.array([2], pa.uint16())
    first, second = pa.table({**chunk, "bytes": pa.nulls(1, pa.uint64())}), pa.table({**chunk, "bytes": [5]})
    table = pa.concat_tables([first, second.cast(first.schema)])
    summed = Reduction("sum", "", key=("src_addr", "src_port", "dst_addr", "dst_port"), fields={"bytes": "sum"})
    assert Reducer(summed)(table).column("bytes").to_pylist() == [5]
