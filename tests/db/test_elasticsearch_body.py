"""Elasticsearch mappings from the catalogue, URLs, and the NDJSON bulk body built without per-row objects."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from flowscope.db import elasticsearch as es
from flowscope.errors import FlowscopeError
from flowscope.schema import empty_flows


def test_mappings_follow_the_catalogue():
    properties = es.mappings()["properties"]
    assert properties["src_addr"] == properties["sampler_address"] == {"type": "ip"}
    assert properties["time_flow_start"] == {"type": "date"}
    assert properties["bytes"] == properties["src_as"] == {"type": "long"}
    assert properties["community_id"] == {"type": "keyword"}
    assert es.template("flows")["index_patterns"] == ["flows-*"]


def test_url():
    url = es.ElasticsearchURL.parse("elasticsearch://u:p@es1/flows?batch_docs=5")
    assert (url.endpoint, url.index, url.user, url.password, url.params) == (
        "http://es1:9200",
        "flows",
        "u",
        "p",
        {"batch_docs": "5"},
    )
    assert es.ElasticsearchURL.parse("elasticsearchs://es1:9243/f").endpoint == "https://es1:9243"
    for bad in ("elasticsearch://es1/", "elasticsearch://es1/Flows", "elasticsearch://es1/a*b"):
        with pytest.raises(FlowscopeError, match=r"index name|Elasticsearch URL"):
            es.ElasticsearchURL.parse(bad)


def test_bulk_body_is_one_action_and_one_document_per_flow():
    flows = empty_flows()
    rows = pa.table(
        {name: pa.array([None, None], flows.schema.field(name).type) for name in flows.column_names}
    ).set_column(1, "time_received", pa.array([1709251201799406702, 1709337600000000000], flows.schema.field(1).type))
    rows = rows.set_column(rows.schema.get_field_index("src_addr"), "src_addr",
                           pa.array([bytes(10) + b"\xff\xff\x0a\x00\x00\x01", None], pa.binary(16)))  # fmt: skip
    rows = rows.set_column(rows.schema.get_field_index("bytes"), "bytes", pa.array([2**63 - 1, 0], pa.uint64()))
    lines = es.bulk_lines(rows, "flows")
    body = es.body(lines.slice(1))
    assert body == lines[1].as_py().encode()
    first, second, third, fourth = es.body(lines).decode().splitlines()
    assert json.loads(first) == {"index": {"_index": "flows-2024.03.01"}}
    assert json.loads(third) == {"index": {"_index": "flows-2024.03.02"}}
    doc = json.loads(second)
    assert doc["src_addr"] == "10.0.0.1" and doc["bytes"] == 2**63 - 1
    assert doc["time_received"] == "2024-03-01T00:00:01.799Z" and doc["time_flow_start"] is None
    assert set(doc) == set(flows.column_names) == set(json.loads(fourth))
