"""The Elasticsearch destination: refused items sent again, refusals for good reported, and against noida-db
(an Elasticsearch 8 API) the documents land in daily indices with the catalogue's mappings."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from tests.elasticsearch_server import elasticsearch_server
from tests.sinks.test_clickhouse_sink import flows

from flowscope import addresses
from flowscope.errors import FlowscopeError
from flowscope.pipeline import run
from flowscope.sinks.elasticsearch import ElasticsearchSink

__all__ = ["elasticsearch_server"]


class FakeClient:
    """Answers bulk requests with the statuses given per call (then 201), recording the documents it got."""

    def __init__(self, *answers: dict[int, int]) -> None:
        self.answers = list(answers)
        self.stored: list[int] = []

    def bulk(self, operations: bytes) -> dict:
        docs = [json.loads(line) for line in operations.decode().splitlines()[1::2]]
        refused = self.answers.pop(0) if self.answers else {}
        items = []
        for doc in docs:
            status = refused.get(doc["sequence_num"], 201)
            if status < 300:
                self.stored.append(doc["sequence_num"])
            error = {"type": "mapper_parsing_exception", "reason": "failed to parse"} if status == 400 else {}
            items.append({"index": {"status": status, "error": error} if error else {"status": status}})
        return {"errors": any(s >= 300 for s in refused.values()), "items": items}

    def close(self) -> None:
        pass


def test_refused_items_are_sent_again_until_stored():
    client = FakeClient({3: 429, 7: 503}, {7: 429})
    sink = ElasticsearchSink("elasticsearch://fake:9200/flows?batch_docs=100", client=client)
    run([flows(10)], sink)
    assert sorted(client.stored) == list(range(10))
    assert sink.retried_items == 3 and sink.indexed == 10


def test_items_refused_for_good_fail_the_run_with_the_reason():
    sink = ElasticsearchSink("elasticsearch://fake:9200/flows", client=FakeClient({2: 400, 5: 400}))
    with pytest.raises(FlowscopeError, match="2 documents refused: failed to parse"):
        run([flows(10)], sink)


def test_items_refused_past_the_retry_budget_fail_the_run():
    client = FakeClient(*({1: 429} for _ in range(100)))
    sink = ElasticsearchSink("elasticsearch://fake:9200/flows?retry_seconds=0.5", client=client)
    with pytest.raises(FlowscopeError, match=r"1 documents still refused after 0\.5 s"):
        run([flows(10)], sink)


@pytest.mark.integration
def test_flows_land_in_daily_indices_with_ip_date_long_mappings(elasticsearch_server):
    from elasticsearch import Elasticsearch

    endpoint = elasticsearch_server.removeprefix("http://")
    table = flows(3_000)
    sink = ElasticsearchSink(f"elasticsearch://{endpoint}/flowtest?batch_docs=1000")
    run((table.slice(i, 700) for i in range(0, table.num_rows, 700)), sink)
    assert sink.indexed == 3_000 and sink.requests == 3
    client = Elasticsearch(elasticsearch_server)
    client.indices.refresh(index="flowtest-*")
    days = Counter(t // 86_400_000_000_000 for t in table.column("time_received").cast("int64").to_pylist())
    indices = {row["index"]: int(row["docs.count"]) for row in client.cat.indices(index="flowtest-*", format="json")}
    assert sorted(indices.values()) == sorted(days.values())
    mapping = next(iter(client.indices.get_mapping(index="flowtest-*").body.values()))["mappings"]["properties"]
    assert (mapping["src_addr"]["type"], mapping["time_flow_start"]["type"], mapping["bytes"]["type"]) == (
        "ip",
        "date",
        "long",
    )
    total = client.search(index="flowtest-*", size=0, aggs={"b": {"sum": {"field": "bytes"}}})
    assert total["aggregations"]["b"]["value"] == sum(table.column("bytes").to_pylist())
    address = addresses.format_one(table.column("dst_addr")[0].as_py())
    hits = client.count(index="flowtest-*", query={"term": {"dst_addr": address}})["count"]
    assert hits == sum(1 for v in table.column("dst_addr").to_pylist() if v == table.column("dst_addr")[0].as_py())
