import pyarrow as pa
import pytest

from flowscope.schema import FLOW_SCHEMA, conform


def test_conform_orders_casts_fills_and_keeps_extras():
    table = pa.table({"label": ["web"], "packets": pa.array([3], pa.int64()), "src_port": [443]})
    out = conform(table)
    assert out.schema.names[: len(FLOW_SCHEMA)] == FLOW_SCHEMA.names
    assert out.schema.names[-1] == "label"
    assert out.column("packets").type == pa.uint64()
    assert out.column("bytes_rev").to_pylist() == [0]
    assert out.column("dst_port").to_pylist() == [None]


def test_conform_without_extras_is_exactly_the_schema():
    out = conform(pa.table({"label": ["x"]}), keep_extra=False)
    assert out.schema == FLOW_SCHEMA


def test_conform_refuses_values_that_do_not_fit():
    with pytest.raises(pa.ArrowInvalid):
        conform(pa.table({"src_port": [70000]}))
