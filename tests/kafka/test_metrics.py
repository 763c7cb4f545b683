"""``flowscope consume --metrics``: the exposition text of a consumer snapshot."""

from __future__ import annotations

from flowscope.kafka.metrics import merge, render


def test_consumer_metrics_per_partition() -> None:
    text = render({"topic": "flows", "messages": 12, "bytes": 3400, "flows": 3000,
                   "skips": {"wrong wire type": 1}, "positions": {"flows/0": 7, "flows/3": 5},
                   "lag": {"flows/0": 2}})  # fmt: skip
    assert 'flowscope_consumer_flows_total{topic="flows"} 3000' in text
    assert 'flowscope_consumer_skipped_total{topic="flows",reason="wrong wire type"} 1' in text
    assert 'flowscope_consumer_position{topic="flows",partition="3"} 5' in text
    assert 'flowscope_consumer_lag_messages{topic="flows",partition="0"} 2' in text
    assert "# TYPE flowscope_consumer_messages_total counter" in text


def test_workers_metrics_add_up_and_keep_their_partitions() -> None:
    one = {"topic": "flows", "messages": 2, "bytes": 10, "flows": 300, "skips": {"garbage": 1},
           "positions": {"flows/0": 7}, "lag": {"flows/0": 1}}  # fmt: skip
    two = {"topic": "flows", "messages": 3, "bytes": 20, "flows": 500, "skips": {"garbage": 2, "truncated varint": 1},
           "positions": {"flows/1": 9}, "lag": {}}  # fmt: skip
    merged = merge([one, two])
    assert (merged["messages"], merged["bytes"], merged["flows"]) == (5, 30, 800)
    assert merged["skips"] == {"garbage": 3, "truncated varint": 1}
    assert merged["positions"] == {"flows/0": 7, "flows/1": 9} and merged["lag"] == {"flows/0": 1}
    assert 'flowscope_consumer_flows_total{topic="flows"} 800' in render(merged)
    assert merge([])["flows"] == 0
